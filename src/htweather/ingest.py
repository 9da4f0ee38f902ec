"""Ingestion (first version): NetCDF files -> analysis-ready, normalised, chunked zarr store.

Steps: open the files lazily with xarray + dask, select variables, crop, put latitude in ERA5
order (descending), keep the times of the train/validation/test splits, convert units, write
the physical fields, compute normalisation statistics from the TRAIN split only, and write the
per-variable transform of each field standardised with those statistics. The source is read
once; the store is written under a temporary name and renamed at the end, so a failure leaves
no half-written store.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask.diagnostics import ProgressBar

from . import transforms
from .config import SPLITS, HtweatherError
from .runtime import atomic_path

log = logging.getLogger(__name__)

# Names other products use for ERA5's dimensions: new CDS files (valid_time), CF-style (lat/lon).
_DIM_ALIASES = {"valid_time": "time", "lat": "latitude", "lon": "longitude"}


class IngestError(HtweatherError):
    pass


GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")


def _open_one(path: str) -> xr.Dataset:
    if path.lower().endswith(GRIB_SUFFIXES):
        # indexpath "": no .idx file next to the input (input folders may be read-only)
        return xr.open_dataset(path, engine="cfgrib", chunks={}, backend_kwargs={"indexpath": ""})
    return xr.open_dataset(path, engine="netcdf4", chunks={})


def open_files(files: list[str], variables: list[str], require_all: bool = True) -> xr.Dataset:
    """Open and combine NetCDF (or GRIB) files lazily. Variables may be spread over files (one
    file per variable, as the CDS often delivers); errors name the file and variable at fault.
    With require_all=False, variables absent from every file are not an error (used to check a
    first file of many)."""
    if not files:
        raise IngestError("no input files")
    parts, found = [], {}
    for path in files:
        try:
            ds = _open_one(path)
        except Exception as exc:  # backends raise OSError, ValueError, RuntimeError, KeyError...
            raise IngestError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
        ds = ds.rename({k: v for k, v in _DIM_ALIASES.items() if k in ds.variables and v not in ds.variables})
        present = [v for v in variables if v in ds.data_vars]
        has = ", ".join(map(str, ds.data_vars))
        if not present and (len(files) > 1 or not require_all):
            raise IngestError(f"{path}: none of the variables {', '.join(variables)} (file has: {has})")
        for dim in ("time", "latitude", "longitude"):
            if dim not in ds.dims:
                raise IngestError(f"{path}: no '{dim}' dimension (dims: {', '.join(map(str, ds.dims))})")
        for v in present:
            found.setdefault(v, path)
        parts.append(ds[present].drop_vars([c for c in ds[present].coords if c not in ("time", "latitude", "longitude")]))
    missing = [v for v in variables if v not in found]
    if missing and require_all:
        if len(files) == 1:
            raise IngestError(f"{files[0]}: variable '{missing[0]}' not found (file has: {has})")
        raise IngestError(f"variable '{missing[0]}' not found in {files[0]} or the {len(files) - 1} other input file(s)")
    try:
        combined = xr.combine_by_coords(parts, combine_attrs="drop_conflicts", data_vars="minimal",
                                        coords="minimal", compat="override", join="exact")
    except ValueError as exc:
        raise IngestError(f"{files[0]} and the other {len(files) - 1} file(s) do not combine "
                          f"(grids or times differ?): {exc}") from None
    return combined


def check_first_file(config: dict) -> None:
    """Cheap up-front check (metadata only) that the first input file has the variables and
    dimensions the config asks for, so a bad config fails before any job runs."""
    from .config import input_files

    files = input_files(config)
    open_files(files[:1], list(config["data"]["variables"]), require_all=len(files) == 1).close()


def _select_region(ds: xr.Dataset, region: dict | None, files: list[str]) -> xr.Dataset:
    if region:
        lat_lo, lat_hi = sorted(region["lat"])
        lon_lo, lon_hi = sorted(region["lon"])
        ds = ds.sel(latitude=ds.latitude[(ds.latitude >= lat_lo) & (ds.latitude <= lat_hi)],
                    longitude=ds.longitude[(ds.longitude >= lon_lo) & (ds.longitude <= lon_hi)])
        if ds.sizes["latitude"] == 0 or ds.sizes["longitude"] == 0:
            raise IngestError(f"data.region selects no grid cell of {files[0]}")
    return ds.sortby("latitude", ascending=False).sortby("longitude")


def _select_splits(ds: xr.Dataset, splits: dict, files: list[str]) -> xr.Dataset:
    time = pd.DatetimeIndex(ds.time.values)
    if not time.is_monotonic_increasing or time.has_duplicates:
        raise IngestError(f"{files[0]}: time axis is not strictly increasing across the input files")
    label = np.full(len(time), "", dtype=object)
    for split in SPLITS:
        start, end = (pd.Timestamp(t) for t in splits[split])
        inside = (time >= start) & (time <= end)
        if not inside.any():
            raise IngestError(f"data.splits.{split}: {start} .. {end} selects no time in the input "
                              f"({time[0]} .. {time[-1]})")
        label[inside] = split
    keep = label != ""
    return ds.isel(time=np.flatnonzero(keep)).assign_coords(split=("time", label[keep].astype(str)))


def processing_chunk(store_chunk: int, cells: int, target_bytes: float = 64e6) -> int:
    """Time steps per dask task: a multiple of the store's chunk (so each task writes whole zarr
    chunks) holding about `target_bytes` of float64 per variable. Computing with the small
    training chunks instead would spend the time in task overhead."""
    steps = max(1, int(target_bytes // (8 * cells)))
    return store_chunk * max(1, steps // store_chunk)


def ingest(config: dict, files: list[str], store: str | Path, stats_path: str | Path) -> dict:
    """Build the training store and its statistics file; returns the statistics."""
    data = config["data"]
    variables = list(data["variables"])
    store, stats_path = Path(store), Path(stats_path)
    ds = open_files(files, variables)
    ds = _select_region(ds, data["region"], files)
    ds = _select_splits(ds, data["splits"], files)
    log.info("selected %s time steps x %s x %s grid cells, variables %s",
             ds.sizes["time"], ds.sizes["latitude"], ds.sizes["longitude"], variables)

    physical = {}
    meta = {}
    for name in variables:
        opts = data["variables"][name]
        source_units = ds[name].attrs.get("units")
        scale, offset = transforms.unit_conversion(source_units, opts["units"], where=f"data.variables.{name}.units")
        da = ds[name].astype(np.float64) * scale + offset
        physical[name] = da.transpose("time", "latitude", "longitude").astype(np.float32)
        physical[name].attrs = {"units": opts["units"] or source_units or "1",
                                "long_name": ds[name].attrs.get("long_name", name)}
        meta[name] = {"transform": opts["transform"], "units": physical[name].attrs["units"],
                      "source_units": source_units, "lower_bound": opts["lower_bound"], "tails": opts["tails"]}

    chunk = data["time_chunk"]
    work = processing_chunk(chunk, ds.sizes["latitude"] * ds.sizes["longitude"])
    out = xr.Dataset(physical).chunk({"time": work, "latitude": -1, "longitude": -1})
    out.attrs = {"source_files": json.dumps([str(f) for f in files]),
                 "splits": json.dumps(data["splits"]), "region": json.dumps(data["region"]),
                 "created_by": "htweather.ingest"}
    for name in variables:
        out[name].encoding = {"chunks": (chunk, ds.sizes["latitude"], ds.sizes["longitude"])}
    with atomic_path(store) as tmp, atomic_path(stats_path) as stats_tmp:
        log.info("writing physical fields")
        with ProgressBar(dt=1.0):
            out.to_zarr(tmp, mode="w", consolidated=False, zarr_format=2)

        stored = xr.open_zarr(tmp, consolidated=False, chunks={"time": work})
        stats = _statistics(stored, variables, meta, files)
        normalised = xr.concat(
            [(transforms.forward(meta[v]["transform"], stored[v].astype(np.float64)) - stats["variables"][v]["mean"])
             / stats["variables"][v]["std"] for v in variables],
            dim=pd.Index(variables, name="variable"),
        ).transpose("time", "variable", "latitude", "longitude").astype(np.float32)
        normalised = normalised.chunk({"time": work, "variable": -1, "latitude": -1, "longitude": -1})
        normalised.encoding = {"chunks": (chunk, len(variables), ds.sizes["latitude"], ds.sizes["longitude"])}
        normalised.attrs = {"description": "forward(transform, x) standardised with the train-split mean and std"}
        log.info("writing normalised fields")
        with ProgressBar(dt=1.0):
            xr.Dataset({"normalised": normalised}).to_zarr(tmp, mode="a", consolidated=True, zarr_format=2)
        stats_tmp.write_text(json.dumps(stats, indent=2))
    return stats


def _statistics(stored: xr.Dataset, variables: list[str], meta: dict, files: list[str]) -> dict:
    """Mean and std of each transformed variable over the train split; checks for missing or
    impossible values over all splits."""
    train = stored.sel(time=stored.split == "train")
    lazy = {}
    for v in variables:
        transformed = transforms.forward(meta[v]["transform"], train[v].astype(np.float64))
        lazy[v] = (transformed.mean(), transformed.std(), stored[v].isnull().sum(), stored[v].min(), stored[v].max(),
                   train[v].mean(), train[v].std())
    log.info("computing normalisation statistics on the train split")
    with ProgressBar(dt=1.0):
        (computed,) = dask.compute(lazy)
    result = {"channels": variables, "variables": {}, "splits": {}}
    for v in variables:
        mean, std, n_missing, vmin, vmax, physical_mean, physical_std = (float(x) for x in computed[v])
        if n_missing:
            raise IngestError(f"{files[0]}: variable '{v}' has {int(n_missing)} missing values in the selected "
                              f"region and times (masked grids are not supported by this version)")
        if not np.isfinite(mean) or not np.isfinite(std):
            raise IngestError(f"{files[0]}: variable '{v}' gives non-finite values after its "
                              f"'{meta[v]['transform']}' transform")
        if std == 0:
            raise IngestError(f"{files[0]}: variable '{v}' is constant over the train split")
        tails = meta[v]["tails"]
        if tails == "auto":
            tails = auto_tails(vmin, physical_mean, physical_std)
        result["variables"][v] = {**meta[v], "tails": tails, "mean": mean, "std": std, "min": vmin, "max": vmax}
    for split in SPLITS:
        times = stored.time.values[stored.split.values == split]
        result["splits"][split] = {"start": str(times[0]), "end": str(times[-1]), "n_times": int(len(times))}
    result["grid"] = {"latitude": stored.latitude.values.tolist(), "longitude": stored.longitude.values.tolist()}
    return result


def auto_tails(minimum: float, mean: float, std: float) -> str:
    """Which tails the tail metrics examine: "upper" for variables bounded below at zero within a
    few standard deviations of their mean (precipitation, wind speed), "both" otherwise
    (vertical velocity, temperature in K or degC, pressure)."""
    return "upper" if minimum >= 0 and mean < 3 * std else "both"


def denormalise(values: np.ndarray, stats: dict) -> dict[str, np.ndarray]:
    """Normalised fields (..., C, H, W) -> physical fields per variable: invert the
    standardisation, then the transform, then apply the physical lower bound."""
    out = {}
    for c, name in enumerate(stats["channels"]):
        v = stats["variables"][name]
        x = transforms.inverse(v["transform"], values[..., c, :, :] * v["std"] + v["mean"])
        if v["lower_bound"] is not None:
            x = np.maximum(x, v["lower_bound"])
        out[name] = x
    return out


def load_split(store: str | Path, split: str) -> np.ndarray:
    """The normalised fields of one split, (time, variable, latitude, longitude) float32."""
    ds = xr.open_zarr(store)
    return ds["normalised"].sel(time=ds.split == split).values


def load_stats(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
