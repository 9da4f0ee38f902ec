"""The synthetic data's true process, sampled like a model: an ensemble of independent draws
from the true distribution (a perfect model: its scores are the sampling noise) and independent
sequences of the true process (the true return levels)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data import synthetic
from ..data.store import load_split_times, load_stats
from .. import artifacts
from ..runtime import derived_seed
from .ensembles import ensemble_dataset, write_ensemble

log = logging.getLogger(__name__)


def sample_truth(config: dict, stats_path: str | Path, out: str | Path) -> Path:
    """The "truth" ensemble: independent draws from the synthetic data's true distribution,
    as many as the models generate (a perfect model: its scores are the sampling noise)."""
    if config["data"]["source"] != "synthetic":
        raise ValueError("a truth ensemble exists only for the synthetic source")
    stats = load_stats(stats_path)
    members = config["sampling"]["members"]
    seed = derived_seed(config["seed"], "sample", "truth")
    ds = synthetic.truth_ensemble(config["data"]["synthetic"], config["data"]["variables"], members, seed)
    ds = ds.sel(latitude=stats["grid"]["latitude"], longitude=stats["grid"]["longitude"], method="nearest")
    ds = ensemble_dataset({v: ds[v].values for v in stats["channels"]}, stats,
                          {"model": "truth", "seed": seed, "family": "closed-form generator"})
    write_ensemble(ds, out)
    return Path(out)


def truth_sequences(config: dict, store: str | Path, stats_path: str | Path, out: str | Path) -> Path:
    """Independent sequences of the synthetic data's true process, each as long as the test split."""
    if config["data"]["source"] != "synthetic":
        raise ValueError("true sequences exist only for the synthetic source")
    stats = load_stats(stats_path)
    steps = len(load_split_times(store, "test"))
    chains = config["evaluation"]["truth_sequences"]
    seed = derived_seed(config["seed"], "sample", "truth_sequences")
    ds = synthetic.truth_sequences(config["data"]["synthetic"], config["data"]["variables"], chains, steps, seed)
    ds = ds.sel(latitude=stats["grid"]["latitude"], longitude=stats["grid"]["longitude"], method="nearest")
    ds = ds.assign_coords(step=np.arange(1, steps + 1))
    with artifacts.written(out) as tmp:
        ds.chunk({"chain": 1}).to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)
    log.info("wrote %d true sequences of %d steps to %s", chains, steps, out)
    return Path(out)
