"""Reading the analysis-ready store that `ingest` writes: the fields as the models see them
(normalised), the splits, the mask of real cells, the statistics, and the way back to physical
units. Every later stage reads the data through these functions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import artifacts
from . import sources, transforms

log = logging.getLogger(__name__)


def denormalise(values: np.ndarray, stats: dict) -> dict[str, np.ndarray]:
    """Normalised fields (..., C, H, W) -> physical fields per variable: invert the
    standardisation, then the transform, then apply the physical lower bound and make amounts
    below the variable's `dry_below` dry."""
    out = {}
    for c, name in enumerate(stats["channels"]):
        v = stats["variables"][name]
        z = values[..., c, :, :]
        x = transforms.inverse(v["transform"], z * v["std"] + v["mean"])
        if v["lower_bound"] is not None:
            x = np.maximum(x, v["lower_bound"])
            x = make_dry_below(x, v, z)
        out[name] = x
    mask = grid_mask(stats)
    if mask is not None:
        for name in out:
            out[name] = np.where(mask, out[name], np.nan)
    return out


def make_dry_below(x: np.ndarray, variable: dict, normalised: np.ndarray | None = None) -> np.ndarray:
    """Amounts below the variable's `dry_below` (by default its smallest wet train value) set to
    its lower bound: the data hold no value between the two, and a diffusion model, which
    cannot put an exact atom at the bound, would otherwise fill that gap with drizzle.

    With `normalised` (the values x came from), the comparison is made there, with a margin of
    1e-6, about float32's resolution of normalised values: the smallest wet value itself, taken
    through float32 and back, may come out a rounding error short of it and must stay wet."""
    threshold = variable.get("dry_below")
    if threshold is None:
        return x
    if normalised is None:
        below = x < threshold
    else:
        level = (transforms.forward(variable["transform"], threshold) - variable["mean"]) / variable["std"]
        below = normalised < level - 1e-6
    return np.where(below, variable["lower_bound"], x)


def calibrate_dry(fields: dict[str, np.ndarray], stats: dict) -> dict[str, float]:
    """Raise the dry threshold of an unconditional ensemble (`dry_below: auto`) until its
    fraction at the lower bound is the validation split's dry fraction; returns the threshold
    used per variable (changed ones only) and changes `fields` (physical, NaN at masked cells)
    in place.

    Where the data are continuous near the bound (radar block means, patches), the smallest wet
    value is about 0 and the fixed threshold dries nothing: the model's dry mass stays spread
    over small amounts. The ensemble's own quantile at the validation dry fraction puts it back
    at the bound. The threshold only goes up: an ensemble that is already as dry as the
    validation data, or drier, keeps the data's resolution as its threshold, since a lower one
    would make amounts the data never hold. Pooled over every member and real cell, so where the
    model puts its rain is still its own; the dry fraction is then matched by construction and
    measures the validation-test difference, not the model."""
    used = {}
    for name, x in fields.items():
        v = stats["variables"][name]
        target = v.get("validation_dry_fraction")
        if v.get("lower_bound") is not None and "dry_below_rule" not in v:
            log.warning("%s: the store's stats.json predates the calibrated dry threshold (dry_below: auto): the "
                        "threshold stays the smallest wet value; delete results/data and rerun to ingest again", name)
        if v.get("dry_below_rule") != "calibrated" or target is None or v["lower_bound"] is None:
            continue
        values = x[np.isfinite(x)]
        if not values.size or np.mean(values <= v["lower_bound"]) >= target:
            continue
        k = int(np.ceil(target * values.size))  # at least the target's share strictly below it
        # an all-dry validation split dries everything: just above the largest value, finite for JSON
        threshold = float(np.partition(values, k)[k] if k < values.size else np.nextafter(values.max(), np.inf))
        fields[name] = np.where(x < threshold, v["lower_bound"], x)
        used[name] = threshold
    return used


def valid_values(fields: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The values of (time, latitude, longitude) `fields` at real cells and valid times,
    flattened: masked cells and values missing at some times only (NaN) left out."""
    values = fields[:, mask] if mask is not None else fields.reshape(len(fields), -1)
    values = values.ravel()
    return values[~np.isnan(values)]


def grid_dims(stats: dict) -> tuple[str, str]:
    """The store's two grid dimensions: latitude, longitude (regular) or y, x (projected)."""
    return tuple(stats["grid"].get("dims", ("latitude", "longitude")))


def grid_shape(stats: dict) -> tuple[int, int]:
    lat = np.asarray(stats["grid"]["latitude"])
    return lat.shape if lat.ndim == 2 else (len(stats["grid"]["latitude"]), len(stats["grid"]["longitude"]))


def grid_coords(stats: dict) -> dict:
    """Coordinates for a dataset on the store's grid: 1-D latitude, longitude; or y, x with the
    2-D latitude(y, x), longitude(y, x)."""
    grid = stats["grid"]
    if grid_dims(stats) == ("latitude", "longitude"):
        return {"latitude": grid["latitude"], "longitude": grid["longitude"]}
    return {"y": grid["y"], "x": grid["x"], "latitude": (("y", "x"), np.asarray(grid["latitude"])),
            "longitude": (("y", "x"), np.asarray(grid["longitude"]))}


EARTH_RADIUS_KM = 6371.0


def cell_areas(latitude, longitude) -> np.ndarray:
    """(ny, nx) cell areas in km^2 on a sphere: R^2 cos(phi) |d(phi, lambda) / d(i, j)|, the
    Jacobian of the grid's latitude and longitude (radians) with respect to its indices, by
    central differences. On a regular lat/lon grid this is R^2 cos(phi) dphi dlambda (the
    cos-latitude weights); on a projected grid it is each cell's own area (equal everywhere on
    an equal-area projection). 1-D latitude and longitude mean a regular grid."""
    lat, lon = np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)
    if lat.ndim == 1:
        lat, lon = np.meshgrid(lat, lon, indexing="ij")
    phi = np.deg2rad(lat)

    def gradient(a, axis):
        return np.gradient(a, axis=axis) if a.shape[axis] > 1 else np.zeros_like(a)

    dphi_i, dphi_j = gradient(phi, 0), gradient(phi, 1)
    # longitude unwrapped along each direction of differencing: no 2 pi jump across the dateline
    dlam_i = gradient(np.deg2rad(np.unwrap(lon, period=360.0, axis=0)), 0)
    dlam_j = gradient(np.deg2rad(np.unwrap(lon, period=360.0, axis=1)), 1)
    if lat.shape[0] == 1 or lat.shape[1] == 1:  # one row or column: no Jacobian; length only
        return EARTH_RADIUS_KM**2 * np.cos(phi) * np.maximum(np.abs(dphi_i + dphi_j), np.abs(dlam_i + dlam_j))
    return EARTH_RADIUS_KM**2 * np.cos(phi) * np.abs(dphi_i * dlam_j - dphi_j * dlam_i)


def area_weights(stats: dict) -> np.ndarray:
    """(ny, nx) cell-area weights normalised to mean 1 over the real cells (0 at masked ones)."""
    areas = cell_areas(stats["grid"]["latitude"], stats["grid"]["longitude"])
    areas = np.where(areas < 1e-12 * areas.max(), 0.0, areas)  # cos(90 deg) is 6e-17 in floating point
    mask = grid_mask(stats)
    real = mask if mask is not None else np.ones(areas.shape, dtype=bool)
    return np.where(real, areas / areas[real].mean(), 0.0)


def grid_mask(stats: dict) -> np.ndarray | None:
    """(latitude, longitude) bool array, True at real cells; None when every cell is real."""
    mask = stats["grid"].get("mask")
    return None if mask is None else np.asarray(mask, dtype=bool)


def normalise(raw: dict[str, np.ndarray], norm: dict, mask: np.ndarray) -> np.ndarray:
    """Physical fields per variable (time, latitude, longitude) -> the normalised fields
    (time, variable, latitude, longitude) float32: forward(transform, x) standardised with the
    train-split statistics `norm`, 0 at masked cells, NaN where a real cell is missing at that
    time only (the consumers fill it and give it no weight: `valid_values`, the training loss)."""
    out = np.stack([(transforms.forward(n["transform"], raw[v].astype(np.float64)) - n["mean"]) / n["std"]
                    for v, n in norm.items()], axis=1)
    return np.where(mask, out, 0.0).astype(np.float32)


def normalised(store: str | Path) -> xr.DataArray:
    """The whole store's normalised fields as a lazy (dask) array, (time, variable, latitude,
    longitude) float32, with the `split` label of each time: for inspection; the stages read
    through `split_rows`."""
    ds = artifacts.open_zarr(store, chunks={})
    norm = json.loads(ds.attrs["normalisation"])
    mask = ds["mask"].values.astype(bool)  # read once, not per block
    fields = xr.concat([ds[v] for v in norm], dim=pd.Index(list(norm), name="variable"))
    dims = sources.grid_dims(ds)
    fields = fields.transpose("time", "variable", *dims).chunk({"variable": -1, dims[0]: -1, dims[1]: -1})
    values = fields.data.map_blocks(lambda block: normalise(dict(zip(norm, np.moveaxis(block, 1, 0))), norm, mask),
                                    dtype=np.float32)
    return fields.copy(data=values)


class SplitReader:
    """Normalised rows of one split, read from the store without dask (its per-chunk tasks cost
    more than the reading): the store is opened, and the split's time index and the mask are
    read, once; each call reads only the chunks that hold the rows asked for. The store keeps
    the physical fields only (half the disk and one write less): the normalisation is an exact,
    cheap function of them and of the statistics in its attributes."""

    def __init__(self, store: str | Path, split: str):
        self.ds = artifacts.open_zarr(store)
        self.index = np.flatnonzero(self.ds.split.values == split)
        self.norm = json.loads(self.ds.attrs["normalisation"])
        self.mask = self.ds["mask"].values.astype(bool)

    def __call__(self, rows=None) -> np.ndarray:
        """Rows `rows` (positions within the split; None: all), (time, variable, latitude,
        longitude) float32."""
        index = self.index if rows is None else self.index[rows]
        return normalise({v: self.ds[v].isel(time=index).values for v in self.norm}, self.norm, self.mask)


def split_rows(store: str | Path, split: str, rows=None) -> np.ndarray:
    """The normalised fields of time steps `rows` (positions within the split; None: all) of
    one split (`SplitReader`, opened for this one read)."""
    return SplitReader(store, split)(rows)


def load_split(store: str | Path, split: str) -> np.ndarray:
    """The normalised fields of one split, (time, variable, latitude, longitude) float32."""
    return split_rows(store, split)


def load_split_times(store: str | Path, split: str) -> pd.DatetimeIndex:
    """The time stamps of one split, in order (the rows of `load_split`)."""
    ds = artifacts.open_zarr(store)
    return pd.DatetimeIndex(ds.time.values[ds.split.values == split])


def load_mask(store: str | Path) -> np.ndarray | None:
    """The store's (latitude, longitude) mask of real cells; None when every cell is real."""
    ds = artifacts.open_zarr(store)
    if "mask" not in ds:
        return None
    mask = ds["mask"].values.astype(bool)
    return None if mask.all() else mask


def load_stats(path: str | Path) -> dict:
    return artifacts.read_json(path)


def split_fields(store: str | Path, split: str) -> dict[str, np.ndarray]:
    """One split's physical fields (time, latitude, longitude) per variable, float64."""
    ds = artifacts.open_zarr(store)  # read at once: no dask tasks per chunk
    part = ds.isel(time=np.flatnonzero(ds.split.values == split))
    return {v: part[v].values.astype(np.float64) for v in json.loads(ds.attrs["channels"])}


def test_fields(store: str | Path) -> dict[str, np.ndarray]:
    """The test split's physical fields (time, latitude, longitude) per variable."""
    return split_fields(store, "test")
