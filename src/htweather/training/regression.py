"""Training CorrDiff's regression stage (`models.regression`): mean squared error of mu(c)
against the fine field, with the diffusion models' optimiser settings, batches drawn from the
training seed alone (so that replicates differ only in their seeds), and the weights kept beside
the model so that a resumed training does not redo it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .. import artifacts
from ..config import adam_betas
from ..models.regression import RegressionNet, build_regression
from ..runtime import derived_seed, progress

log = logging.getLogger(__name__)


def _mse(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    valid = torch.isfinite(target)
    w = valid.to(prediction.dtype) if weight is None else valid * weight
    error = (prediction - torch.nan_to_num(target, nan=0.0)) ** 2
    return (error * w).sum() / w.sum().clamp_min(1.0)


def train_regression(fields: np.ndarray, conditions: np.ndarray, architecture: dict, opts: dict, seed: int,
                     device, weight: torch.Tensor | None, path: str | Path, identity) -> RegressionNet:
    """mu(c) trained for `opts["regression_steps"]` (None: `opts["steps"]`) steps of
    `opts["batch_size"]` fields (N, C, H, W) given their `conditions`; read back from `path` when
    it holds this `identity`'s weights already (plain data compared with ==: the caller's JSON
    text, so that NaN compares equal)."""
    regression = build_regression(fields.shape[1], conditions.shape[1], architecture).to(device)
    path = Path(path)
    if path.exists():
        saved = torch.load(path, map_location=device, weights_only=True)
        if saved.get("identity") == identity:
            regression.load_state_dict(saved["weights"])
            log.info("regression stage read back from %s", path)
            return regression.eval().requires_grad_(False)
    steps = opts.get("regression_steps") or opts["steps"]
    optimiser = torch.optim.AdamW(regression.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"],
                                  betas=adam_betas(opts))
    warmup = max(1, opts["warmup_steps"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / warmup))
    x_all, c_all = torch.from_numpy(fields), torch.from_numpy(np.nan_to_num(conditions))
    bar = progress(steps, "regression stage")
    regression.train()
    recent = []
    for step in range(steps):
        generator = torch.Generator().manual_seed(derived_seed(seed, "regression", str(step)))
        rows = torch.randint(len(x_all), (opts["batch_size"],), generator=generator)
        loss = _mse(regression(c_all[rows].to(device)), x_all[rows].to(device), weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        recent.append(loss.item())
        bar.update(1)
    bar.close()
    log.info("regression stage: %d steps, mean squared error %.4f over the last %d", steps,
             float(np.mean(recent[-50:])), min(50, steps))
    with artifacts.written(path) as tmp:
        torch.save({"identity": identity, "weights": regression.state_dict()}, tmp)
    return regression.eval().requires_grad_(False)
