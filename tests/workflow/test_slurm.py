"""The workflow on a real SLURM cluster through the user-facing profile (`--profile cluster`).

Needs a running cluster: `.ci/slurm-up` starts a one-node one (Debian's slurm-wlm and munge;
root). Without one these tests skip, unless HTWEATHER_REQUIRE_SLURM=1 (CI sets it), where they
fail instead. tests/slurm/ is the overlay profile for that cluster: partition, no accounting,
no GPUs."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO

pytestmark = pytest.mark.slow

PROFILE = ["--profile", str(REPO / "cluster"), "--workflow-profile", str(REPO / "tests" / "slurm")]


@pytest.fixture(scope="module")
def cluster():
    try:
        up = shutil.which("sinfo") and "idle" in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                                                                 text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        up = False
    if not up:
        message = "no SLURM cluster answers (start one with `bash .ci/slurm-up`, as root)"
        if os.environ.get("HTWEATHER_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def start_snakemake(workdir, *args):
    """Snakemake in the background, its output in workdir/snakemake.out."""
    out = open(workdir / "snakemake.out", "w")
    return subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                             str(workdir), *PROFILE, *args], stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)


def submitted(text: str) -> dict[str, list[str]]:
    """{rule: [SLURM job ids]} from Snakemake's output."""
    jobs = {}
    for rule, job in re.findall(r"rule_(\w+?)/(?:[^/\s]*/)*(\d+)\.log", text):
        jobs.setdefault(rule, [])
        if job not in jobs[rule]:
            jobs[rule].append(job)
    return jobs


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    run = start_snakemake(workdir, "--configfile", str(REPO / "config" / "test.yaml"),
                          "--slurm-keep-successful-logs")
    assert run.wait(timeout=1800) == 0, (workdir / "snakemake.out").read_text()[-5000:]
    return workdir


def test_every_rule_ran_as_a_slurm_job(slurm_run):
    out = (slurm_run / "snakemake.out").read_text()
    jobs = submitted(out)
    expected = {"synthetic_data", "ingest", "train", "sample", "sample_truth", "forecast", "truth_sequences",
                "evaluate", "verify_forecasts", "return_levels", "quantile_maps", "metrics_table", "figures",
                "provenance", "report"}
    assert expected <= set(jobs), set(jobs)
    ids = [job for rule in jobs.values() for job in rule]
    assert len(ids) == len(set(ids)) == out.count("has been submitted with SLURM jobid")
    # each rule's own log names the SLURM job it ran in, and SLURM kept that job's log
    logs = sorted((slurm_run / "results" / "logs").glob("*.log"))
    assert len(logs) == len(ids)
    for log in logs:
        found = re.search(r"SLURM job (\d+) on node", log.read_text())
        assert found and found.group(1) in ids, log.name
    for rule, rule_ids in jobs.items():
        for job in rule_ids:
            assert list((slurm_run / ".snakemake" / "slurm_logs").glob(f"rule_{rule}/**/{job}.log")), (rule, job)


def test_slurm_outputs_match_the_local_run(slurm_run, tiny_run):
    """Same seed, same config: the same metrics, to the last digit, whether run locally or as
    SLURM jobs (the local run is the workflow tests' run of the tiny config)."""
    for table in ("metrics.csv", "rank_histograms.csv", "comparisons.csv"):
        local = (tiny_run / "results" / "evaluation" / table).read_bytes()
        assert (slurm_run / "results" / "evaluation" / table).read_bytes() == local, table
    for model in ("tedm", "tedm.r1", "fc_tedm", "fc_tedm.r1"):  # replicates: jobs of their own
        a = torch.load(tiny_run / "results" / "models" / model / "model.pt", weights_only=True)["ema"]
        b = torch.load(slurm_run / "results" / "models" / model / "model.pt", weights_only=True)["ema"]
        assert all(torch.equal(a[k], b[k]) for k in a), model
    assert (slurm_run / "results" / "report.html").stat().st_size > 10_000


@pytest.mark.parametrize("signal_name", ["TERM", "USR1"])
def test_signalled_training_job_is_retried_and_resumes(cluster, tmp_path, signal_name):
    """Signal a training job mid-run as SLURM does: plain `scancel` (SIGTERM, as a preemption)
    or `scancel --signal=USR1` (what `--signal=USR1@300` sends before the time limit). It
    checkpoints and exits, Snakemake resubmits it (`retries: 1` in the cluster profile), the
    retry resumes from the checkpoint, and the workflow completes with no partial outputs."""
    target = "results/models/tedm/model.pt"
    longer = tmp_path / "longer.yaml"
    longer.write_text("training: {steps: 1000, batch_size: 4, checkpoint_every: 100, log_every: 50, warmup_steps: 5}\n")
    run = start_snakemake(tmp_path, target, "--configfile", str(REPO / "config" / "test.yaml"), str(longer))
    checkpoint = tmp_path / "results" / "models" / "tedm" / "checkpoint.pt"
    deadline = time.time() + 600
    while not checkpoint.exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), (tmp_path / "snakemake.out").read_text()[-5000:]
    first = submitted((tmp_path / "snakemake.out").read_text())["train"][0]
    subprocess.run(["scancel", first] if signal_name == "TERM" else ["scancel", "--signal=USR1", first], check=True)
    try:
        assert run.wait(timeout=900) == 0, (tmp_path / "snakemake.out").read_text()[-5000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)

    out = (tmp_path / "snakemake.out").read_text()
    train_jobs = submitted(out)["train"]
    assert len(train_jobs) == 2 and train_jobs[0] == first, out[-5000:]
    log = (tmp_path / "results" / "logs" / "train_tedm.log").read_text()
    assert f"SLURM job {train_jobs[1]}" in log
    resumed_at = int(re.search(r"resuming from .*checkpoint\.pt at step (\d+)", log).group(1))
    assert 100 <= resumed_at < 1000
    first_log = next((tmp_path / ".snakemake" / "slurm_logs").glob(f"rule_train/**/{first}.log")).read_text()
    assert f"stopped by SIG{signal_name}" in first_log, first_log[-3000:]
    model = torch.load(tmp_path / target, weights_only=True)
    assert model["steps"] == 1000
    steps = [int(line.split(",")[0]) for line in
             (tmp_path / "results" / "models" / "tedm" / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 1000
    assert not [p for p in (tmp_path / "results").rglob("*") if ".tmp-" in p.name]
