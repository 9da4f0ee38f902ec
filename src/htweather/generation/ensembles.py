"""An ensemble of fields (member, latitude, longitude) per variable, on the store's grid, as the
zarr store that sampling writes and evaluation reads. No torch here: the true process's
ensemble (`truth`) is written the same way without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..data.store import grid_coords, grid_dims
from .. import artifacts


def ensemble_dataset(fields: dict[str, np.ndarray], stats: dict, attrs: dict) -> xr.Dataset:
    """Fields (member, grid rows, grid columns) per variable as a dataset on the store's grid."""
    members = next(iter(fields.values())).shape[0]
    data_vars = {name: (("member", *grid_dims(stats)), fields[name].astype(np.float32),
                        {"units": stats["variables"][name]["units"]}) for name in stats["channels"]}
    return xr.Dataset(data_vars, coords={"member": np.arange(members), **grid_coords(stats)}, attrs=attrs)


def write_ensemble(ds: xr.Dataset, path: str | Path) -> None:
    with artifacts.written(path) as tmp:
        ds.chunk({"member": min(64, ds.sizes["member"])}).to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)
