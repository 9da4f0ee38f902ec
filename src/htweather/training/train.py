"""Training: AdamW with warm-up, EMA weights, periodic checkpoints, a loss log and progress.

Writes, in the model's directory:
- ``model.pt``: the EMA weights, the model's spec with its data-dependent settings resolved
  (``nu: auto``, per-channel sigma_data), the INC table if any and the tail-index estimates
  (what sampling needs);
- ``snapshot_K.pt``: the same at the K-th of ``training.snapshots`` (fractions of the steps;
  with ``steps: auto``, the stop rule's check nearest that fraction of the steps used), for the
  convergence check;
- ``train_log.csv``: step, mean training loss since the last row, learning rate, elapsed
  seconds, the validation loss at checkpoint steps (the median over validation examples:
  `validation_loss`) and, with ``steps: auto``, the stop rule's tail error at its checks
  (`stopping`);
- ``checkpoint.pt``: the full training state (model, EMA, optimiser, scheduler, step, random
  states, the log so far), rewritten atomically every ``checkpoint_every`` steps and when a
  stop signal (SIGTERM, SIGUSR1) arrives. A rerun that finds one for the same model and
  training settings resumes from it.

The examples and the noise of step s are functions of (seed, s) alone, so a resumed run, a run
with loader workers and a data-parallel run (see `distributed`) make the same updates.
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import json
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from .. import artifacts
from ..data.coarsening import Coarsening
from ..data.store import load_mask, load_split, load_split_times, load_stats
from ..data.windows import regular_windows
from ..config import adam_betas, model_training_settings, selected_variables, snapshot_steps, with_selected_nu
from ..errors import ConfigError, HtweatherError
from ..models import assemble
from ..models.tail_index import exceedance_summary
from ..models.devices import autocast, set_threads
from ..runtime import StopSignals, derived_seed, progress, replicate_seed
from ..models.regression import conditional_mean
from . import checkpoints, distributed, importance, stopping
from .regression import train_regression
from .examples import Examples, SplitFields, StepBatches

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "loss", "lr", "elapsed_s", "val_loss", "tail_error"]
VALIDATION_EXAMPLES = 256  # validated at every checkpoint, with fixed noise


def ema_beta(step: int, decay: float, length: float | None = None) -> float:
    """The EMA's decay at `step` (0-based). `length` None: the usual warm-up, min(decay,
    (1 + step) / (10 + step)), which stays below 0.999 until step 8990 and averages over about
    the last 11 % of the steps; `length`: EDM2's power-function EMA, (1 - 1 / t)^(gamma + 1) at
    t = step + 1, whose averaging profile has a standard deviation of `length` times the steps
    so far, whatever their number."""
    if length is None:
        return min(decay, (1 + step) / (10 + step))
    return (1 - 1 / (step + 1)) ** (ema_gamma(length) + 1)


@functools.lru_cache(maxsize=None)
def ema_gamma(length: float) -> float:
    """gamma of the power-function EMA with relative standard deviation `length`: the root of
    length^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3)) (EDM2, eq. 3 of its post-hoc EMA)."""
    from scipy.optimize import brentq
    return brentq(lambda g: (g + 1) / ((g + 2) ** 2 * (g + 3)) - length**2, 0.0, 1e6)  # the branch gamma >= 0


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int,
               length: float | None = None) -> None:
    """One EMA update with the decay `ema_beta` gives at `step`."""
    beta = ema_beta(step, decay, length)
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1 - beta)


def lr_factor(step: int, warmup: int, decay_after: int | None) -> float:
    """The learning rate's multiplier at `step`: a linear warm-up over `warmup` steps, then
    constant, or (`decay_after`, EDM2's schedule) 1 / sqrt(step / decay_after) once past it."""
    factor = min(1.0, (step + 1) / warmup)
    if decay_after:
        factor /= max(1.0, (step + 1) / decay_after) ** 0.5
    return factor


def batch_loss(per_element: torch.Tensor, example_weights: torch.Tensor | None) -> torch.Tensor:
    """The batch's loss: the mean of the per-element losses (B, ...), each example's weighted by
    importance sampling's 1 / (N q) where the batch was drawn that way (`importance`), so that
    its expectation is the uniform objective's."""
    if example_weights is not None:
        per_element = per_element * example_weights.to(per_element.device).reshape(-1, *[1] * (per_element.ndim - 1))
    return per_element.mean()


def masked_loss(loss_fn, weight: torch.Tensor | None):
    """The per-element loss, weighted so that masked cells (sea in a land-only product;
    `weight` = mask / mean(mask), whose mean is then the mean over real cells) and values missing
    at some times only (NaN in x0: a radar outage) carry no weight: they have no signal and must
    not pull the network towards a fill value. Missing values are filled with 0 (the standardised
    mean) in x0 and the condition. The weights are not renormalised per batch: a batch with more
    missing values weighs a little less, and one process or N data-parallel ones compute the same
    loss; with nothing missing the weights are exactly 1 (or the mask's)."""
    def loss(model, x0, cond=None, draws=None):
        valid = torch.isfinite(x0)
        x0 = torch.where(valid, x0, torch.zeros((), dtype=x0.dtype, device=x0.device))
        if cond is not None:
            cond = torch.nan_to_num(cond, nan=0.0)
        w = valid.to(x0.dtype) if weight is None else valid * weight
        return loss_fn(model, x0, cond, draws) * w

    return loss


@torch.no_grad()
def validation_loss(model, loss_fn, examples: Examples, device, seed: int, batch: int = 64,
                    limit: int = VALIDATION_EXAMPLES) -> float:
    """The median over a fixed set of validation examples, with fixed noise, of each example's
    mean loss: comparable between checkpoints, and robust. With Student-t noise a few examples
    draw noise many standard deviations out and their losses dominate a mean (two t-EDM
    replicates on W5E5 read 0.29 and 3.90 at equal training losses); the median follows the bulk.
    The training random stream is left untouched."""
    devices = [device] if device.type == "cuda" else []
    positions = torch.arange(min(limit, len(examples)))
    offsets = examples.offsets(len(positions), torch.Generator().manual_seed(seed))  # fixed crops (patches)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        per_example = []
        for start in range(0, len(positions), batch):
            x0, cond = examples.batch(positions[start:start + batch], device, offsets[start:start + batch])
            with autocast(device):
                per_example.append(loss_fn(model, x0, cond).float().flatten(1).mean(1).cpu())
    return float(torch.cat(per_example).median())


def _ignore_stop_signals(worker_id: int) -> None:
    """Loader workers outlive a stop signal sent to the whole job, so that training can finish
    its step and write its checkpoint; they end with the training process."""
    for signum in StopSignals.SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class Interrupted(HtweatherError):
    """Training stopped on a signal after writing its checkpoint."""


def regression_identity(spec, seed: int, opts: dict, train_np: np.ndarray) -> str:
    """What a CorrDiff regression stage depends on, for reusing regression.pt: its own steps (not
    the diffusion's), its optimiser's settings and the data (by digest). JSON text, so that an
    unresolved nu (NaN) compares equal to itself."""
    optimiser = ("lr", "weight_decay", "warmup_steps", "batch_size", "adam_beta2")
    return json.dumps({"spec": spec.to_dict(), "seed": seed, "architecture": spec.architecture,
                       "steps": opts.get("regression_steps") or opts["steps"],
                       "training": {k: v for k, v in model_training_settings(opts, None).items() if k in optimiser},
                       "data": hashlib.sha256(np.ascontiguousarray(train_np).tobytes()).hexdigest()},
                      sort_keys=True, default=str)


def train(config: dict, name: str, store: str | Path, stats_path: str | Path, out_dir: str | Path,
          threads: int | None = None, processes: int = 1, replicate: int = 0,
          nu_selection: str | Path | None = None, method=None) -> Path:
    """Train replicate `replicate` of model `name` of `config` on the store (replicates differ
    only in their seed); `processes` > 1: data-parallel in that many processes (one per GPU;
    gloo on CPU), launched here with torchrun. `nu_selection`: the JSON of `select_nu` for a
    model with `nu: select`, whose chosen value it trains with.

    `method`: the model's diffusion pieces, an object with `name`, `build(spec)` (the network
    inside its preconditioner) and `loss_fn(spec, training)` (an objective with `draw` and a
    per-element loss, as `models.diffusion.losses`); None: htweather's own (`models.assemble`).
    Everything else (data, batches, optimiser, EMA, seeds, logs) is this loop's, so that a
    benchmark can train another implementation's method with nothing else changed
    (benchmarks/peer_physicsnemo.py). One process only."""
    if nu_selection is not None:
        chosen = artifacts.read_json(nu_selection)["chosen"]
        selected = selected_variables(config["models"][name], list(config["data"]["variables"]))
        config = with_selected_nu(config, name, chosen)
        log.info("nu %s for %s, selected on the validation split (%s)", chosen, ", ".join(selected), nu_selection)
    elif selected_variables(config["models"][name], list(config["data"]["variables"])):
        raise ConfigError(f"models.{name}.nu: 'select' needs the selection made on the validation split "
                          f"(results/selection/{name}.json, rule select_nu)")
    world = processes if processes > 1 else int(os.environ.get("WORLD_SIZE", "1"))
    if config["training"]["batch_size"] % world:
        raise ConfigError(f"training.batch_size: {config['training']['batch_size']} does not split evenly over "
                          f"{world} data-parallel processes")
    if method is not None and (world > 1 or config["training"]["steps"] == "auto" or config["training"]["compile"]):
        # the data-parallel wrapper, torch.compile and the stop rule's tail check assume our model's layout
        raise ConfigError(f"model {name}: another implementation's method ({method.name}) trains in one process, "
                          "with a fixed number of steps (training.steps) and without training.compile")
    if processes > 1 and not distributed.under_torchrun():
        return distributed.launch({"config": config, "name": name, "store": str(store), "stats_path": str(stats_path),
                                   "out_dir": str(out_dir), "threads": threads, "replicate": replicate}, processes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = config["training"]
    spec = assemble.ModelSpec.from_config(config, name)
    seed = replicate_seed(config["seed"], "train", name, replicate)
    group, device = distributed.join(opts["device"])
    try:
        set_threads(max(1, (threads or opts["threads"]) // group.world))
        with StopSignals() as signals:
            return _train(config, opts, spec, name, seed, store, stats_path, out_dir, group, device, signals,
                          replicate, method)
    finally:
        distributed.leave(group)


def _train(config, opts, spec, name, seed, store, stats_path, out_dir, group, device, signals, replicate,
           method=None) -> Path:
    torch.manual_seed(seed)
    workers = opts["data_workers"]
    mask = load_mask(store)
    tails = {v: info["tails"] for v, info in load_stats(stats_path)["variables"].items()}
    downscaling = bool(spec.coarsen_factor)
    train_np = (load_split(store, "train") if assemble.needs_training_data(spec) or workers == 0 or downscaling
                else None)
    where = f"models.{name}.condition_steps"
    # validation uses the split's first VALIDATION_EXAMPLES windows: read only the rows they need
    windows = regular_windows(load_split_times(store, "validation"), before=spec.condition_steps, after=0)
    rows = int(windows[min(VALIDATION_EXAMPLES, len(windows)) - 1]) + 1 if len(windows) else None
    train_cond = val_cond = val_np = regression = None
    if downscaling:  # every field's coarse version on the fine grid, made once
        coarsening = Coarsening(load_stats(stats_path), spec.coarsen_factor)
        val_np = load_split(store, "validation")[:rows]
        train_cond, val_cond = coarsening.condition(train_np), coarsening.condition(val_np)
    if spec.residual:  # CorrDiff: the regression stage first; the diffusion learns what it leaves
        identity = regression_identity(spec, seed, opts, train_np)
        real = None if mask is None else torch.from_numpy(mask / mask.mean()).to(device=device, dtype=torch.float32)
        regression = train_regression(train_np, train_cond, spec.architecture, opts, seed, device, real,
                                      out_dir / "regression.pt", identity)
        train_np = train_np - conditional_mean(regression, train_cond, device=device)
        val_np = val_np - conditional_mean(regression, val_cond, device=device)
        # the residual's own scale, channel by channel (as PCP), from the training residuals
        spec = assemble.ModelSpec(**{**spec.__dict__, "sigma_data": None})
    spec, input_map, tail_index = assemble.resolve(spec, train_np, mask, tails)
    if spec.residual:  # 6 digits: the same on a resumed run, whatever its threads or device
        spec = assemble.ModelSpec(**{**spec.__dict__, "sigma_data": [float(f"{v:.6g}") for v in spec.sigma_data]})
    for variable, chosen in tail_index.items():
        log.info("nu auto, %s: %s; best-fitting unit-variance Student-t nu %.1f (Hill tail index of the top "
                 "0.1 %%: %s) -> nu = %s", variable, exceedance_summary(chosen), chosen["nu_fit"],
                 "n/a" if chosen["hill_alpha"] is None else f"{chosen['hill_alpha']:.2f}", chosen["nu"])
    if input_map is not None:
        log.info("%s normalisation fitted on the training data", spec.normalisation)
    if spec.sigma_data != 1.0:
        log.info("sigma_data %s%s", spec.sigma_data, " (the residuals')" if spec.residual else "")
    # a residual model's fields are the residuals, held here: loader workers cannot read them from the store
    train_set = Examples(SplitFields(store, "train", input_map, in_memory=workers == 0 or spec.residual,
                                     values=train_np),
                         spec.condition_steps, where, patch=spec.patch, mask=mask, conditions=train_cond)
    del train_np
    val_set = Examples(SplitFields(store, "validation", input_map, rows=rows, values=val_np), spec.condition_steps,
                       where, patch=spec.patch, mask=mask, conditions=val_cond)
    kind = ("unconditional" if not (spec.condition_steps or downscaling) else
            f"forecast from {spec.condition_steps} previous states" if spec.condition_steps else
            f"downscaling from {spec.coarsen_factor} x {spec.coarsen_factor} block means"
            + (", diffusion on the regression stage's residual (CorrDiff)" if spec.residual else ""))
    log.info("model %s: family %s, nu %s, %s; %d training examples on %s%s; data %s", name, spec.family, spec.nu,
             kind,
             len(train_set), device, f", {group.world} data-parallel processes" if group.distributed else "",
             f"read from the store by {workers} loader processes" if workers else "held in memory")

    weight = None
    if spec.patch:
        log.info("training on random %d x %d crops of the %d x %d grid, positions as 2 input channels",
                 spec.patch, spec.patch, *train_set.grid)
    elif mask is not None:  # with patches, masked cells are missing values of the crops
        weight = torch.from_numpy(mask / mask.mean()).to(device=device, dtype=torch.float32)
        log.info("loss over the %d of %d real grid cells", int(mask.sum()), mask.size)

    pieces = method or assemble
    model = pieces.build(spec).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    objective = pieces.loss_fn(spec, opts)
    loss_fn = masked_loss(objective, weight)  # also for missing values when there is no mask
    # fused: one kernel for all parameters (CPU and CUDA); 4-13 % faster steps on CPU (benchmarks/cpu_kernels.py)
    opt = torch.optim.AdamW(model.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"],
                            betas=adam_betas(opts), fused=True)
    warmup = max(1, opts["warmup_steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, warmup, opts["lr_decay_after"]))
    n_params = sum(p.numel() for p in model.parameters())
    log.info("U-Net with %.3f M parameters", n_params / 1e6)

    # Resume only a checkpoint of this exact model and training setup (threads, device, worker
    # and process counts change how, not what, it computes).
    identity = {"spec": spec.to_dict(), "seed": seed, **({"method": method.name} if method else {}),
                # the stop rule's settings (stop, max_steps) change where training ends, not the
                # updates before: a run stopped early resumes under a later min_steps
                "training": {k: v for k, v in model_training_settings(opts, spec.family, spec.residual).items()
                             if k not in ("threads", "device", "data_workers", "compile", "snapshots", "stop",
                                          "max_steps")}}
    checkpoint_path = out_dir / "checkpoint.pt"
    log_path = out_dir / "train_log.csv"
    start_step, rows = checkpoints.resume(checkpoint_path, identity, model, ema, opt, sched, device, group.main)

    def write_log():
        with artifacts.written(log_path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")  # "check": the stop rule's rows
            writer.writeheader()
            writer.writerows(rows)

    def write_model(path, steps_done, weights=None):
        """What sampling needs: the EMA weights, the resolved spec, the INC table, the tail index."""
        with artifacts.written(path) as tmp:
            torch.save({"spec": spec.to_dict(), "ema": weights or ema.state_dict(), "steps": steps_done,
                        "seed": seed, "replicate": replicate, "parameters": n_params, "tail_index": tail_index,
                        "input_map": input_map.state() if input_map is not None else None,
                        "regression": regression.state_dict() if regression is not None else None,
                        **({"method": method.name} if method else {})}, tmp)

    auto = opts["steps"] == "auto"
    total = opts["max_steps"] if auto else opts["steps"]
    snapshots = {} if auto else {step: k for k, step in enumerate(snapshot_steps(opts), start=1)}
    check_every = (opts["stop"]["every"] or opts["checkpoint_every"]) if auto else None
    checks_dir = out_dir / "checks"  # EMA weights for the snapshots (at each check with steps: auto), kept there
    plateau = stopping.Plateau(opts["stop"]["patience"], min_steps=opts["stop"].get("min_steps") or 0) if auto else None
    tail_check = None
    conditional = bool(spec.condition_steps or downscaling)  # no unconditional tail check: stop on val_loss
    if auto and group.main and not conditional:
        tail_check = stopping.TailCheck(config, spec, load_stats(stats_path), store, input_map, device, seed + 3)
        log.info("steps: auto: the stop rule reads the tail error of %s, %d fields per check",
                 ", ".join(tail_check.variables), tail_check.members)
    # with the tail check, each variable's tail error beside the rule's mean (tail_error)
    columns = LOG_COLUMNS + ([f"tail_error_{v}" for v in spec.variables] if tail_check is not None else [])
    if auto:  # a resumed run replays the checks it logged
        for row in rows:
            if row.get("check"):
                plateau.update(int(row["step"]), float(row["val_loss" if conditional else "tail_error"]))

    def write_checkpoint(done):
        if group.main:
            write_log()
            checkpoints.save(checkpoint_path, model, ema, opt, sched, done, rows, identity)

    if group.distributed:
        model.net = DistributedDataParallel(model.net, device_ids=[device] if device.type == "cuda" else None)
    if opts["compile"] and device.type == "cuda":  # after DDP, so the compiler sees its gradient buckets
        model.net = torch.compile(model.net)
        log.info("network compiled with torch.compile")
    sampling = None
    if opts["extremes"]["fraction"] > 0:
        # the split's target fields, read once (with loader workers: from the store)
        extreme = importance.extreme_fields(train_set.fields[train_set.targets].numpy(),
                                            [tails[v] for v in spec.variables], opts["extremes"]["quantile"],
                                            None if spec.patch else mask)
        sampling = importance.ExtremeSampling(extreme, opts["extremes"]["fraction"])
        log.info("importance sampling: %d of %d training fields are extreme (a cell beyond the %g quantile), "
                 "%.0f %% of each batch drawn from them, losses weighted 1 / (N q)", sampling.extreme_count,
                 len(extreme), opts["extremes"]["quantile"], 100 * opts["extremes"]["fraction"])
    batches = torch.utils.data.DataLoader(
        StepBatches(train_set, opts["batch_size"], seed, group, sampling), batch_size=None,
        sampler=range(start_step, total), num_workers=workers, pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
        # spawned, not forked: a fork copies zarr's event-loop thread's locks mid-use and hangs
        multiprocessing_context="spawn" if workers else None, worker_init_fn=_ignore_stop_signals)
    shape = (opts["batch_size"], *val_set.read([0])[0].shape[1:])  # the global batch's (B, C, H, W)

    t0 = time.perf_counter()
    running, running_n = 0.0, 0
    bar = progress(total, f"train {name}" + (" (steps: auto, at most)" if auto else ""), initial=start_step,
                   enabled=group.main)
    model.train()
    done = start_step
    # a resumed run that had stopped
    stopped = plateau is not None and bool(plateau.checks) and plateau.update(*plateau.checks.pop())
    for step, (x0, cond, example_weights) in zip(range(start_step, total if not stopped else start_step), batches):
        x0 = x0.to(device, non_blocking=True)
        cond = cond.to(device, non_blocking=True) if cond is not None else None
        # The noise of the whole global batch from a per-step seed; this rank keeps its share.
        torch.manual_seed(derived_seed(seed, "noise", str(step)))
        draws = tuple(d[batches.dataset.share] for d in objective.draw(model, shape, device))
        torch.manual_seed(derived_seed(seed, "rank", str(step), str(group.rank)))  # dropout
        with autocast(device):
            loss = batch_loss(loss_fn(model, x0, cond, draws).float(), example_weights)
        mean_loss = distributed.mean_over_ranks(loss, group)  # every rank sees a non-finite loss together
        if not torch.isfinite(mean_loss):
            raise FloatingPointError(f"model {name}: training loss is {mean_loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if group.distributed and getattr(model, "loss_weighting", None) is not None:  # outside DDP's network: averaged here
            distributed.average_gradients(model.loss_weighting, group)
        opt.step()
        sched.step()
        update_ema(ema, model, opts["ema_decay"], step, opts["ema_length"])
        running += mean_loss.item()
        running_n += 1
        bar.update(1)
        done = step + 1
        if done in snapshots and group.main:  # EMA weights part-way, for the convergence check: kept beside
            # the outputs until training ends, so that a rerun resuming past this step still has them
            write_model(checks_dir / f"snapshot_{snapshots[done]}.pt", done)
        at_check = auto and done % check_every == 0
        at_checkpoint = done % opts["checkpoint_every"] == 0 or done == total or at_check
        stopping_signal = distributed.any_rank(signals.received is not None, group, device)
        row = None
        if done % opts["log_every"] == 0 or at_checkpoint or stopping_signal:
            row = {"step": done, "loss": running / running_n, "lr": sched.get_last_lr()[0],
                   "elapsed_s": round(time.perf_counter() - t0, 3), "val_loss": "", "tail_error": ""}
            running, running_n = 0.0, 0
            if at_checkpoint and group.main:
                row["val_loss"] = validation_loss(ema, loss_fn, val_set, device, seed + 2)
                bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{row['val_loss']:.4f}")
            rows.append(row)
        if at_check:
            stop = False
            if group.main:
                if tail_check is not None:
                    errors = tail_check(ema)
                    row.update({f"tail_error_{v}": e for v, e in errors.items()})
                    row["tail_error"] = tail_check.criterion(errors)
                row["check"] = 1
                criterion = row["tail_error"] if tail_check is not None else row["val_loss"]
                stop = plateau.update(done, float(criterion))
                write_model(checks_dir / f"step_{done}.pt", done)
                log.info("step %d: stop-rule error %.4f (%s)%s", done, criterion, plateau.summary(done),
                         ": no longer improving, stopping" if stop else "")
            stopped = distributed.any_rank(stop, group, device)
        if at_checkpoint or stopping_signal or stopped:
            write_checkpoint(done)
        if stopping_signal and done < total and not stopped:
            distributed.barrier(group)  # no rank exits (and gets the group torn down) before the checkpoint is written
            bar.close()
            what = signal.Signals(signals.received).name if signals.received else "a signal on another rank"
            raise Interrupted(f"model {name}: stopped by {what} at step {done} of {total}; "
                              f"checkpoint written to {checkpoint_path}, a rerun resumes from it")
        if stopped:
            break
    bar.close()

    model_path = out_dir / "model.pt"
    if group.main:
        write_log()
        if auto:
            log.info("steps: auto: %s at step %d", "stopped, the tail error no longer improving" if stopped
                     else f"reached training.max_steps ({total}) still improving", done)
            write_auto_snapshots(opts["snapshots"], done, checks_dir, out_dir, write_model)
        else:  # links, so a rerun after Snakemake deleted them finds them again (touched: newer than the inputs)
            for k in snapshots.values():
                kept = checks_dir / f"snapshot_{k}.pt"
                if not kept.exists():
                    raise HtweatherError(f"{kept}: missing, so snapshot {k} cannot be written: training resumed from "
                                         f"a checkpoint past its step; delete {out_dir} and rerun")
                artifacts.link(kept, out_dir / f"snapshot_{k}.pt")
                os.utime(out_dir / f"snapshot_{k}.pt")
        write_model(model_path, done)
        if auto:  # only now: a kill before model.pt is written must find the checks again
            for path in checks_dir.glob("step_*.pt"):
                path.unlink()
                artifacts.sidecar(path).unlink(missing_ok=True)
        log.info("done: %d steps, last losses %s", done, [round(float(r["loss"]), 4) for r in rows[-5:]])
    return model_path


def write_auto_snapshots(fractions: list[float], steps: int, checks_dir: Path, out_dir: Path, write_model) -> None:
    """With steps: auto, snapshot K is the check nearest the K-th fraction of the steps used
    (the final weights where no check came before the end); the checks are removed once model.pt
    is written."""
    checks = sorted(int(p.stem.split("_")[1]) for p in checks_dir.glob("step_*.pt"))
    checks = [c for c in checks if c < steps]
    for k, fraction in enumerate(sorted(set(fractions)), start=1):
        if checks:
            nearest = min(checks, key=lambda c: abs(c - fraction * steps))
            state = torch.load(artifacts.verify(checks_dir / f"step_{nearest}.pt"), weights_only=True)
            write_model(out_dir / f"snapshot_{k}.pt", nearest, state["ema"])
        else:
            write_model(out_dir / f"snapshot_{k}.pt", steps)
