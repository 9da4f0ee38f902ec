"""Faults injected into whole workflow runs on a small ERA5-style GRIB config: kill -9 at a random
point of each long rule, then a rerun whose outputs are identical to an uninterrupted run's; a
file-size limit hit while the data store is written (a full disk as a process sees it), which
fails with one line and leaves nothing a rerun would take as done; and a second run started in
the same directory, refused while the first goes on."""

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml

from conftest import GRIB_WORKFLOW_CONFIG as CONFIG, REPO, snakemake, write_grib_ensemble

pytestmark = pytest.mark.slow

# the long rules, in the order they first run; each is killed once, at a random point of its run
LONG_RULES = ["train", "sample", "sample_snapshots", "evaluate", "comparisons", "report"]
# where a rule has something to resume from, the kill waits for it: training's first checkpoint,
# sampling's first finished batch of members (4 batches of 2)
RESUMABLE = {"train": "results/models/*/checkpoint.pt", "sample": "results/samples/.*.zarr.chunks/members-*.npy"}


@pytest.fixture(scope="module")
def fault_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    grib = folder / "era5-ensemble.grib"
    write_grib_ensemble(grib, pd.date_range("2001-01-01", periods=40, freq="6h"))
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "source": str(grib), "members": 3},
                                    "training": {**CONFIG["training"], "steps": 60, "checkpoint_every": 20},
                                    "sampling": {**CONFIG["sampling"], "batch_size": 2}}))
    return path


def start(workdir, *args, **kwargs) -> subprocess.Popen:
    """The workflow in the background, in a process group of its own (so that kill -9 takes its jobs too)."""
    return subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                             str(workdir), *args], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def rule_logs(workdir, rule: str, since: float) -> list:
    """The rule's job logs (results/logs/RULE_*.log, RULE.log) written since `since`."""
    pattern = re.compile(rf"^{rule}(_.+)?\.log$")
    logs = workdir / "results" / "logs"
    return [p for p in logs.glob("*.log") if pattern.match(p.name) and p.stat().st_mtime >= since
            and not (rule == "sample" and p.name.startswith("sample_snapshots"))] if logs.is_dir() else []


def rule_work_seconds(workdir, rule: str) -> float:
    """How long the rule's longest job worked in a finished run, from its log's first time stamp
    (or the log's creation, when it holds none) to its benchmark file (or, for the report, the
    page), written as the job ends: the span a kill is drawn from."""
    spans = []
    for log in rule_logs(workdir, rule, 0):
        stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", log.read_text(), flags=re.M)
        start = (time.mktime(time.strptime(stamps[0][0], "%Y-%m-%d %H:%M:%S")) + int(stamps[0][1]) / 1000
                 if stamps else log.stat().st_mtime)
        end_file = workdir / "results" / "benchmarks" / log.name.replace(".log", ".tsv")
        if not end_file.exists():
            end_file = workdir / "results" / "report.html"
        spans.append(end_file.stat().st_mtime - start)
    return max(max(spans, default=0.0), 0.05)


def outputs(workdir) -> dict:
    """What must not depend on the faults: the tables, byte for byte; every model's EMA weights and
    every ensemble's values."""
    results = workdir / "results"
    out = {t: (results / "evaluation" / t).read_bytes() for t in ("metrics.csv", "comparisons.csv")}
    for model in sorted((results / "models").iterdir()):
        out[f"{model.name}/model.pt"] = torch.load(model / "model.pt", weights_only=True)["ema"]
    for ensemble in sorted((results / "samples").glob("*.zarr")):
        with xr.open_zarr(ensemble) as ds:
            out[ensemble.name] = {v: ds[v].values for v in ds.data_vars}
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, bytes):
            assert value == b[key], key
        else:
            for name in value:
                if isinstance(value[name], torch.Tensor):
                    assert torch.equal(value[name], b[key][name]), (key, name)
                else:
                    np.testing.assert_array_equal(value[name], b[key][name], err_msg=f"{key} {name}")


def test_kill_9_in_each_long_rule_then_a_rerun_gives_the_uninterrupted_outputs(fault_config, tmp_path):
    args = ["--cores", "2", "--configfile", str(fault_config)]
    reference = tmp_path / "reference"
    reference.mkdir()
    assert snakemake(reference, *args).returncode == 0

    rng = np.random.default_rng(20261204)
    faulted = tmp_path / "faulted"
    faulted.mkdir()
    killed_inside = []
    for rule in LONG_RULES:
        if (faulted / ".snakemake" / "locks").is_dir():  # left by the killed run, as a user would find it
            assert snakemake(faulted, "--unlock", *args).returncode == 0
        since = time.time() - 1
        run = start(faulted, "--rerun-incomplete", *args)
        deadline = time.time() + 600
        def started():
            return rule_logs(faulted, rule, since) and (rule not in RESUMABLE or list(faulted.glob(RESUMABLE[rule])))

        while not started() and run.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        if run.poll() is not None:  # everything was done before this rule could be caught
            continue
        # a resumable rule is caught once it has a state, and killed within the first fifth of its work after
        time.sleep(rng.uniform(0, rule_work_seconds(reference, rule) * (0.2 if rule in RESUMABLE else 1.0)))
        still_running = run.poll() is None
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        if still_running:
            killed_inside.append(rule)
    assert len(killed_inside) >= 3, killed_inside  # most kills hit the run while it worked (short rules may end first)

    assert snakemake(faulted, "--unlock", *args).returncode == 0
    result = snakemake(faulted, "--rerun-incomplete", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    logs = faulted / "results" / "logs"
    resumed = [p.name for p in logs.glob("train_*.log") if re.search(r"resuming from \S+ at step [1-9]", p.read_text())]
    redone = [p.name for p in logs.glob("sample_*.log") if "finished batches found" in p.read_text()]
    assert resumed and redone, (resumed, redone, killed_inside)  # the kills hit work that had a state to resume
    assert_same(outputs(reference), outputs(faulted))
    assert (faulted / "results" / "report.html").stat().st_size > 10_000
    assert not list(faulted.rglob("*.tmp-*")), "a killed job's temporary was taken as an output"


def test_a_full_disk_while_the_store_is_written_fails_in_one_line_and_leaves_nothing(fault_config, tmp_path):
    """RLIMIT_FSIZE (ulimit -f) stands in for a full disk: the store's chunks (one chunk of all
    400 fields) are larger than the limit, Snakemake's own files and the logs are not."""
    config = yaml.safe_load(fault_config.read_text())
    config["data"].update(members="samples", time_chunk=400)
    big = tmp_path / "big-chunks.yaml"
    big.write_text(yaml.safe_dump(config))
    args = ["results/data/stats.json", "--cores", "1", "--configfile", str(big)]

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (32_000, 32_000))

    run = start(tmp_path, *args, preexec_fn=limit)
    _, stderr = run.communicate(timeout=600)
    assert run.returncode != 0
    line = ("htweather: results/data/store.zarr: cannot be written: a file would exceed the size allowed "
            "(ulimit -f); nothing of it was kept: free space (or raise the limit) and rerun")
    assert line in stderr.splitlines()
    assert (tmp_path / "results" / "logs" / "ingest.log").read_text().strip().splitlines()[-1] == line
    assert not (tmp_path / "results" / "data" / "store.zarr").exists()
    assert not (tmp_path / "results" / "data" / "stats.json").exists()
    assert not list(tmp_path.rglob("*.tmp-*"))
    result = snakemake(tmp_path, *args)  # room again: the rerun makes it whole
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "results" / "data" / "stats.json").read_text())["fields_per_time"] == 10


def test_a_second_run_in_the_same_directory_is_refused_and_the_first_completes(fault_config, tmp_path):
    args = ["results/evaluation/metrics.csv", "--cores", "1", "--configfile", str(fault_config)]
    first = start(tmp_path, *args)
    deadline = time.time() + 300
    while not rule_logs(tmp_path, "train", 0) and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second started"
    second = snakemake(tmp_path, *args)
    assert second.returncode != 0
    # Snakemake 9 checks its incomplete-file markers before it takes the lock: once a running job
    # has written part of its outputs (training's log), the refusal names those files instead
    refusal = second.stdout + second.stderr
    assert "Directory cannot be locked" in refusal or "IncompleteFilesException" in refusal, refusal[-2000:]
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    assert (tmp_path / "results" / "evaluation" / "metrics.csv").stat().st_size > 0
