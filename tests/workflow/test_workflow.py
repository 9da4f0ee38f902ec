"""The Snakemake workflow end to end on the tiny config, its errors, lint and the cluster profile."""

import json
import os
import re
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from conftest import REPO, snakemake

pytestmark = pytest.mark.slow


def test_end_to_end_outputs(tiny_run):
    results = tiny_run / "results"
    metrics = pd.read_csv(results / "evaluation" / "metrics.csv")
    assert list(metrics.columns) == ["model", "replicate", "variable", "metric", "lead", "value", "ci_low", "ci_high"]
    replicates = metrics.groupby("model")["replicate"].agg(lambda r: set(map(str, r)))
    for model in ("edm", "tedm", "tedm_nu3", "fc_tedm"):  # 2 replicates each (tedm_nu3: a copy of tedm)
        assert replicates[model] == {"0", "1", "mean"}, model
    for model in ("tflow", "edm_inc", "fc_flow", "truth", "data", "tedm_sel"):
        assert replicates[model] == {"0"}, model
    generators = {"edm", "tedm", "tflow", "edm_inc", "edm_pcp", "tedm_nu3", "tedm_sel"}
    forecasters = {"fc_tedm", "fc_flow"}
    assert set(metrics.model) == generators | forecasters | {"truth", "data"}
    assert set(metrics.variable) == {"t2m", "w", "tp"}
    # each variable on its tails of interest (tails: auto): temperature both, pressure velocity its
    # ascent (lower), rain upper; each tail's metrics named by its own probabilities
    tails = {"t2m": ("upper", "lower"), "w": ("lower",), "tp": ("upper",)}
    label = {"upper": {0.99: "p99", 0.999: "p999"}, "lower": {0.99: "p01", 0.999: "p001"}}
    quantile = {"upper": lambda q: q, "lower": lambda q: round(1 - q, 10)}

    def on_tails(variable, names):
        return {name(side) for side in tails[variable] for name in names}

    unconditional = {v: {"kurtosis_ratio", "skewness_ratio", "ks", "crps"} | on_tails(v, [
        lambda s: "tail_ks" if s == "upper" else "tail_ks_lower",
        *(lambda s, p=p: f"exceedance_ratio_{label[s][p]}" for p in (0.99, 0.999)),
        *(lambda s, q=q: f"quantile_rel_error_{quantile[s](q):g}" for q in (0.99, 0.999, 0.9999)),
        *(lambda s, q=q: f"quantile_{quantile[s](q):g}" for q in (0.99, 0.999, 0.9999))]) for v in tails}
    forecast = {v: {"crps", "fair_crps", "spread_skill", "rmse", "spread", "rank_flatness"} | on_tails(v, [
        *(lambda s, p=p, k=k: f"{k}_{label[s][p]}" for p in (0.99, 0.999) for k in ("twcrps", "brier")),
        *(lambda s, p=p, n=n: f"fss_{label[s][p]}_{n}x{n}" for p in (0.99, 0.999) for n in (1, 3, 5))]) for v in tails}
    levels = {"gev_shape_xi", "return_level_2", "return_level_10", "return_level_50"}
    spatial = {v: {"psd_log_error", "psd_log_ratio_large", "psd_log_ratio_small"} | on_tails(v, [
        lambda s: f"areal_quantile_rel_error_{quantile[s](0.99):g}_2x2",
        lambda s: f"areal_exceedance_ratio_{label[s][0.99]}_8x8",
        lambda s: f"areal_quantile_rel_error_{quantile[s](0.999):g}_field"]) for v in tails}
    storm = {f"{m}_{t}" for t in ("wet", "p99") for m in ("object_count_ratio", "object_area_rel_error",
                                                          "object_peak_q99_rel_error", "sal_structure")}
    storm.add("sal_amplitude")  # of a variable with an upper tail only
    updrafts = {f"{m}_p01" for m in ("object_count_ratio", "object_area_rel_error", "object_peak_q99_rel_error",
                                     "sal_structure")}  # the ascent's objects
    for (model, variable), group in metrics.groupby(["model", "variable"]):
        if model in generators | {"truth"}:
            assert unconditional[variable] <= set(group.metric), (model, variable)
            # no pooled number under a one-tail name, and no upper-tail metric of the ascent
            assert ("exceedance_ratio_p999" in set(group.metric)) == (variable != "w"), (model, variable)
            assert group["lead"].isna().all()
            wet = {"dry_fraction_error", "wet_quantile_rel_error_0.5",
                   "wet_quantile_rel_error_0.9", "wet_quantile_rel_error_0.99", "wet_mean_rel_error"}
            assert (wet <= set(group.metric)) == (variable == "tp"), (model, variable)  # rain only
            # the fields' structure: spectra and areal extremes of every variable, storms of rain,
            # updrafts of w, none of t2m (both tails)
            assert spatial[variable] <= set(group.metric), (model, variable)
            assert (storm <= set(group.metric)) == (variable == "tp"), (model, variable)
            assert (updrafts <= set(group.metric)) == (variable == "w"), (model, variable)
        if model in forecasters:
            scored = group[group["lead"].notna()]
            assert set(scored["lead"]) == {1, 2}
            for lead, part in scored.groupby("lead"):
                assert forecast[variable] <= set(part.metric), (model, variable, lead)
                assert ("seeps" in set(part.metric)) == (variable == "tp")
        if model in forecasters | {"truth", "data"}:
            assert levels <= set(group.metric), (model, variable)
    # FSS is undefined where neither the forecasts nor the observations exceed the threshold:
    # with 4 start times at the p999, often; at the p99 for some models and leads only
    assert metrics[~metrics.metric.str.startswith("fss_")].value.notna().all()
    assert metrics[metrics.metric.str.startswith(("fss_p99_", "fss_p01_"))].value.notna().mean() > 0.5
    structure = metrics[metrics.metric.str.startswith(("psd_", "object_", "sal_", "areal_"))]
    assert structure.ci_low.notna().all() and (structure.ci_low <= structure.ci_high).all()
    with_ci = metrics[metrics.metric.str.startswith(("quantile_rel_error", "exceedance_ratio", "return_level",
                                                     "empirical_return_level", "quantile_0"))
                      | (metrics["lead"].notna() & metrics.metric.isin(["crps", "fair_crps", "spread_skill"]))]
    assert with_ci.ci_low.notna().all() and (with_ci.ci_low <= with_ci.ci_high).all()
    ranks = pd.read_csv(results / "evaluation" / "rank_histograms.csv")
    assert set(ranks.model) == forecasters and ranks["rank"].max() == 4  # 4 members: ranks 0..4
    assert set(ranks[ranks.model == "fc_tedm"].replicate) == {0, 1}

    comparisons = pd.read_csv(results / "evaluation" / "comparisons.csv")
    assert list(comparisons.columns) == ["model", "baseline", "variable", "metric", "lead", "difference", "ci_low",
                                         "ci_high", "resolution", "relevant", "p_value", "p_adjusted", "verdict",
                                         "replicates"]
    # every "no difference" carries its resolution (the interval's half-width) and the relevant
    # difference it was judged against; a metric undefined in a run has no test and is inconclusive
    tested = comparisons[comparisons.p_value.notna()]
    assert (comparisons[comparisons.p_value.isna()].verdict == "inconclusive").all()
    quiet = tested[tested.verdict.isin(["indistinguishable", "inconclusive"])]
    assert np.allclose(quiet.resolution, (quiet.ci_high - quiet.ci_low) / 2) and (comparisons.relevant >= 0).all()
    same = tested[tested.verdict == "indistinguishable"]
    assert (np.maximum(same.ci_low.abs(), same.ci_high.abs()) <= same.relevant).all()
    assert ((tested.p_adjusted >= tested.p_value) & (tested.p_adjusted <= 1)).all()
    flagged = tested.verdict.isin(["better", "worse"])
    assert (tested.p_adjusted[flagged] < 0.05).all() and (tested.p_adjusted[~flagged] >= 0.05).all()
    pairs = comparisons.groupby(["model", "baseline"])
    assert set(pairs.groups) == {("tedm", "edm"), ("tedm", "edm_inc"), ("fc_tedm", "fc_flow")}  # as configured
    assert set(pairs.get_group(("tedm", "edm")).replicates) == {"2 vs 2"}
    assert set(pairs.get_group(("tedm", "edm_inc")).replicates) == {"2 vs 1"}
    tails = pairs.get_group(("tedm", "edm"))
    assert {"exceedance_ratio_p99", "exceedance_ratio_p999", "quantile_rel_error_0.999", "tail_ks"} <= set(
        tails[tails.variable == "tp"].metric)
    assert {"exceedance_ratio_p01", "exceedance_ratio_p001", "quantile_rel_error_0.001", "tail_ks_lower"} == set(
        tails[tails.variable == "w"].metric) & {"exceedance_ratio_p01", "exceedance_ratio_p001", "exceedance_ratio_p99",
                                                "quantile_rel_error_0.001", "tail_ks_lower", "tail_ks"}
    # the dry fraction is compared unless every training of both had its threshold calibrated to the
    # validation split's dry fraction (then equal by construction)
    raised = [json.loads(xr.open_zarr(results / "samples" / f"{run}.zarr").attrs["dry_below_calibrated"])
              for run in ("tedm", "tedm.r1", "edm", "edm.r1")]
    rain = set(tails[tails.variable == "tp"].metric)
    assert "wet_mean_rel_error" in rain and ("dry_fraction_error" in rain) == (not all("tp" in r for r in raised))
    # the key structure metrics, with the same intervals: storms for rain only
    assert {"psd_log_error", "areal_quantile_rel_error_0.99_field"} <= set(tails[tails.variable == "t2m"].metric)
    assert "sal_structure_p99" not in set(tails[tails.variable == "t2m"].metric)
    assert {"psd_log_error", "sal_structure_p99", "object_count_ratio_p99",
            "areal_quantile_rel_error_0.99_field"} <= set(tails[tails.variable == "tp"].metric)
    assert tails["lead"].isna().all() and set(tails.variable) == {"t2m", "w", "tp"}
    scores = pairs.get_group(("fc_tedm", "fc_flow"))
    assert set(scores[scores.variable == "tp"].metric) == {"crps", "twcrps_p99", "twcrps_p999"}
    assert set(scores[scores.variable == "w"].metric) == {"crps", "twcrps_p01", "twcrps_p001"}
    assert set(scores["lead"]) == {1, 2}
    assert set(comparisons.verdict) <= {"better", "worse", "indistinguishable", "inconclusive"}
    assert (comparisons.ci_low <= comparisons.difference).all() and (comparisons.difference <= comparisons.ci_high).all()
    convergence = pd.read_csv(results / "evaluation" / "convergence.csv")
    # the composite tail error, one row per model and variable, as the report's first screen says it
    composite = pd.read_csv(results / "evaluation" / "tail_error.csv")
    assert list(composite.columns) == ["model", "variable", "state", "final_error", "reference_error", "near_limit",
                                       "step", "error", "step_before", "error_before"]
    assert not composite.duplicated(["model", "variable"]).any() and {"tedm", "fc_tedm"} <= set(composite.model)
    reference = convergence[convergence.model == "reference"]  # the truth ensemble's key metrics, step 0
    # 4 key metrics per tail of interest (t2m 2, w 1, tp 1), at 2 sizes
    assert set(reference.variable) == {"t2m", "w", "tp"} and set(reference.step) == {0} and len(reference) == 32
    assert set(reference.members) == {4, 8}  # the trend's sample size and the whole ensemble's
    convergence = convergence[convergence.model != "reference"]
    unconditional_end = convergence[(convergence.step == 20) & ~convergence.model.isin(["fc_tedm", "fc_flow"])]
    assert unconditional_end.groupby(["model", "replicate"]).members.agg(lambda x: sorted(set(x))).map(
        lambda m: m == [4, 8]).all()
    assert set(convergence[convergence.step < 20].members) == {4}
    steps = convergence.groupby(["model", "replicate"])["step"].agg(lambda x: sorted(set(x)))
    # 10 unconditional runs and 3 forecast runs: snapshots at 1/4, 1/2; the end
    assert len(steps) == 13 and all(s == [5, 10, 20] for s in steps)
    forecast_rows = convergence.model.isin(["fc_tedm", "fc_flow"])
    assert set(convergence[~forecast_rows & (convergence.variable == "tp")].metric) == {
        "exceedance_ratio_p99", "exceedance_ratio_p999", "quantile_rel_error_0.999", "tail_ks"}
    assert set(convergence[~forecast_rows & (convergence.variable == "w")].metric) == {
        "exceedance_ratio_p01", "exceedance_ratio_p001", "quantile_rel_error_0.001", "tail_ks_lower"}
    assert set(convergence[forecast_rows & (convergence.variable == "tp")].metric) == {"twcrps_p99", "twcrps_p999"}
    assert (convergence.error >= 0).all()
    # the final point of a forecast model is its own forecasts' lead-1 score
    final = convergence[(convergence.model == "fc_flow") & (convergence.step == 20)].set_index(["variable", "metric"])
    assert np.isclose(final.loc[("tp", "twcrps_p99"), "value"],
                      metrics.query("model == 'fc_flow' and variable == 'tp' and metric == 'twcrps_p99' and lead == 1"
                                    ).value.astype(float).iloc[0])
    html = (results / "report.html").read_text()
    assert "Has training converged?" in html
    assert '<p class="run-note">A tiny run for the tests: 20 steps.</p>' in html  # report.note, first
    assert html.index('<p class="run-note">') < html.index('id="answer"')
    # evaluation.sampler_budget: each generator's trainings at each setting its family has, beside the reference
    budget = pd.read_csv(results / "evaluation" / "sampler_budget.csv")
    assert set(budget.model) == generators and set(budget.variable) == {"t2m", "w", "tp"}
    solvers = budget.groupby("model").apply(lambda g: set(zip(g.solver, g.evaluations)), include_groups=False)
    assert solvers["tedm"] == {("heun", 255), ("dpmpp_2m", 3)} and solvers["tflow"] == {("heun", 255), ("dpmpp_2m", 3), ("ab2", 3)}
    assert budget.set_index("model").runs.to_dict()["edm"] == 2
    compared = budget[budget.evaluations < 255]
    # the 4 key tail metrics on each tail of interest: 8 on t2m (both tails), 4 on w and tp
    assert (compared.compared == compared.variable.map({"t2m": 8, "w": 4, "tp": 4})).all()
    assert (compared.indistinguishable <= compared.compared).all() and (compared.indistinguishable >= 0).all()
    # each replicate is its own training, with its own seed
    first = torch.load(results / "models" / "tedm" / "model.pt", weights_only=True)
    second = torch.load(results / "models" / "tedm.r1" / "model.pt", weights_only=True)
    assert (first["replicate"], second["replicate"]) == (0, 1) and first["seed"] != second["seed"]
    assert not np.array_equal(xr.open_zarr(results / "samples" / "tedm.zarr").w.values,
                              xr.open_zarr(results / "samples" / "tedm.r1.zarr").w.values)
    # nu: select: the candidates scored on the validation split, the model trained with the winner
    selection = json.loads((results / "selection" / "tedm_sel.json").read_text())
    assert [c["candidate"] for c in selection["candidates"]] == ["tedm_sel_select_nu3", "tedm_sel_select_nu8"]
    assert selection["split"] == "validation" and selection["chosen"] in (3.0, 8.0)
    chosen = torch.load(results / "models" / "tedm_sel" / "model.pt", weights_only=True)["spec"]["nu"]
    assert chosen == ["inf", selection["chosen"], selection["chosen"]]
    assert "tedm_sel_select_nu3" not in set(metrics.model)  # never evaluated on the test split
    maps = xr.open_dataset(results / "evaluation" / "quantile_maps.nc")
    assert {"data", "edm", "truth", "fc_tedm"} <= set(maps.source.values) and "tp_bias" in maps

    html = (results / "report.html").read_text()
    # the contents first, then the answer, then the details, each section collapsible
    assert html.index('id="contents"') < html.index("Does Student-t noise get the extremes right here") < html.index(
        '<details class="section" id="models">')
    assert html.count('<table class="answer">') == 3  # the key metrics: one table per variable
    # the quantiles in the variables' units: one table per tail of interest (t2m both, w lower, tp upper)
    assert html.count('<table class="answer quantiles">') == 4
    assert "w [Pa s-1], lower tail (ascent)" in html and "tp [mm], upper tail" in html
    assert "The data&#39;s 0.1th percentile is" in html and "The data&#39;s 99.9th percentile is" in html
    assert html.count("trained once: the intervals") == 1  # said once, not per pair
    # display names from the config: two models of the test config read alike, so their keys are added
    assert "EDM + INC and Flow forecast were trained once" in html
    assert "t-EDM (tedm) against EDM (2 vs 2 runs)" in html
    assert html.count('<details class="section"') >= 12 and html.count('<details class="section" id="tails" open>') == 1
    # forecast tables, sample maps and provenance collapsed by default
    for section in ("forecasts", "sample-maps", "provenance"):
        assert f'<details class="section" id="{section}">' in html, section
    assert "How a verdict is reached: a pair" in html
    assert "Benjamini-Hochberg adjustment at a false discovery rate of 5 %" in html
    for section in ("Are the tails right?", "Return levels", "Do the data's intervals cover the truth?",
                    "Is the forecast skilful and calibrated?", "How does nu matter?",
                    "What <code>nu: auto</code> chose", "What <code>nu: select</code> chose for tedm_sel",
                    "All metrics", "Sample maps", "Training", "Provenance", "Time per job", "Seeds",
                    "How many network evaluations does sampling need?", "dpmpp_2m, 3 steps",
                    "Do the fields have the data's structure?", "tp: storms against the data's",
                    "Every spatial metric", "fss_p99_3x3"):
        assert section in html, section
    # histograms, QQ, quantile maps, loss, a map figure per variable, nu sweep, skill, ranks, return levels
    # + a quantile map per variable (3), convergence, sampler budget, structure
    assert html.count("data:image/png;base64,") == 4 + 3 + 4 + 1 + 1 + 1 + 2
    assert 'class="best"' in html

    ds = xr.open_zarr(results / "samples" / "tedm.zarr")
    assert ds.tp.attrs["units"] == "mm" and ds.sizes["member"] == 8
    for log in ("synthetic_data", "ingest", "train_tedm", "sample_tflow", "evaluate_truth", "forecast_fc_flow",
                "verify_forecasts_fc_tedm", "truth_sequences", "return_levels_truth", "quantile_maps", "figures",
                "sampler_budget", "report"):
        assert (results / "logs" / f"{log}.log").exists(), log


def test_the_collapsed_report_is_at_most_twelve_screens(tiny_run):
    """Measured in headless Chromium where the machine has it (Debian's chromium): the page with
    every section collapsed, at 1400 px wide, is at most 12 screens of 900 px, and every section
    is still in the page (opened, it is several times longer)."""
    if not shutil.which("chromium") and not os.environ.get("CHROMIUM"):
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from report_screenshots import SCREEN, page_height
    report = tiny_run / "results" / "report.html"
    closed, opened = page_height(report, 1400, False), page_height(report, 1400, True)
    assert closed <= 12 * SCREEN, closed
    assert opened > 3 * closed


def test_rerun_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, "--cores", "2", "--configfile", str(REPO / "config" / "test.yaml"), "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def _write_config(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text((REPO / "config" / "test.yaml").read_text() + text)
    return path


@pytest.mark.parametrize("extra,message", [
    ("\ntypo_key: 1\n", "unknown key 'typo_key'"),
    ("\nmodels: {tedm: {family: edm, nu: 2}}\n", "models.tedm.nu: must be a number > 2"),
])
def test_config_errors_are_one_line_and_write_nothing(tmp_path, extra, message):
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(_write_config(tmp_path, extra)))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"htweather: config error: {lines[0].split('config error: ', 1)[1]}"]
    assert message in lines[0]
    assert not (tmp_path / "results").exists()


def test_nonexistent_input_path(tmp_path):
    result = snakemake(tmp_path, "--cores", "1", "--config", "data={source: /no/such/dir/*.nc}")
    assert result.returncode != 0
    assert result.stderr.strip() == "htweather: config error: data.source: no file matches '/no/such/dir/*.nc'"
    assert not (tmp_path / "results").exists()


def test_missing_variable_in_input_file(tmp_path):
    import numpy as np

    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), np.zeros((4, 2, 2), "float32"))},
                    coords={"time": pd.date_range("2000-01-01", periods=4), "latitude": [1.0, 0.0],
                            "longitude": [0.0, 1.0]})
    ds.to_netcdf(tmp_path / "only_t2m.nc")
    cfg = tmp_path / "user.yaml"
    cfg.write_text(f"data: {{source: {tmp_path / 'only_t2m.nc'}, variables: {{t2m: {{}}, swvl1: {{}}}}}}\n")
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(cfg))
    assert result.returncode != 0
    assert result.stderr.strip() == (f"htweather: config error: {tmp_path / 'only_t2m.nc'}: variable 'swvl1' "
                                     "not found (looked for swvl1; source has: t2m)")
    assert not (tmp_path / "results").exists()


def test_lint_has_no_missing_log_or_environment(tmp_path):
    result = snakemake(tmp_path, "--lint")
    text = (result.stdout + result.stderr).lower()
    assert "no log directive" not in text and "log directive" not in text, text
    assert "conda" not in text, text


def test_cluster_profile_plans_the_whole_dag(tmp_path):
    result = snakemake(tmp_path, "--profile", str(REPO / "cluster"), "-n", "--configfile",
                       str(REPO / "config" / "test.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    for rule in ("synthetic_data", "ingest", "train", "sample", "sample_truth", "forecast", "truth_sequences",
                 "evaluate", "verify_forecasts", "return_levels", "quantile_maps", "metrics_table", "figures",
                 "provenance", "report", "all"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, rule
    assert "gpu=1" in out.replace(" ", "") or "gpu: 1" in out
    # one training job per replicate: 2 each of edm, tedm, tedm_nu3 and fc_tedm, 1 of the other five,
    # and one per nu: select candidate of tedm_sel (2)
    assert out.count("rule train:") == 15 and out.count("rule select_nu:") == 1
    assert "results/models/tedm.r1/model.pt" in out and "results/forecasts/fc_tedm.r1.zarr" in out


def test_steps_auto_plans_snapshots_by_their_place_not_their_step(tmp_path):
    """With training.steps: auto the steps are known only at the end: the DAG names snapshot K
    by its place in training.snapshots, and the convergence check reads each one's step from
    the ensemble it made."""
    auto = tmp_path / "auto.yaml"
    auto.write_text("training: {steps: auto, max_steps: 40, stop: {every: 5, patience: 2, members: 8}}\n")
    result = snakemake(tmp_path, "--cores", "2", "-n", "--configfile", str(REPO / "config" / "test.yaml"), str(auto))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "results/models/tedm.r1/snapshot_1.pt" in out and "results/snapshots/tedm.r1/snapshot_2.zarr" in out
    assert "snapshot_5.pt" not in out and "rule convergence:" in out


def test_masked_pressure_level_source_end_to_end(tmp_path):
    """A land-only flux (sea NaN, lat/lon ascending, CF names) beside a pressure-level field in
    the new CDS layout, through the whole workflow: the mask reaches training, samples,
    evaluation and the report."""
    import numpy as np

    rng = np.random.default_rng(0)
    times = pd.date_range("2001-01-01", periods=24 * 20, freq="h")
    lat, lon = np.arange(50.0, 54.0, 0.5), np.arange(-2.0, 2.0, 0.5)
    sea = np.zeros((lat.size, lon.size), bool)
    sea[:3, :4] = True
    flux = (np.maximum(rng.standard_normal((times.size, lat.size, lon.size)), 0) ** 3 * 1e-4).astype("float32")
    flux[:, sea] = np.nan
    xr.Dataset({"pr": (("time", "lat", "lon"), flux, {"units": "kg m-2 s-1"})},
               coords={"time": times, "lat": lat, "lon": lon}).to_netcdf(tmp_path / "land_pr.nc")
    t = (260 + 5 * rng.standard_normal((times.size, 2, lat.size, lon.size))).astype("float32")
    xr.Dataset({"t": (("valid_time", "pressure_level", "latitude", "longitude"), t[:, :, ::-1], {"units": "K"})},
               coords={"valid_time": times, "pressure_level": [500, 850], "latitude": lat[::-1],
                       "longitude": lon, "expver": ("valid_time", ["0001"] * times.size)}
               ).to_netcdf(tmp_path / "levels_t.nc")
    cfg = tmp_path / "masked.yaml"
    cfg.write_text((REPO / "config" / "test.yaml").read_text().split("data:")[0] + f"""
data:
  source: {tmp_path}/*.nc
  variables:
    pr: {{lower_bound: 0.0}}
    t@850: {{}}
  splits:
    train: ["2001-01-01", "2001-01-12T23:00"]
    validation: ["2001-01-13", "2001-01-15T23:00"]
    test: ["2001-01-16", "2001-01-20T23:00"]
architecture: {{base_channels: 8, channel_mult: [1, 2], embedding_dim: 16}}
models:
  edm: {{family: edm, nu: inf}}
  tedm: {{family: edm, nu: {{pr: 5, t@850: inf}}}}
  fc: {{family: edm, nu: auto, condition_steps: 1}}
forecast: {{init_times: 2, members: 4, lead_steps: 2, rollout_chains: 1, rollout_steps: 56}}
training: {{steps: 10, batch_size: 4, checkpoint_every: 10, log_every: 5, warmup_steps: 2}}
sampling: {{members: 8, batch_size: 8, edm: {{steps: 4}}}}
evaluation: {{bootstrap: 5, gev_bootstrap: 5}}
report: {{map_members: 2}}
""")
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-5000:]
    results = tmp_path / "results"
    store = xr.open_zarr(results / "data" / "store.zarr")
    np.testing.assert_array_equal(store["mask"].values.astype(bool), ~sea[::-1])
    sample = xr.open_zarr(results / "samples" / "tedm.zarr")
    assert sample.pr.attrs["units"] == "mm h-1"
    assert np.isnan(sample.pr.values[:, sea[::-1]]).all() and np.isfinite(sample.pr.values[:, ~sea[::-1]]).all()
    assert np.isnan(sample["t@850"].values[:, sea[::-1]]).all()
    metrics = pd.read_csv(results / "evaluation" / "metrics.csv")
    assert set(metrics.model) == {"edm", "tedm", "fc", "data"} and set(metrics.variable) == {"pr", "t@850"}
    assert metrics[~metrics.metric.str.startswith("fss_")].value.notna().all()
    # storms and areal means on the land cells only
    assert {"object_count_ratio_p99", "areal_quantile_rel_error_0.99_2x2"} <= set(metrics[metrics.variable == "pr"].metric)
    forecasts = xr.open_zarr(results / "forecasts" / "fc.zarr")
    land = ~sea[::-1]
    assert np.isnan(forecasts.pr.values[..., ~land]).all() and np.isfinite(forecasts.pr.values[..., land]).all()
    sequences = xr.open_zarr(results / "sequences" / "fc.zarr")
    assert np.isfinite(sequences["t@850"].values[..., ~sea[::-1]]).all()
    assert "maps_t@850" in " ".join(p.name for p in (results / "figures").iterdir())
    assert (results / "report.html").stat().st_size > 10_000


def test_workflow_killed_during_training_resumes_to_identical_weights(tmp_path, tiny_config):
    """kill -9 the whole workflow (Snakemake and the training job) once training has written
    a checkpoint; `--unlock`, then rerun with `--rerun-incomplete`: training resumes from the
    checkpoint and ends with exactly the weights of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    import torch
    import yaml

    from htweather.training import train
    from htweather.config import load_config

    # with loader workers: spawned workers re-import the rule's script, which must not rerun the job
    longer = {"steps": 600, "batch_size": 4, "checkpoint_every": 100, "log_every": 50, "warmup_steps": 5,
              "data_workers": 2}
    extra = tmp_path / "longer.yaml"
    extra.write_text(yaml.safe_dump({"training": longer}))
    args = ["results/models/tedm/model.pt", "--cores", "1", "--configfile", str(REPO / "config" / "test.yaml"),
            str(extra)]
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                            str(tmp_path / "run"), *args], start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    model_dir = tmp_path / "run" / "results" / "models" / "tedm"
    deadline = time.time() + 300
    while not (model_dir / "checkpoint.pt").exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not (model_dir / "model.pt").exists(), "training finished before the kill: make it longer"

    assert snakemake(tmp_path / "run", "--unlock", *args).returncode == 0
    result = snakemake(tmp_path / "run", "--rerun-incomplete", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "run" / "results" / "logs" / "train_tedm.log").read_text()
    resumed_at = re.search(r"resuming from \S+checkpoint\.pt at step (\d+)", log)
    assert resumed_at and 100 <= int(resumed_at.group(1)) < 600, log[-2000:]

    cfg = load_config({**yaml.safe_load((REPO / "config" / "test.yaml").read_text()), "training": longer})
    data = tmp_path / "run" / "results" / "data"
    straight = train.train(cfg, "tedm", data / "store.zarr", data / "stats.json", tmp_path / "straight")
    reference = torch.load(straight, weights_only=True)["ema"]
    resumed = torch.load(model_dir / "model.pt", weights_only=True)["ema"]
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
