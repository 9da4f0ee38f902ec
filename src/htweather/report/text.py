"""Numbers as the report prints them."""

from __future__ import annotations

import math


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
