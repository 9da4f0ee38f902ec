"""Ensemble generation: trained model -> ensemble of fields in physical units, as zarr."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from . import models, synthetic
from .ingest import denormalise, load_stats
from .devices import autocast, select_device, set_threads
from .runtime import FinishedChunks, atomic_path, derived_seed, file_digest, progress

log = logging.getLogger(__name__)


def ensemble_dataset(fields: dict[str, np.ndarray], stats: dict, attrs: dict) -> xr.Dataset:
    """Fields (member, latitude, longitude) per variable as a dataset on the store's grid."""
    lat, lon = stats["grid"]["latitude"], stats["grid"]["longitude"]
    members = next(iter(fields.values())).shape[0]
    data_vars = {name: (("member", "latitude", "longitude"), fields[name].astype(np.float32),
                        {"units": stats["variables"][name]["units"]}) for name in stats["channels"]}
    return xr.Dataset(data_vars, coords={"member": np.arange(members), "latitude": lat, "longitude": lon},
                      attrs=attrs)


def write_ensemble(ds: xr.Dataset, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        ds.chunk({"member": min(64, ds.sizes["member"])}).to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)


def sample(config: dict, model_path: str | Path, stats_path: str | Path, out: str | Path,
           threads: int | None = None) -> Path:
    opts = config["sampling"]
    stats = load_stats(stats_path)
    set_threads(threads or opts["threads"])
    device = select_device(config["training"]["device"])
    model, spec, ckpt = models.load_model(model_path, device)
    if spec.condition_steps:
        raise ValueError(f"model {spec.name} is a forecast model (condition_steps {spec.condition_steps}): "
                         "its ensembles come from htweather.forecast")
    seed = derived_seed(config["seed"], "sample", spec.name)
    shape = (len(stats["grid"]["latitude"]), len(stats["grid"]["longitude"]))
    members, batch = opts["members"], opts["batch_size"]
    nfe = models.evaluations_per_sample(spec, opts)
    # Each batch of members is a function of (seed, its first member) and is kept on disk once
    # made, so a killed job resumes where it stopped; the same weights and settings are required.
    finished = FinishedChunks(out, {"model": file_digest(model_path), "seed": seed, "members": members,
                                    "batch_size": batch, "sampling": opts[spec.family]})
    log.info("sampling %d members of %s (%s, nu %s) on %s: %d network evaluations each%s",
             members, spec.name, spec.family, spec.nu, device, nfe,
             f"; {finished.count()} finished batches found in {finished.root}" if finished.count() else "")

    chunks = []
    t0 = time.perf_counter()
    bar = progress(members, f"sample {spec.name}")
    for start in range(0, members, batch):
        n = min(batch, members - start)
        def make(start=start, n=n):  # called at once, in this iteration
            torch.manual_seed(derived_seed(seed, "members", str(start)))
            with autocast(device):
                return models.generate(model, spec, n, shape, opts, device).cpu().numpy()

        chunks.append(finished.get_or_make(f"members-{start:09d}", make)[0])
        bar.update(n)
    bar.close()
    seconds = time.perf_counter() - t0
    normalised = np.concatenate(chunks)
    if not np.isfinite(normalised).all():
        raise FloatingPointError(f"model {spec.name}: sampler produced non-finite values")
    if ckpt["input_map"] is not None:  # INC: Gaussian scores back to standardised values
        normalised = ckpt["input_map"].inverse(normalised)
    attrs = {"model": spec.name, "family": spec.family, "nu": str(["inf" if math.isinf(v) else v for v in spec.nu]),
             "network_evaluations_per_member": nfe, "seed": seed, "sampling_seconds": round(seconds, 3),
             "training_steps": int(ckpt["steps"]), "sigma_data": str(spec.sigma_data),
             "normalisation": spec.normalisation, "tail_index": json.dumps(ckpt.get("tail_index") or {}),
             "nu_by_variable": json.dumps(spec.nu_by_variable())}
    write_ensemble(ensemble_dataset(denormalise(normalised, stats), stats, attrs), out)
    finished.clear()
    log.info("wrote %s in %.1f s (%.1f members/s)", out, seconds, members / seconds)
    return Path(out)


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
    from .ingest import load_split_times

    stats = load_stats(stats_path)
    steps = len(load_split_times(store, "test"))
    chains = config["evaluation"]["truth_sequences"]
    seed = derived_seed(config["seed"], "sample", "truth_sequences")
    ds = synthetic.truth_sequences(config["data"]["synthetic"], config["data"]["variables"], chains, steps, seed)
    ds = ds.sel(latitude=stats["grid"]["latitude"], longitude=stats["grid"]["longitude"], method="nearest")
    ds = ds.assign_coords(step=np.arange(1, steps + 1))
    with atomic_path(out) as tmp:
        ds.chunk({"chain": 1}).to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)
    log.info("wrote %d true sequences of %d steps to %s", chains, steps, out)
    return Path(out)
