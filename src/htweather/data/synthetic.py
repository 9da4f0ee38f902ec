"""The embedded data: ERA5-style NetCDF files written by one of two generators.

- ``generator: storms`` (the default, `storms`): moving, intermittent storm cells with
  heavy-tailed rain and updrafts; truth from a long simulation.
- ``generator: copula`` (this module): the fields below, whose marginals are known in closed
  form (the estimator tests use it).

The copula generator: three variables driven by latent Gaussian fields with a Gaussian-shaped spatial covariance
(correlation exp(-r^2 / L^2) at distance r cells) that persist and drift in time (an AR(1)
process on a shifted field), mapped through a Gaussian copula to their marginals:

- ``t2m``: 2 m temperature, Normal(mean, std) in K (light-tailed control);
- ``w``:   vertical velocity, scale * Student-t(nu) in Pa s-1 (symmetric, heavy-tailed);
- ``tp``:  total precipitation, 0 with probability p0, else generalised Pareto(shape, scale),
           in m as the CDS writes it (zero-inflated, positive, heavy-tailed). Its latent field
           is correlated with ascent (-w), as rain is with updrafts.

Because the copula keeps every grid point's marginal exactly, the flattened data have the
closed-form marginals returned by `marginal`, which the report draws as "truth".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..config import SYNTHETIC_VARIABLES
from . import storms, transforms
from .latent import LatentField, gaussian_sequence

# CDS conventions for the variables' NetCDF attributes (units as the CDS spells them).
ATTRS = {
    "t2m": {"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"},
    "w": {"units": "Pa s**-1", "long_name": "Vertical velocity",
          "standard_name": "lagrangian_tendency_of_air_pressure"},
    "tp": {"units": "m", "long_name": "Total precipitation"},
}


def grid(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Latitude (descending, as ERA5) and longitude (ascending) of the grid."""
    res = spec["resolution"]
    lat = spec["lat_north"] - res * np.arange(spec["nlat"])
    lon = spec["lon_west"] + res * np.arange(spec["nlon"])
    return lat, lon


def times(spec: dict) -> pd.DatetimeIndex:
    return pd.date_range(spec["start"], spec["end"], freq=spec["freq"])


def latent_sequence(spec: dict, n_times: int, rng: np.random.Generator) -> np.ndarray:
    """Latent N(0, 1) fields (n_times, 3, nlat, nlon) for t2m, w and tp, persistent in time."""
    return _couple(gaussian_sequence(spec, n_times, rng), spec)


def latent_independent(spec: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """n independent draws (n, 3, nlat, nlon) from the stationary distribution of the sequence."""
    field = LatentField(spec["nlat"], spec["nlon"], spec["correlation_length"])
    draws = field.draw(rng, 3 * n).reshape(n, 3, *field.shape)
    return _couple(draws[:, :, : field.crop[0], : field.crop[1]], spec)


def _couple(latent: np.ndarray, spec: dict) -> np.ndarray:
    rho = spec["tp"]["coupling"]
    # rain goes with ascent, i.e. negative w in pressure coordinates
    latent[:, 2] = -rho * latent[:, 1] + np.sqrt(1.0 - rho**2) * latent[:, 2]
    return latent


class ZeroInflatedGPD:
    """P(X = 0) = p0; X | X > 0 ~ generalised Pareto(shape, scale). scipy-like methods."""

    def __init__(self, dry_fraction: float, shape: float, scale: float):
        self.p0 = dry_fraction
        self.wet = stats.genpareto(c=shape, scale=scale)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < 0, 0.0, self.p0 + (1 - self.p0) * self.wet.cdf(np.maximum(x, 0)))

    def sf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < 0, 1.0, (1 - self.p0) * self.wet.sf(np.maximum(x, 0)))

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        wet_q = np.clip((q - self.p0) / (1 - self.p0), 0.0, 1.0)
        return np.where(q <= self.p0, 0.0, self.wet.ppf(wet_q))

    def isf(self, s):
        """Inverse survival function; accurate far in the tail, where 1 - s rounds to 1."""
        s = np.asarray(s, dtype=float)
        wet_s = np.clip(s / (1 - self.p0), 0.0, 1.0)
        return np.where(s >= 1 - self.p0, 0.0, self.wet.isf(wet_s))

    def pdf(self, x):
        """Density of the continuous (wet) part; the point mass p0 at 0 is not included."""
        return (1 - self.p0) * self.wet.pdf(np.asarray(x, dtype=float))

    def moment_summary(self) -> dict:
        m = [self.wet.moment(k) for k in (1, 2, 3, 4)]
        raw = [(1 - self.p0) * mk for mk in m]  # E[X^k] = (1 - p0) E[W^k]
        mean = raw[0]
        var = raw[1] - mean**2
        m3 = raw[2] - 3 * mean * raw[1] + 2 * mean**3
        m4 = raw[3] - 4 * mean * raw[2] + 6 * mean**2 * raw[1] - 3 * mean**4
        return {"mean": mean, "var": var, "skewness": m3 / var**1.5, "kurtosis": m4 / var**2}


def marginal(spec: dict, variable: str, units: str | None = None):
    """The true marginal of `variable` in `units` (None: the units of the NetCDF files): in
    closed form for the copula generator, from a long simulation (`storms.SimulatedMarginal`,
    seeded by the spec) for the storm generator."""
    scale, offset = transforms.unit_conversion(ATTRS[variable]["units"], units, where=f"units of {variable}")
    if spec["generator"] == "storms":
        return storms.SimulatedMarginal(_long_simulation(spec)[variable] * scale + offset)
    if variable == "t2m":
        return stats.norm(loc=spec["t2m"]["mean"] * scale + offset, scale=spec["t2m"]["std"] * scale)
    if variable == "w":
        return stats.t(df=spec["w"]["nu"], loc=offset, scale=spec["w"]["scale"] * scale)
    if variable == "tp":
        # the generator's scale is in mm; the files hold m
        return ZeroInflatedGPD(spec["tp"]["dry_fraction"], spec["tp"]["shape"],
                               spec["tp"]["scale_mm"] * 1e-3 * scale)
    raise KeyError(variable)


_SIMULATIONS: dict[str, dict[str, np.ndarray]] = {}


def _long_simulation(spec: dict) -> dict[str, np.ndarray]:
    """The storm process's `truth_steps`-step simulation (its own fixed seed), once per process."""
    key = json.dumps(spec, sort_keys=True, default=str)
    if key not in _SIMULATIONS:
        _SIMULATIONS[key] = storms.simulate(spec, spec["storms"]["truth_steps"], np.random.default_rng(20250601))
    return _SIMULATIONS[key]


def physical_sequence(spec: dict, n_times: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`n_times` consecutive fields of the configured generator, in the files' units."""
    if spec["generator"] == "storms":
        return storms.simulate(spec, n_times, rng)
    return to_physical(latent_sequence(spec, n_times, rng), spec)


def physical_independent(spec: dict, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`n` independent fields of the configured generator's stationary distribution."""
    if spec["generator"] == "storms":
        return storms.independent(spec, n, rng)
    return to_physical(latent_independent(spec, n, rng), spec)


def to_physical(latent: np.ndarray, spec: dict) -> dict[str, np.ndarray]:
    """Map latent N(0, 1) fields (..., 3, nlat, nlon) to t2m [K], w [Pa s-1], tp [m] through the
    Gaussian copula, using survival functions in the upper tail so extremes keep full precision."""
    out = {}
    for i, name in enumerate(SYNTHETIC_VARIABLES):
        z = latent[..., i, :, :]
        dist = marginal(spec, name)
        if name == "tp":
            out[name] = dist.isf(stats.norm.sf(z))
        else:
            # symmetric marginals: map |z| through the survival function, then restore the sign
            out[name] = np.sign(z) * (dist.isf(stats.norm.sf(np.abs(z))) - dist.mean()) + dist.mean()
    return out


def write_netcdf(spec: dict, out_dir: str | Path, seed: int) -> list[Path]:
    """Write one NetCDF file per year, laid out as the CDS writes ERA5 single levels:
    dims (time, latitude, longitude), latitude descending, CDS short names and units."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    time_index = times(spec)
    lat, lon = grid(spec)
    rng = np.random.default_rng(seed)
    fields = physical_sequence(spec, len(time_index), rng)
    ds = xr.Dataset(
        {name: (("time", "latitude", "longitude"), fields[name].astype(np.float32), ATTRS[name])
         for name in SYNTHETIC_VARIABLES},
        coords={
            "time": ("time", time_index, {"long_name": "time"}),
            "latitude": ("latitude", lat.astype(np.float32), {"units": "degrees_north", "long_name": "latitude"}),
            "longitude": ("longitude", lon.astype(np.float32), {"units": "degrees_east", "long_name": "longitude"}),
        },
        attrs={"Conventions": "CF-1.6",
               "history": f"htweather synthetic ERA5-style fields, seed {seed}",
               "source": f"htweather synthetic, generator {spec['generator']} (see htweather.data."
                         f"{'storms' if spec['generator'] == 'storms' else 'synthetic'})"},
    )
    written = []
    for year, part in ds.groupby("time.year"):
        path = out_dir / f"era5_synthetic_{year}.nc"
        tmp = path.with_suffix(".nc.tmp")
        encoding = {name: {"zlib": True, "complevel": 1, "dtype": "float32"} for name in SYNTHETIC_VARIABLES}
        encoding["time"] = {"units": "hours since 1900-01-01 00:00:00.0", "calendar": "gregorian", "dtype": "int32"}
        part.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        tmp.replace(path)
        written.append(path)
    return written


def _dataset(fields: dict[str, np.ndarray], spec: dict, variables: dict, dims: tuple[str, ...],
             attrs: dict) -> xr.Dataset:
    """Physical fields as the files hold them -> a dataset in the ingested units (the `units` of
    each entry of data.variables)."""
    lat, lon = grid(spec)
    data_vars = {}
    for name, opts in variables.items():
        scale, offset = transforms.unit_conversion(ATTRS[name]["units"], opts.get("units"),
                                                   where=f"data.variables.{name}.units")
        units = opts.get("units") or ATTRS[name]["units"]
        data_vars[name] = (dims + ("latitude", "longitude"), (fields[name] * scale + offset).astype(np.float32),
                           {"units": units, "long_name": ATTRS[name]["long_name"]})
    shape = next(iter(fields.values())).shape
    coords = {d: np.arange(n) for d, n in zip(dims, shape)}
    return xr.Dataset(data_vars, coords={**coords, "latitude": lat, "longitude": lon}, attrs=attrs)


def truth_ensemble(spec: dict, variables: dict, members: int, seed: int) -> xr.Dataset:
    """`members` independent fields from the true distribution: a perfect model, for the "truth" rows."""
    rng = np.random.default_rng(seed)
    fields = physical_independent(spec, members, rng)
    return _dataset(fields, spec, variables, ("member",), {"model": "truth", "seed": seed})


def truth_sequences(spec: dict, variables: dict, chains: int, steps: int, seed: int) -> xr.Dataset:
    """`chains` independent sequences of `steps` time steps of the true process (each from its
    stationary start), dims (chain, step, latitude, longitude): the reference for statistics of
    sequences such as block maxima, which independent fields cannot give."""
    rng = np.random.default_rng(seed)
    fields = [physical_sequence(spec, steps, rng) for _ in range(chains)]
    stacked = {v: np.stack([f[v] for f in fields]) for v in fields[0]}
    return _dataset(stacked, spec, variables, ("chain", "step"), {"model": "truth", "seed": seed})
