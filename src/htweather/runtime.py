"""Run-time plumbing shared by the steps: seeds, atomic writes, progress, logging (no torch here,
so data and evaluation steps run without it; see `devices` for the torch side)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm


def derived_seed(seed: int, *parts: str) -> int:
    """A seed for one step (e.g. ("train", "tedm")), stable across runs and machines."""
    return (seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % 2**31


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling path; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def progress(total: int, desc: str, initial: int = 0) -> tqdm:
    """A progress bar on stderr that also reads well in a log file (plain ASCII, throttled)."""
    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, ascii=not interactive,
                mininterval=0.5 if interactive else 15.0, dynamic_ncols=interactive)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr, force=True)
