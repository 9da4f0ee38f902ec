"""Reading the analysis-ready store that `ingest` writes: the fields as the models see them
(normalised), the splits, the mask of real cells, the statistics, and the way back to physical
units. Every later stage reads the data through these functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import transforms


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
    mask = grid_mask(stats)
    if mask is not None:
        for name in out:
            out[name] = np.where(mask, out[name], np.nan)
    return out


def valid_values(fields: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The values of (time, latitude, longitude) `fields` at real cells and valid times,
    flattened: masked cells and values missing at some times only (NaN) left out."""
    values = fields[:, mask] if mask is not None else fields.reshape(len(fields), -1)
    values = values.ravel()
    return values[~np.isnan(values)]


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
    ds = xr.open_zarr(store)
    norm = json.loads(ds.attrs["normalisation"])
    mask = ds["mask"].values.astype(bool)  # read once, not per block
    fields = xr.concat([ds[v] for v in norm], dim=pd.Index(list(norm), name="variable"))
    fields = fields.transpose("time", "variable", "latitude", "longitude").chunk({"variable": -1, "latitude": -1,
                                                                                 "longitude": -1})
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
        self.ds = xr.open_zarr(store, chunks=None)
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
    ds = xr.open_zarr(store, chunks=None)
    return pd.DatetimeIndex(ds.time.values[ds.split.values == split])


def load_mask(store: str | Path) -> np.ndarray | None:
    """The store's (latitude, longitude) mask of real cells; None when every cell is real."""
    ds = xr.open_zarr(store, chunks=None)
    if "mask" not in ds:
        return None
    mask = ds["mask"].values.astype(bool)
    return None if mask.all() else mask


def load_stats(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def split_fields(store: str | Path, split: str) -> dict[str, np.ndarray]:
    """One split's physical fields (time, latitude, longitude) per variable, float64."""
    ds = xr.open_zarr(store, chunks=None)  # read at once: no dask tasks per chunk
    part = ds.isel(time=np.flatnonzero(ds.split.values == split))
    return {v: part[v].values.astype(np.float64) for v in json.loads(ds.attrs["channels"])}


def test_fields(store: str | Path) -> dict[str, np.ndarray]:
    """The test split's physical fields (time, latitude, longitude) per variable."""
    return split_fields(store, "test")
