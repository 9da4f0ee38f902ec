"""Ensemble forecasts and free-running sequences from a conditional model.

A forecast model with h = condition_steps sees the states x_{t-h+1} .. x_t (normalised) and
generates x_{t+1}. From each start time of the test split it makes an ensemble of `members`
forecasts; leads beyond one step are autoregressive: every member continues from its own
generated state. Free-running sequences ("rollouts") continue the same way for many steps
without looking at data again; their block maxima are what the GEV fits compare with the data's.

Trajectories are kept in standardised units with masked cells at 0, exactly as the training
examples were (for an INC model, each generated state is mapped back before it conditions the
next step), so a rollout never feeds the network anything it was not trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..data.store import denormalise, grid_coords, grid_dims, load_mask, load_split, load_split_times, load_stats
from ..data.windows import regular_windows, time_step
from ..errors import ConfigError
from ..models import assemble
from ..models.devices import autocast, select_device, set_threads
from .. import artifacts
from ..runtime import FinishedChunks, derived_seed, file_digest, progress, replicate_seed

log = logging.getLogger(__name__)


def start_indices(times: pd.DatetimeIndex, history: int, lead: int, count: int | str) -> np.ndarray:
    """`count` start times evenly spread over the split ("all": every one), each with `history`
    observed states up to it and `lead` observed steps after it (to verify against)."""
    valid = regular_windows(times, before=history - 1, after=lead)
    if len(valid) == 0:
        raise ConfigError(f"forecast.lead_steps: the test split has no {history + lead} consecutive time steps "
                          f"({history} to start from, {lead} to verify)")
    if count == "all" or count >= len(valid):
        return valid
    picks = np.unique(np.round(np.linspace(0, len(valid) - 1, count)).astype(int))
    return valid[picks]


class Stepper:
    """One forecast step for a batch of states: standardised history in, next standardised state out."""

    def __init__(self, model, spec: assemble.ModelSpec, input_map, mask, sampling: dict, device):
        self.model, self.spec, self.input_map = model, spec, input_map
        self.mask = None if mask is None else torch.from_numpy(mask)
        self.sampling, self.device = sampling, device

    def to_model(self, standardised: torch.Tensor) -> torch.Tensor:
        if self.input_map is None:
            return standardised
        return torch.from_numpy(self.input_map.forward(standardised.numpy()))

    def __call__(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, h, C, H, W) standardised -> next state (B, C, H, W) standardised, float32."""
        b, h, c, height, width = history.shape
        cond = self.to_model(history.reshape(b * h, c, height, width)).reshape(b, h * c, height, width)
        cond = torch.nan_to_num(cond, nan=0.0)  # a value missing at that time: the mean, as in training
        with autocast(self.device):
            x = assemble.generate(self.model, self.spec, b, (height, width), self.sampling, self.device,
                                cond=cond.to(self.device)).cpu().numpy()
        if self.input_map is not None:
            x = self.input_map.inverse(x)
        x = torch.from_numpy(x.astype(np.float32))
        if self.mask is not None:
            x = torch.where(self.mask, x, torch.zeros((), dtype=x.dtype))
        return x


def run_trajectories(stepper: Stepper, history: torch.Tensor, steps: int, batch: int, bar, seed: int,
                     finished: FinishedChunks, key: str) -> np.ndarray:
    """Advance every trajectory `steps` times, `batch` trajectories per network call.
    history (N, h, C, H, W) -> generated states (N, steps, C, H, W) standardised.

    Each batch draws from its own seed (derived from `seed` and its first trajectory) and is
    kept in `finished` once done, so a killed job redoes only the batch it was on."""
    out = np.empty((history.shape[0], steps, *history.shape[2:]), dtype=np.float32)
    for start in range(0, history.shape[0], batch):
        def make(start=start):  # called at once, in this iteration
            torch.manual_seed(derived_seed(seed, key, str(start)))
            state = history[start:start + batch].clone()
            part = np.empty((len(state), steps, *history.shape[2:]), dtype=np.float32)
            for step in range(steps):
                new = stepper(state)
                part[:, step] = new.numpy()
                state = torch.cat([state[:, 1:], new[:, None]], dim=1)
                bar.update(len(new))
            return part

        part, made = finished.get_or_make(f"{key}-{start:09d}", make)
        if not made:
            bar.update(part.shape[0] * steps)
        out[start:start + batch] = part
    return out


def _physical(standardised: np.ndarray, stats: dict, dims: tuple[str, ...], coords: dict, attrs: dict) -> xr.Dataset:
    fields = denormalise(standardised.astype(np.float64), stats)
    data_vars = {v: (dims + grid_dims(stats), fields[v].astype(np.float32),
                     {"units": stats["variables"][v]["units"]}) for v in stats["channels"]}
    coords = {**coords, **grid_coords(stats)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _write(ds: xr.Dataset, path: str | Path, chunk_dim: str) -> None:
    with artifacts.written(path) as tmp:
        (ds.chunk({chunk_dim: 1}) if ds.sizes[chunk_dim] else ds).to_zarr(tmp, mode="w", consolidated=True,
                                                                           zarr_format=2)


def forecast(config: dict, model_path: str | Path, store: str | Path, stats_path: str | Path,
             forecasts_out: str | Path, rollouts_out: str | Path | None, threads: int | None = None,
             leads: int | None = None) -> None:
    """Ensemble forecasts from evenly spaced test start times, and free-running sequences
    (none when `rollouts_out` is None). `leads`: forecast only the first `leads` of the
    `forecast.lead_steps` from the same start times (the convergence check's lead-1
    forecasts from snapshots)."""
    opts, sampling = config["forecast"], config["sampling"]
    stats = load_stats(stats_path)
    set_threads(threads or sampling["threads"])
    device = select_device(config["training"]["device"])
    model, spec, ckpt = assemble.load_model(model_path, device)
    if spec.condition_steps == 0:
        raise ValueError(f"model {spec.name} is unconditional (condition_steps 0): it cannot forecast")
    h, lead, members = spec.condition_steps, opts["lead_steps"], opts["members"]
    replicate = int(ckpt.get("replicate", 0))
    seed = replicate_seed(config["seed"], "forecast", spec.name, replicate)
    stepper = Stepper(model, spec, ckpt["input_map"], load_mask(store), sampling, device)

    fields = torch.from_numpy(load_split(store, "test"))
    times = load_split_times(store, "test")
    step = time_step(times)
    starts = start_indices(times, h, lead, opts["init_times"])  # chosen for lead_steps, whatever `leads`
    lead = min(lead, leads) if leads else lead
    history = torch.stack([fields[i - h + 1:i + 1] for i in starts])  # (N, h, C, H, W)
    # finished batches are reused only for the same weights, settings and test data
    finished = FinishedChunks(forecasts_out, {"model": file_digest(model_path), "seed": seed, "forecast": opts,
                                              "sampling": sampling, "starts": [str(t) for t in times[starts]],
                                              "test_fields": hashlib.sha256(fields.numpy().tobytes()).hexdigest()})
    chains, length = (opts["rollout_chains"], opts["rollout_steps"]) if rollouts_out is not None else (0, 0)
    total = len(starts) * members * lead + chains * length
    log.info("%s: %d-member forecasts from %d start times, %d lead steps (%s each); %d free-running "
             "sequences of %d steps; %d network evaluations per field", spec.name, members, len(starts), lead,
             step, chains, length, assemble.evaluations_per_sample(spec, sampling))

    bar = progress(total, f"forecast {spec.name}")
    t0 = time.perf_counter()
    ensemble_history = history.repeat_interleave(members, dim=0)
    generated = run_trajectories(stepper, ensemble_history, lead, sampling["batch_size"], bar, seed, finished,
                                 "forecasts")
    seconds = time.perf_counter() - t0
    generated = generated.reshape(len(starts), members, lead, *generated.shape[2:]).transpose(0, 2, 1, 3, 4, 5)
    attrs = {"model": spec.name, "replicate": replicate, "family": spec.family, "condition_steps": h, "seed": seed,
             "nu": str(["inf" if np.isinf(v) else v for v in spec.nu]), "time_step": str(step),
             "network_evaluations_per_field": assemble.evaluations_per_sample(spec, sampling),
             "sampling_seconds": round(seconds, 3), "training_steps": int(ckpt["steps"]),
             "sigma_data": str(spec.sigma_data), "normalisation": spec.normalisation,
             "tail_index": json.dumps(ckpt.get("tail_index") or {}),
             "nu_by_variable": json.dumps(spec.nu_by_variable())}
    init_times = times[starts]
    leads = np.arange(1, lead + 1)
    valid_times = init_times.values[:, None] + leads[None, :] * step.to_timedelta64()
    coords = {"init_time": init_times.values, "lead": leads, "member": np.arange(members),
              "valid_time": (("init_time", "lead"), valid_times)}
    _write(_physical(generated, stats, ("init_time", "lead", "member"), coords, attrs), forecasts_out, "init_time")

    if rollouts_out is None:
        finished.clear()
        log.info("wrote %s", forecasts_out)
        return
    # Free-running sequences start from test states chosen with the forecast's seed.
    rng = np.random.default_rng(seed)
    valid = regular_windows(times, before=h - 1, after=0)
    chain_starts = rng.choice(valid, size=chains, replace=len(valid) < chains) if chains else np.zeros(0, int)
    rollout_history = (torch.stack([fields[i - h + 1:i + 1] for i in chain_starts]) if chains
                       else torch.zeros((0, h, *fields.shape[1:])))
    t0 = time.perf_counter()
    sequences = run_trajectories(stepper, rollout_history, length, sampling["batch_size"], bar, seed, finished,
                                 "sequences")
    bar.close()
    coords = {"chain": np.arange(chains), "step": np.arange(1, length + 1)}
    _write(_physical(sequences, stats, ("chain", "step"), coords,
                     {**attrs, "sampling_seconds": round(time.perf_counter() - t0, 3),
                      "start_times": [str(t) for t in times[chain_starts]]}),
           rollouts_out, "chain")
    finished.clear()
    log.info("wrote %s and %s", forecasts_out, rollouts_out)
