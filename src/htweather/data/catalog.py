"""ERA5 variable names across the forms the data come in, and pressure-level selection.

A variable in the config is named by its CDS short name (``t2m``, ``tp``, ``w``), optionally
with a pressure level (``t@850``, ``w@500``); the same field is called ``2t`` in GRIB,
``2m_temperature`` in the ARCO-ERA5 and WeatherBench2 zarr stores, and ``tas``/``pr`` in CF
products. `resolve` finds the source's name for a config name; a variable's ``source_name``
in the config overrides the lookup for anything this table does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    """One physical quantity: its names in each product, and the units it is stored in
    unless the config says otherwise (None: keep the source's units)."""

    short: str
    aliases: tuple[str, ...] = ()
    units: str | None = None
    # "amount": accumulated over the time step (summed when resampling); "state": instantaneous
    # or mean value (averaged when resampling).
    kind: str = "state"
    description: str = field(default="", compare=False)


CATALOG = {e.short: e for e in [
    Entry("t2m", ("2t", "2m_temperature", "tas", "Tair"), "K", description="2 m temperature"),
    Entry("d2m", ("2d", "2m_dewpoint_temperature"), "K", description="2 m dewpoint temperature"),
    Entry("u10", ("10u", "10m_u_component_of_wind", "uas"), "m s-1", description="10 m eastward wind"),
    Entry("v10", ("10v", "10m_v_component_of_wind", "vas"), "m s-1", description="10 m northward wind"),
    Entry("si10", ("10si", "10m_wind_speed", "sfcWind", "Wind"), "m s-1", description="10 m wind speed"),
    Entry("msl", ("mean_sea_level_pressure", "psl"), "Pa", description="mean sea-level pressure"),
    Entry("sp", ("surface_pressure", "ps"), "Pa", description="surface pressure"),
    Entry("tp", ("total_precipitation", "total_precipitation_6hr", "total_precipitation_24hr"), "mm", "amount",
          "total precipitation per time step"),
    Entry("pr", ("precipitation_flux", "Rainf", "precip"), "mm h-1",
          description="precipitation rate (from a flux in kg m-2 s-1)"),
    Entry("t", ("temperature", "ta"), "K", description="air temperature (pressure levels)"),
    Entry("u", ("u_component_of_wind", "ua"), "m s-1", description="eastward wind (pressure levels)"),
    Entry("v", ("v_component_of_wind", "va"), "m s-1", description="northward wind (pressure levels)"),
    Entry("w", ("vertical_velocity", "wap"), "Pa s-1", description="vertical velocity (pressure levels)"),
    Entry("z", ("geopotential", "zg"), None, description="geopotential (pressure levels)"),
    Entry("q", ("specific_humidity", "hus"), None, description="specific humidity (pressure levels)"),
    Entry("r", ("relative_humidity", "hur"), None, description="relative humidity (pressure levels)"),
]}

_BY_ALIAS = {alias.lower(): e for e in CATALOG.values() for alias in (e.short, *e.aliases)}

_NAME = re.compile(r"^(?P<base>[A-Za-z0-9_]+?)(?:@(?P<level>[0-9]+(?:\.[0-9]+)?))?$")


def parse_name(name: str) -> tuple[str, float | None]:
    """``"t@850"`` -> ``("t", 850.0)``; ``"t2m"`` -> ``("t2m", None)``."""
    match = _NAME.match(name)
    if not match:
        raise ValueError(f"bad variable name {name!r}: expected NAME or NAME@LEVEL (e.g. t@850)")
    level = match["level"]
    return match["base"], (float(level) if level is not None else None)


def entry(name: str) -> Entry | None:
    """The catalog entry for a config name (with or without level) or any alias of it."""
    base, _ = parse_name(name)
    return _BY_ALIAS.get(base.lower())


def candidates(name: str, source_name: str | None = None) -> list[str]:
    """Names under which a config variable may appear in a source, most specific first."""
    if source_name:
        return [source_name]
    base, _ = parse_name(name)
    found = entry(name)
    names = [base] + ([found.short, *found.aliases] if found else [])
    return list(dict.fromkeys(names))


def resolve(name: str, available, source_name: str | None = None) -> str | None:
    """The name in `available` (a source's data variables) of config variable `name`."""
    available = list(map(str, available))
    lower = {a.lower(): a for a in available}
    for candidate in candidates(name, source_name):
        if candidate in available:
            return candidate
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    return None


def default_units(name: str) -> str | None:
    found = entry(name)
    return found.units if found else None


def kind(name: str) -> str:
    found = entry(name)
    return found.kind if found else "state"
