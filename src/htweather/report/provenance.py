"""What produced these results: code version, config, seeds, packages, platform, the numba
fast path of the CRPS, and the time and memory of every job (Snakemake's benchmarks)."""

from __future__ import annotations

import datetime as dt
import glob
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from ..evaluation.scores import crps_fast_path
from ..config import replicate_name, replicates
from ..runtime import atomic_path, derived_seed, replicate_seed

PACKAGES = ["htweather", "torch", "numpy", "scipy", "pandas", "xarray", "dask", "zarr", "netCDF4",
            "properscoring", "python-cmethods", "numba", "matplotlib", "snakemake", "jinja2", "jsonschema"]


def _git(workdir: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(workdir), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(config: dict, workflow_dir: str | Path, benchmarks_dir: str | Path) -> dict:
    """What produced these results: code version, config, seeds, packages, platform, timings."""
    workflow_dir = Path(workflow_dir)
    commit = _git(workflow_dir, "rev-parse", "HEAD")
    status = _git(workflow_dir, "status", "--porcelain", "--untracked-files=no")
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    seeds = {"master": config["seed"], "synthetic data": config["seed"],
             "truth ensemble": derived_seed(config["seed"], "sample", "truth"),
             "truth sequences": derived_seed(config["seed"], "sample", "truth_sequences")}
    for m, entry in config["models"].items():
        steps = ("train", "forecast" if entry["condition_steps"] else "downscale" if entry.get("downscale") else "sample")
        for r in range(replicates(config, m)):
            run = replicate_name(m, r)
            for step in steps:
                seeds[f"{step} {run}"] = replicate_seed(config["seed"], step, m, r)
            # evaluation's bootstrap: seeded by the replicate's name
            scoring = "verify" if entry["condition_steps"] or entry.get("downscale") else "evaluate"
            seeds[f"{scoring} {run}"] = derived_seed(config["seed"], scoring, run)
    timings = []
    for path in sorted(glob.glob(str(Path(benchmarks_dir) / "*.tsv"))):
        row = pd.read_csv(path, sep="\t").iloc[0]
        timings.append({"job": Path(path).stem, "seconds": float(row["s"]),
                        "max_rss_mb": float(row["max_rss"]) if "max_rss" in row and pd.notna(row["max_rss"]) else None})
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "git_dirty": bool(status) if status is not None else None,
        "config": config, "seeds": seeds, "packages": versions,
        "python": sys.version.split()[0], "platform": platform.platform(),
        **_torch_device(),
        "crps_numba_fast_path": crps_fast_path(),
        "timings": timings,
    }


def _torch_device() -> dict:
    try:
        import torch
    except ImportError:  # the report's environment need not have torch
        return {"torch_cuda": None, "gpu": None}
    cuda = torch.cuda.is_available()
    return {"torch_cuda": cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None}


def write_provenance(record: dict, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
