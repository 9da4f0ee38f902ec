"""The full training state, so that a stopped or killed run resumes where it was.

A checkpoint holds the model, its EMA, the optimiser and scheduler, the step, the CPU and CUDA
random states and the loss-log rows so far (a rerun whose outputs Snakemake deleted loses no
log). It is written atomically with its digest (`artifacts`), the one before it kept as
``checkpoint.pt.previous``, and resumed only by a run of the same model and training setup
(`identity`), loaded with ``weights_only=True``. A checkpoint that cannot be read (truncated,
altered, not a checkpoint) is set aside, renamed, never deleted, and training resumes from the
previous one, or from the start, and says so."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import torch

from .. import artifacts
from ..errors import ArtifactError

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
    path = Path(path)
    if path.exists():  # the one before stays until this one is written: a fallback if it turns out bad
        artifacts.rename(path, previous(path))
    with artifacts.written(path) as tmp:
        torch.save(state, tmp)


def previous(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def _readable(path: Path, device: torch.device, main: bool = True) -> dict | None:
    """The checkpoint at `path`, or None when it fails its digest or is no checkpoint: then the
    main process sets it aside (the other ranks of a data-parallel run only skip it, as the main
    one does). A checkpoint that passes its digest but cannot be loaded (torch's version, memory)
    is good: that is an error, never a reason to set it aside."""
    try:
        artifacts.verify(path)
    except ArtifactError as exc:
        why = str(exc)
    except OSError:  # another rank set it aside while this one read it
        if main:
            raise
        return None
    else:
        try:
            with warnings.catch_warnings():  # torch warns of the pickle protocol of garbage before failing on it
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:
            raise ArtifactError(f"{path}: passes its digest but cannot be loaded by torch {torch.__version__} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        if isinstance(state, dict) and {"identity", "step", "model"} <= set(state):
            return state
        why = f"{path}: not a training checkpoint"
    if main:
        aside = artifacts.set_aside(path, why)
        log.warning("%s; set aside as %s", why.split("; ")[0], aside)
    return None


def resume(path: str | Path, identity: dict, model, ema, opt, sched, device: torch.device,
           main: bool = True) -> tuple[int, list[dict]]:
    """Load the checkpoint at `path` (or the one before it) into the objects if it belongs to
    `identity`. Returns (step, log rows): (0, []) when there is none, or it belongs to other
    settings. `main`: the process that sets bad checkpoints aside (rank 0)."""
    path = Path(path)
    state = None
    for candidate in (path, previous(path)):
        if candidate.exists():
            state = _readable(candidate, device, main)
            if state is not None:
                path = candidate
                break
            log.warning("training resumes from %s", "the previous checkpoint" if candidate == path and
                        previous(path).exists() else "the start")
    if state is None:
        return 0, []
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
