"""An ensemble of fields (member, latitude, longitude) per variable, on the store's grid, as the
zarr store that sampling writes and evaluation reads. No torch here: the true process's
ensemble (`truth`) is written the same way without it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from ..data.store import calibrate_dry, denormalise, grid_coords, grid_dims
from .. import artifacts

log = logging.getLogger(__name__)


def generated_fields(normalised: np.ndarray, stats: dict, attrs: dict) -> dict[str, np.ndarray]:
    """An unconditional ensemble (member, C, H, W), normalised -> physical fields per variable, with each
    zero-inflated variable's dry threshold calibrated on the whole ensemble
    (`store.calibrate_dry`); the thresholds it raised go into `attrs["dry_below_calibrated"]`."""
    fields = denormalise(normalised, stats)
    raised = calibrate_dry(fields, stats)
    for name, threshold in raised.items():
        v = stats["variables"][name]
        log.info("%s: dry below %.4g %s, raised from %s so that the ensemble's dry fraction is the validation "
                 "split's %.3f (dry_below: auto)", name, threshold, v["units"], v.get("dry_below"),
                 v["validation_dry_fraction"])
    attrs["dry_below_calibrated"] = json.dumps(raised)
    return fields


def calibrated_dry(attrs: dict) -> dict[str, float]:
    """The dry thresholds `generated_fields` raised, per variable, from an ensemble's attributes
    (empty for a fixed threshold, an ensemble already as dry as the validation split, a
    conditional ensemble or an ensemble written before the rule)."""
    return json.loads(attrs.get("dry_below_calibrated", "{}"))


def ensemble_dataset(fields: dict[str, np.ndarray], stats: dict, attrs: dict) -> xr.Dataset:
    """Fields (member, grid rows, grid columns) per variable as a dataset on the store's grid."""
    members = next(iter(fields.values())).shape[0]
    data_vars = {name: (("member", *grid_dims(stats)), fields[name].astype(np.float32),
                        {"units": stats["variables"][name]["units"]}) for name in stats["channels"]}
    return xr.Dataset(data_vars, coords={"member": np.arange(members), **grid_coords(stats)}, attrs=attrs)


def write_ensemble(ds: xr.Dataset, path: str | Path) -> None:
    with artifacts.written(path) as tmp:
        ds.chunk({"member": min(64, ds.sizes["member"])}).to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)
