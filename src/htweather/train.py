"""Training: AdamW with warm-up, EMA weights, periodic checkpoints, a loss log and progress.

Writes, in the model's directory:
- ``model.pt``: the EMA weights, the model's spec with its data-dependent settings resolved
  (``nu: auto``, per-channel sigma_data), the INC table if any and the tail-index estimates
  (what sampling needs);
- ``train_log.csv``: step, mean training loss since the last row, learning rate, elapsed
  seconds, and the validation loss at checkpoint steps;
- ``checkpoint.pt``: the full training state (model, EMA, optimiser, scheduler, step, random
  states), rewritten atomically every ``checkpoint_every`` steps. A rerun that finds one for
  the same model and training settings resumes from it.
"""

from __future__ import annotations

import copy
import csv
import logging
import time
from pathlib import Path

import torch

from . import forecast, models
from .config import ConfigError
from .models import load_model  # noqa: F401  (the trained model's loader, also reached as train.load_model)
from .ingest import load_mask, load_split, load_split_times, load_stats
from .devices import autocast, select_device, set_threads
from .runtime import atomic_path, derived_seed, progress

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "loss", "lr", "elapsed_s", "val_loss"]


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """EMA with the usual warm-up: the effective decay grows from 0.1 towards `decay`."""
    beta = min(decay, (1 + step) / (10 + step))
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1 - beta)


def masked_loss(loss_fn, weight: torch.Tensor | None):
    """The per-element loss, weighted so that its mean is the mean over real cells only
    (weight = mask / mean(mask)); masked cells (e.g. sea in a land-only product) carry no
    signal and must not pull the network towards the fill value."""
    if weight is None:
        return loss_fn
    return lambda model, x0, cond=None: loss_fn(model, x0, cond) * weight


class Examples:
    """Training examples of one split: a field, and for a forecast model (h = condition_steps > 0)
    the h states before it, only where those are consecutive time steps."""

    def __init__(self, fields: torch.Tensor, times, history: int, where: str):
        self.fields = fields
        self.history = history
        self.targets = torch.from_numpy(forecast.regular_windows(times, before=history, after=0))
        if len(self.targets) == 0:
            raise ConfigError(f"{where}: the split has no {history + 1} consecutive time steps to train on")

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, positions: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        index = self.targets[positions]
        x0 = self.fields[index].to(device, non_blocking=True)
        if self.history == 0:
            return x0, None
        cond = forecast.stack_history(self.fields, index, self.history)
        return x0, cond.to(device, non_blocking=True)


@torch.no_grad()
def validation_loss(model, loss_fn, examples: Examples, device, seed: int, batch: int = 64,
                    limit: int = 256) -> float:
    """Loss on a fixed set of validation examples with fixed noise, so values are comparable
    between checkpoints; the training random stream is left untouched."""
    devices = [device] if device.type == "cuda" else []
    positions = torch.arange(min(limit, len(examples)))
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        total, count = 0.0, 0
        for start in range(0, len(positions), batch):
            x0, cond = examples.batch(positions[start:start + batch], device)
            with autocast(device):
                total += float(loss_fn(model, x0, cond).float().sum())
            count += x0.numel()
    return total / count


def _state(model, ema, opt, sched, step, data_gen, identity) -> dict:
    return {
        "identity": identity, "step": step,
        "model": model.state_dict(), "ema": ema.state_dict(),
        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "rng_cpu": torch.get_rng_state(), "rng_data": data_gen.get_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def train(config: dict, name: str, store: str | Path, stats_path: str | Path, out_dir: str | Path,
          threads: int | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = config["training"]
    spec = models.ModelSpec.from_config(config, name)
    seed = derived_seed(config["seed"], "train", name)
    set_threads(threads or opts["threads"])
    device = select_device(opts["device"])
    torch.manual_seed(seed)

    mask = load_mask(store)
    train_np, val_np = load_split(store, "train"), load_split(store, "validation")
    tails = {v: info["tails"] for v, info in load_stats(stats_path)["variables"].items()}
    spec, input_map, tail_index = models.resolve(spec, train_np, mask, tails)
    for variable, chosen in tail_index.items():
        log.info("nu auto, %s: Hill tail index %.2f from the top %d of %d values (a Gaussian gives %.2f) "
                 "-> nu = %s", variable, chosen["alpha"], chosen["k"], chosen["n"], chosen["alpha_gaussian"],
                 chosen["nu"])
    if input_map is not None:
        log.info("inverse-CDF normalisation (INC) fitted on the training data")
        train_np, val_np = input_map.forward(train_np), input_map.forward(val_np)
    if spec.sigma_data != 1.0:
        log.info("sigma_data %s", spec.sigma_data)
    where = f"models.{name}.condition_steps"
    train_set = Examples(torch.from_numpy(train_np), load_split_times(store, "train"), spec.condition_steps, where)
    val_set = Examples(torch.from_numpy(val_np), load_split_times(store, "validation"), spec.condition_steps, where)
    del train_np, val_np
    log.info("model %s: family %s, nu %s, %s; %d training examples %s on %s", name, spec.family, spec.nu,
             f"forecast from {spec.condition_steps} previous states" if spec.condition_steps else "unconditional",
             len(train_set), tuple(train_set.fields.shape[1:]), device)

    weight = None
    if mask is not None:
        weight = torch.from_numpy(mask / mask.mean()).to(device=device, dtype=torch.float32)
        log.info("loss over the %d of %d real grid cells", int(mask.sum()), mask.size)

    model = models.build(spec).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    loss_fn = masked_loss(models.loss_fn(spec, opts), weight)
    opt = torch.optim.AdamW(model.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"])
    warmup = max(1, opts["warmup_steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    data_gen = torch.Generator().manual_seed(seed + 1)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("U-Net with %.3f M parameters", n_params / 1e6)

    # Resume only a checkpoint of this exact model and training setup.
    identity = {"spec": spec.to_dict(), "training": {k: v for k, v in opts.items() if k not in ("threads", "device")},
                "seed": seed}
    checkpoint_path = out_dir / "checkpoint.pt"
    log_path = out_dir / "train_log.csv"
    start_step, rows = 0, []
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if state["identity"] == identity:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng_cpu"])
            data_gen.set_state(state["rng_data"])
            if state["rng_cuda"] and device.type == "cuda":
                torch.cuda.set_rng_state_all(state["rng_cuda"])
            start_step = state["step"]
            if log_path.exists():
                with log_path.open() as f:
                    rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
            log.info("resuming from %s at step %d", checkpoint_path, start_step)
        else:
            log.info("ignoring %s: it belongs to other settings", checkpoint_path)

    def write_log():
        with atomic_path(log_path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    t0 = time.perf_counter()
    running, running_n = 0.0, 0
    bar = progress(opts["steps"], f"train {name}", initial=start_step)
    model.train()
    for step in range(start_step, opts["steps"]):
        positions = torch.randint(len(train_set), (opts["batch_size"],), generator=data_gen)
        x0, cond = train_set.batch(positions, device)
        with autocast(device):
            loss = loss_fn(model, x0, cond).float().mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"model {name}: training loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        update_ema(ema, model, opts["ema_decay"], step)
        running += loss.item()
        running_n += 1
        bar.update(1)
        done = step + 1
        at_checkpoint = done % opts["checkpoint_every"] == 0 or done == opts["steps"]
        if done % opts["log_every"] == 0 or at_checkpoint:
            row = {"step": done, "loss": running / running_n, "lr": sched.get_last_lr()[0],
                   "elapsed_s": round(time.perf_counter() - t0, 3), "val_loss": ""}
            running, running_n = 0.0, 0
            if at_checkpoint:
                row["val_loss"] = validation_loss(ema, loss_fn, val_set, device, seed + 2)
                bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{row['val_loss']:.4f}")
            rows.append(row)
        if at_checkpoint:
            write_log()
            with atomic_path(checkpoint_path) as tmp:
                torch.save(_state(model, ema, opt, sched, done, data_gen, identity), tmp)
    bar.close()
    write_log()

    model_path = out_dir / "model.pt"
    with atomic_path(model_path) as tmp:
        torch.save({"spec": spec.to_dict(), "ema": ema.state_dict(), "steps": opts["steps"],
                    "seed": seed, "parameters": n_params, "tail_index": tail_index,
                    "input_map": input_map.state() if input_map is not None else None}, tmp)
    log.info("done: %d steps, last losses %s", opts["steps"], [round(float(r["loss"]), 4) for r in rows[-5:]])
    return model_path
