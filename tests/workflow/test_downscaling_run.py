"""Downscaling end to end on the tiny downscaling config (config/test-downscaling.yaml), and its
configuration errors, caught before any job runs."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from htweather.config import load_config, read_yaml
from htweather.errors import ConfigError
from conftest import REPO, snakemake

TINY = REPO / "config" / "test-downscaling.yaml"


@pytest.fixture(scope="module")
def downscaling_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("downscaling")
    result = snakemake(workdir, "--cores", "2", "--configfile", str(TINY))
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir / "results"


def test_every_model_and_baseline_is_scored_against_the_paired_truth(downscaling_run):
    metrics = pd.read_csv(downscaling_run / "evaluation" / "metrics.csv")
    runs = set(zip(metrics.model, metrics.replicate.astype(str)))
    assert {("edm", "0"), ("edm", "1"), ("edm", "mean"), ("tedm", "mean"), ("tflow", "0"), ("tedm_res", "0"),
            ("interpolation", "0"), ("quantile_mapping", "0")} <= runs
    for metric in ("crps", "twcrps_p99", "twcrps_p999", "fss_p99_3x3", "sal_location", "psd_log_error",
                   "cell_quantile_rel_error_0.999", "block_mean_rel_error", "dry_fraction_error",
                   "field_max_return_level_rel_error_100"):
        assert metric in set(metrics.metric), metric
    # models have a spread and a rank histogram; the deterministic baselines have neither
    flat = metrics[metrics.metric == "rank_flatness"]
    assert set(flat.model) == {"edm", "tedm", "tflow", "tedm_res"}
    mean = metrics[metrics.replicate.astype(str).isin(["0", "mean"])].set_index(["model", "metric"]).value
    # the interpolation keeps its coarse input up to the dry threshold and float32
    assert mean[("interpolation", "block_mean_rel_error")] < 0.05


def test_downscaled_stores_pair_each_field_with_its_time(downscaling_run):
    ds = xr.open_zarr(downscaling_run / "downscaled" / "tedm.r1.zarr")
    assert dict(ds.sizes)["member"] == 4 and dict(ds.sizes)["init_time"] == 16
    assert (ds.valid_time.isel(lead=0).values == ds.init_time.values).all()
    assert float(ds.tp.min()) >= 0 and np.isfinite(ds.tp.values).all()
    qm = xr.open_zarr(downscaling_run / "downscaled" / "quantile_mapping.zarr")
    assert dict(qm.sizes)["member"] == 1 and (qm.init_time.values == ds.init_time.values).all()


def test_a_residual_model_keeps_its_regression_stage_and_the_residuals_scale(downscaling_run):
    import torch
    ckpt = torch.load(downscaling_run / "models" / "tedm_res" / "model.pt", weights_only=True)
    assert ckpt["spec"]["residual"] and ckpt["regression"]
    assert isinstance(ckpt["spec"]["sigma_data"], list)  # the residuals' own scale, per variable
    log = (downscaling_run / "logs" / "train_tedm_res.log").read_text()
    assert "regression stage: 10 steps" in log


def test_comparisons_pair_student_t_with_gaussian_and_every_model_with_the_baselines(downscaling_run):
    table = pd.read_csv(downscaling_run / "evaluation" / "comparisons.csv")
    pairs = set(zip(table.model, table.baseline))
    assert ("tedm", "edm") in pairs
    assert {("edm", "quantile_mapping"), ("tedm", "interpolation"), ("tflow", "quantile_mapping")} <= pairs
    assert set(table.replicates[table.baseline == "quantile_mapping"]) >= {"2 vs 1", "1 vs 1"}
    assert {"twcrps_p99", "twcrps_p999", "crps"} <= set(table.metric)


def test_the_report_answers_the_downscaling_question_first(downscaling_run):
    html = (downscaling_run / "report.html").read_text()
    question = html.index("Does Student-t noise get the fine-scale extremes right")
    assert html.index('<p class="run-note">A tiny downscaling run for the tests.</p>') < question  # report.note
    assert question < html.index("Distance from the paired truth") < html.index("Rank histograms")
    # the convergence check (a snapshot at half the steps) is said before the answer
    assert ("Not converged:" in html or "Convergence: no model" in html) and html.index("onverge") < question
    assert (downscaling_run / "evaluation" / "tail_error.csv").exists()
    assert "interpolation + quantile mapping" in html and "t-EDM against EDM" in html
    assert (downscaling_run / "figures" / "downscaling_fields_tp.png").stat().st_size > 10_000


def _config(**changes):
    raw = read_yaml(TINY)
    for key, value in changes.items():
        raw[key] = value
    return raw


@pytest.mark.parametrize("changes, message", [
    ({"downscaling": None}, "models.edm.downscale: needs the downscaling section"),
    ({"models": {"edm": {"family": "edm", "nu": "inf", "downscale": True}, "plain": {"family": "edm"}}},
     "models.plain: a downscaling run trains downscaling models only"),
    ({"models": {"edm": {"family": "edm", "downscale": True, "condition_steps": 1}}},
     "models.edm.condition_steps: a downscaling model needs 0"),
    ({"models": {"edm": {"family": "edm", "downscale": True, "normalisation": "inc"}}},
     "models.edm.normalisation: a downscaling model needs 'standard'"),
    ({"models": {"interpolation": {"family": "edm", "downscale": True}}}, "the name of a downscaling baseline"),
    ({"downscaling": {"factor": 3}}, "downscaling.factor: the 16 x 16 grid"),
    ({"models": {"edm": {"family": "edm"}}}, "downscaling: no model has downscale: true"),
    ({"models": {"edm": {"family": "edm", "residual": True}}}, "models.edm.residual: the CorrDiff form is for"),
])
def test_downscaling_config_errors_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(_config(**changes))


def test_the_downscaling_aa_check_config_plans_the_check_after_every_training(tmp_path):
    """config/aa-check-downscaling.yaml's DAG (a dry run): 8 trainings of each CorrDiff form, their
    downscaled stores into one aa_check job, and its rates into the report."""
    result = snakemake(tmp_path, "--cores", "2", "-n", "--configfile", str(REPO / "config" / "aa-check-downscaling.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {line.split()[0]: int(line.split()[1]) for line in result.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert jobs["train"] == 16 and jobs["downscale"] == 16 and jobs["aa_check"] == 1
