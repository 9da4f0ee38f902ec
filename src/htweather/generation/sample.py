"""Ensemble generation: trained model -> ensemble of fields in physical units, as zarr."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..data.store import grid_shape, load_stats
from ..models import assemble
from ..models.devices import autocast, select_device, set_threads
from ..runtime import FinishedChunks, derived_seed, file_digest, progress, replicate_seed
from .ensembles import ensemble_dataset, generated_fields, write_ensemble

log = logging.getLogger(__name__)


def sample(config: dict, model_path: str | Path, stats_path: str | Path, out: str | Path,
           threads: int | None = None) -> Path:
    opts = config["sampling"]
    stats = load_stats(stats_path)
    set_threads(threads or opts["threads"])
    device = select_device(config["training"]["device"])
    model, spec, ckpt = assemble.load_model(model_path, device)
    if spec.condition_steps:
        raise ValueError(f"model {spec.name} is a forecast model (condition_steps {spec.condition_steps}): "
                         "its ensembles come from htweather.generation.forecast")
    replicate = int(ckpt.get("replicate", 0))
    seed = replicate_seed(config["seed"], "sample", spec.name, replicate)
    shape = grid_shape(stats)
    members, batch = opts["members"], opts["batch_size"]
    nfe = assemble.evaluations_per_sample(spec, opts)
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
                return assemble.generate(model, spec, n, shape, opts, device).cpu().numpy()

        chunks.append(finished.get_or_make(f"members-{start:09d}", make)[0])
        bar.update(n)
    bar.close()
    seconds = time.perf_counter() - t0
    normalised = np.concatenate(chunks)
    if not np.isfinite(normalised).all():
        raise FloatingPointError(f"model {spec.name}: sampler produced non-finite values")
    if ckpt["input_map"] is not None:  # INC: Gaussian scores back to standardised values
        normalised = ckpt["input_map"].inverse(normalised)
    attrs = {"model": spec.name, "replicate": replicate, "family": spec.family, "nu": str(["inf" if math.isinf(v) else v for v in spec.nu]),
             "network_evaluations_per_member": nfe, "seed": seed, "sampling_seconds": round(seconds, 3),
             "training_steps": int(ckpt["steps"]), "sigma_data": str(spec.sigma_data),
             "normalisation": spec.normalisation, "tail_index": json.dumps(ckpt.get("tail_index") or {}),
             "nu_by_variable": json.dumps(spec.nu_by_variable())}
    write_ensemble(ensemble_dataset(generated_fields(normalised, stats, attrs), stats, attrs), out)
    finished.clear()
    log.info("wrote %s in %.1f s (%.1f members/s)", out, seconds, members / seconds)
    return Path(out)
