"""Data-parallel training: one process per GPU (NCCL), or per CPU slot (gloo), started by torchrun.

`train.train(..., processes=N)` with N > 1 writes its arguments to `launch.json` in the model's
directory and runs `torchrun --standalone --nproc-per-node N -m htweather.training.rank` on it,
inside the one SLURM job (or machine) it was given. Each process reads its rank from the
environment torchrun sets; rank 0 logs, validates and writes checkpoints and the model.

The global batch (`training.batch_size`) is split evenly over the ranks, and every rank draws
the noise of the whole global batch from the same per-step seed and keeps its slice, so N
processes compute the same update as one process with the combined batch (DDP averages the
gradients)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import HtweatherError
from ..models.devices import select_device
from ..runtime import StopSignals, atomic_path

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 120  # torchrun's grace period for the ranks after a stop signal


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device_name: str) -> tuple[Group, torch.device]:
    """This process's place in the group and its device (cuda:LOCAL_RANK under torchrun)."""
    device = select_device(device_name)
    if not under_torchrun():
        return Group(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Group(dist.get_rank(), dist.get_world_size()), device


def leave(group: Group) -> None:
    if group.distributed and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, group: Group, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (e.g. a stop signal that reached one rank)."""
    if not group.distributed:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier(group: Group) -> None:
    if group.distributed:
        dist.barrier()


def average_gradients(module: torch.nn.Module, group: Group) -> None:
    """Average a module's gradients over the ranks (for parameters outside the DDP-wrapped network)."""
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= group.world


def mean_over_ranks(value: torch.Tensor, group: Group) -> torch.Tensor:
    if group.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= group.world
    return value


def forwards_sigusr1() -> bool:
    """Whether this torch's torchrun can pass SIGUSR1 on to its ranks (`--signals-to-handle`,
    which torch 2.9 lacks)."""
    from torch.distributed.run import get_args_parser

    return any("--signals-to-handle" in action.option_strings for action in get_args_parser()._actions)


def launch(job: dict, processes: int) -> Path:
    """Run `train.train(**job)` in `processes` processes with torchrun; returns the model path."""
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    job_file = out_dir / "launch.json"
    with atomic_path(job_file) as tmp:
        tmp.write_text(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in job.items()}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
               f"--nproc-per-node={processes}"]
    if forwards_sigusr1():
        # torchrun passes SLURM's stop signals (preemption: SIGTERM; `--signal=USR1@...`: SIGUSR1) on
        # to the ranks and gives them time to write their checkpoint before it kills them
        command += ["--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1",
                    f"--shutdown-timeout={SHUTDOWN_SECONDS}"]
    else:
        log.warning("torch %s: its torchrun passes SIGTERM on to the ranks but not SIGUSR1, so the warning "
                    "before a SLURM time limit (--signal=USR1@...) ends training without a checkpoint; "
                    "preemption (SIGTERM) still checkpoints", torch.__version__)
    command += ["-m", "htweather.training.rank", str(job_file)]
    log.info("data-parallel training in %d processes: %s", processes, " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    with StopSignals():  # this launcher waits for torchrun through a stop signal, not dies on it
        result = subprocess.run(command)
    if result.returncode != 0:
        raise HtweatherError(f"model {job['name']}: data-parallel training exited with status "
                             f"{result.returncode} (the log above has each rank's error); "
                             f"a rerun resumes from {out_dir / 'checkpoint.pt'}")
    return out_dir / "model.pt"
