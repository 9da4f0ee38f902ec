"""The full training state, so that a stopped or killed run resumes where it was.

A checkpoint holds the model, its EMA, the optimiser and scheduler, the step, the CPU and CUDA
random states and the loss-log rows so far (a rerun whose outputs Snakemake deleted loses no
log). It is written atomically and resumed only by a run of the same model and training setup
(`identity`), loaded with ``weights_only=True``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ..runtime import atomic_path

log = logging.getLogger(__name__)


def plain_state_dict(state: dict) -> dict:
    """State-dict keys without the wrappers' prefixes (DDP's `module.`, torch.compile's `_orig_mod.`)."""
    return {re.sub(r"^net\.(?:(?:module|_orig_mod)\.)+", "net.", k): v for k, v in state.items()}


def save(path: str | Path, model, ema, opt, sched, step: int, rows: list[dict], identity: dict) -> None:
    state = {
        "identity": identity, "step": step, "log_rows": rows,
        "model": plain_state_dict(model.state_dict()), "ema": ema.state_dict(),
        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resume(path: str | Path, identity: dict, model, ema, opt, sched, device: torch.device) -> tuple[int, list[dict]]:
    """Load the checkpoint at `path` into the objects if it belongs to `identity`.
    Returns (step, log rows): (0, []) when there is none, or it belongs to other settings."""
    path = Path(path)
    if not path.exists():
        return 0, []
    state = torch.load(path, map_location=device, weights_only=True)
    if state["identity"] != identity:
        log.info("ignoring %s: it belongs to other settings", path)
        return 0, []
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"].cpu())
    if state["rng_cuda"] and device.type == "cuda":
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
    log.info("resuming from %s at step %d", path, state["step"])
    return state["step"], list(state["log_rows"])
