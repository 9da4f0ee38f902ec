"""Numbers as the report prints them."""

from __future__ import annotations

import math


def percentile(p: float) -> str:
    """0.999 -> "99.9th percentile", 0.01 -> "1st percentile"."""
    x = f"{p * 100:.8f}".rstrip("0").rstrip(".")
    suffix = "st" if x.endswith("1") and not x.endswith("11") and "." not in x else "th"
    return f"{x}{suffix} percentile"


def lead_hours(lead: int, step_hours: float | None) -> str:
    """A forecast lead in steps as the report prints it: "2 (12 h)"; the steps alone where the
    time step is unknown."""
    return f"{lead} ({lead * step_hours:g} h)" if step_hours else str(lead)


def fixed(value: float | None, decimals: int) -> str:
    """`value` with `decimals` digits after the point; empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{decimals}f}"


def fmt(value: float | None, digits: int = 4) -> str:
    """`digits` significant digits; scientific notation only for very small or large values;
    empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if 10 ** digits <= abs(value) < 1e4:  # 590, not 5.9e+02
        return f"{value:.0f}"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.{digits}g}"
    return f"{value:.{max(digits - 2, 1)}e}"
