"""Run-time plumbing shared by the steps: seeds, atomic writes, progress, logging (no torch here,
so data and evaluation steps run without it; see `models.devices` for the torch side)."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm


def derived_seed(seed: int, *parts: str) -> int:
    """A seed for one step (e.g. ("train", "tedm")), stable across runs and machines."""
    return (seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % 2**31


def replicate_seed(seed: int, step: str, model: str, replicate: int = 0) -> int:
    """The seed of one step (train, sample, forecast) of one replicate of a model: replicate 0
    keeps the seed of an unreplicated run, replicate r > 0 adds its index."""
    if replicate == 0:
        return derived_seed(seed, step, model)
    return derived_seed(seed, step, model, f"replicate {replicate}")


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling path; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if path.is_dir():  # a directory (zarr store) cannot be replaced in one step
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()


def _remove_stale(path: Path) -> None:
    """Remove temporaries of `path` left by processes that were killed (kill -9, OOM, node
    failure) before they could clean up; those of live processes are left alone."""
    for stale in path.parent.glob(f"{glob.escape(path.name)}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # someone else's live process
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


class FinishedChunks:
    """Finished pieces of a long job (e.g. batches of ensemble members), kept in a hidden
    directory beside its output until the output is written, so that a killed or preempted job
    redoes only the piece it was on. Pieces of another setup (`identity` differs) are discarded."""

    def __init__(self, out: str | Path, identity: dict):
        out = Path(out)
        self.root = out.with_name(f".{out.name}.chunks")
        manifest = self.root / "identity.json"
        text = json.dumps(identity, sort_keys=True, default=str)
        if self.root.exists() and (not manifest.exists() or manifest.read_text() != text):
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        if not manifest.exists():
            with atomic_path(manifest) as tmp:
                tmp.write_text(text)

    def get_or_make(self, key: str, make: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
        """The piece `key`: read back if finished before, else made by `make()` and kept.
        Returns (piece, made now)."""
        path = self.root / f"{key}.npy"
        if path.exists():
            return np.load(path), False
        piece = make()
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.save(f, piece)
        return piece, True

    def count(self) -> int:
        return len(list(self.root.glob("*.npy")))

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def file_digest(path: str | Path) -> str:
    """sha256 of a file (e.g. the weights a piece of work was made with)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class StopSignals:
    """SIGTERM (SLURM preemption, scancel, time limit) and SIGUSR1 (`sbatch --signal=USR1@SECONDS`)
    are noted, not fatal: training finishes its step, writes a checkpoint and stops, so that a
    requeue or a retry resumes from there."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def progress(total: int, desc: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """A progress bar on stderr that also reads well in a log file (plain ASCII, throttled)."""
    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, ascii=not interactive,
                mininterval=0.5 if interactive else 15.0, dynamic_ncols=interactive, disable=not enabled)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr, force=True)
