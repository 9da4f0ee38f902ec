"""Per-variable transforms (applied before normalisation, inverted exactly after sampling) and
the unit conversions ingestion applies. Each works on numpy, dask and xarray alike."""

from __future__ import annotations

import numpy as np

from ..errors import HtweatherError


def _signed_power(p):
    def forward(x):
        return np.sign(x) * np.abs(x) ** (1.0 / p)

    def inverse(y):
        return np.sign(y) * np.abs(y) ** p

    return forward, inverse


# name -> (forward, inverse); each pair is a bijection of the real line (log1p: of x > -1),
# so a generated value outside the data's range still maps back.
TRANSFORMS = {
    "identity": (lambda x: x, lambda y: y),
    "log1p": (np.log1p, np.expm1),
    "sqrt": _signed_power(2.0),
    "cbrt": _signed_power(3.0),
}


def forward(name: str, x):
    return TRANSFORMS[name][0](x)


def inverse(name: str, y):
    return TRANSFORMS[name][1](y)


# Unit spellings as they appear in CDS NetCDF, GRIB and CF files, mapped to one canonical form.
_UNIT_ALIASES = {
    "m": "m", "metre": "m", "metres": "m", "meter": "m", "m of water equivalent": "m",
    "mm": "mm", "millimetre": "mm", "millimeter": "mm", "kg m-2": "mm", "kg m**-2": "mm",
    "k": "K", "kelvin": "K",
    "degc": "degC", "celsius": "degC", "°c": "degC", "degrees_celsius": "degC",
    "kg m-2 s-1": "kg m-2 s-1", "kg m**-2 s**-1": "kg m-2 s-1", "kg/m2/s": "kg m-2 s-1",
    "mm/day": "mm day-1", "mm day-1": "mm day-1", "mm d-1": "mm day-1", "mm day**-1": "mm day-1",
    "mm/h": "mm h-1", "mm h-1": "mm h-1", "mm h**-1": "mm h-1", "mm/hr": "mm h-1",
    "pa s**-1": "Pa s-1", "pa s-1": "Pa s-1", "pa/s": "Pa s-1",
    "pa": "Pa", "hpa": "hPa", "mbar": "hPa", "millibars": "hPa",
    "m s**-1": "m s-1", "m s-1": "m s-1", "m/s": "m s-1",
}

# (from, to) -> (scale, offset) with to = from * scale + offset, or a function of the time step
# in hours giving them: amounts per time step (m, mm) and rates (mm h-1, fluxes) convert through
# the accumulation period.
_CONVERSIONS = {
    ("m", "mm"): (1000.0, 0.0),
    ("mm", "m"): (1e-3, 0.0),
    ("K", "degC"): (1.0, -273.15),
    ("degC", "K"): (1.0, 273.15),
    ("Pa", "hPa"): (0.01, 0.0),
    ("hPa", "Pa"): (100.0, 0.0),
    ("kg m-2 s-1", "mm h-1"): (3600.0, 0.0),  # 1 kg m-2 of water is 1 mm
    ("kg m-2 s-1", "mm day-1"): (86400.0, 0.0),
    ("mm h-1", "mm day-1"): (24.0, 0.0),
    ("mm day-1", "mm h-1"): (1 / 24.0, 0.0),
    ("kg m-2 s-1", "mm"): lambda hours: (3600.0 * hours, 0.0),
    ("mm h-1", "mm"): lambda hours: (hours, 0.0),
    ("m", "mm h-1"): lambda hours: (1000.0 / hours, 0.0),
    ("mm", "mm h-1"): lambda hours: (1.0 / hours, 0.0),
    ("m", "mm day-1"): lambda hours: (24000.0 / hours, 0.0),
    ("mm", "mm day-1"): lambda hours: (24.0 / hours, 0.0),
}


def canonical_units(units: str | None) -> str | None:
    if units is None:
        return None
    key = " ".join(str(units).strip().lower().split())
    return _UNIT_ALIASES.get(key, str(units).strip())


def unit_conversion(source: str | None, target: str | None, *, where: str = "units",
                    step_hours: float | None = None) -> tuple[float, float]:
    """(scale, offset) converting `source` units to `target`; identity when target is None.
    Conversions between an amount per time step and a rate need `step_hours`."""
    if target is None:
        return 1.0, 0.0
    src, dst = canonical_units(source), canonical_units(target)
    if src == dst:
        return 1.0, 0.0
    if (src, dst) not in _CONVERSIONS:
        raise HtweatherError(f"{where}: cannot convert '{source}' to '{target}' "
                             f"(known: {', '.join(f'{a}->{b}' for a, b in _CONVERSIONS)})")
    conversion = _CONVERSIONS[(src, dst)]
    if callable(conversion):
        if not step_hours:
            raise HtweatherError(f"{where}: converting '{source}' to '{target}' needs a regular time step")
        return conversion(step_hours)
    return conversion
