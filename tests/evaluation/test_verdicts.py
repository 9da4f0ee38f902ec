"""Verdicts you can trust: the multiplicity adjustment against scipy and by hand, the four
verdicts and the resolution, the A/A check on stand-in trainings of one process (its false
verdicts no more frequent than the nominal rate), the model intervals' coverage of a known truth
with the test data's noise in them, and the power calculation against its normal approximation."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from htweather.config import ConfigError, load_config
from htweather.evaluation import aa_check, comparisons, tables
from htweather.tail_metrics import key_metric_names


def frame(rows):
    """Comparison rows; the interval is difference ± resolution unless given."""
    return pd.DataFrame([{"model": "tedm", "baseline": "edm", "variable": "tp", "lead": pd.NA, "baseline_error": 1.0,
                          "ci_low": r["difference"] - r["resolution"], "ci_high": r["difference"] + r["resolution"],
                          **r} for r in rows])


def test_adjusted_p_values_are_benjamini_hochberg_per_family():
    key = key_metric_names("upper")  # exceedance_ratio_p99, _p999, quantile_rel_error_0.999, tail_ks
    p = [0.01, 0.04, 0.03, 0.2]
    rows = [{"metric": m, "p_value": v, "difference": -0.1, "resolution": 0.01} for m, v in zip(key, p)]
    rows += [{"metric": "psd_log_error", "p_value": 0.03, "difference": 0.1, "resolution": 0.01},
             {"metric": "quantile_rel_error_0.99", "p_value": 0.02, "difference": 0.1, "resolution": 0.01}]
    out = comparisons.adjusted_verdicts(frame(rows), {"tp": "upper"}, 0.95)
    # by hand: sorted 0.01, 0.03, 0.04, 0.2 of 4 -> 0.04, min(0.06, 0.0533), 0.0533, 0.2
    assert out.p_adjusted[:4].tolist() == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    assert out.p_adjusted[:4].tolist() == pytest.approx(stats.false_discovery_control(p, method="bh").tolist())
    # the other metrics are their own family
    assert out.p_adjusted[4:].tolist() == pytest.approx(stats.false_discovery_control([0.03, 0.02]).tolist())
    # not flagged: a difference of -0.1 ± 0.01 is within the exceedance ratio's 0.2, not within
    # the quantile error's or the KS statistic's 0.05
    assert out.verdict.tolist() == ["better", "indistinguishable", "inconclusive", "inconclusive", "worse", "worse"]


def test_no_difference_is_indistinguishable_only_when_the_whole_interval_is_within_the_relevant_difference():
    rows = [{"metric": "quantile_rel_error_0.999", "p_value": 0.5, "difference": 0.01, "resolution": 0.03},
            {"metric": "quantile_rel_error_0.999", "p_value": 0.5, "difference": 0.01, "resolution": 0.3},
            {"metric": "exceedance_ratio_p999", "p_value": 0.5, "difference": 0.01, "resolution": 0.3},
            {"metric": "crps", "p_value": 0.5, "difference": 0.01, "resolution": 0.04, "baseline_error": 2.0},
            {"metric": "crps", "p_value": 0.5, "difference": 0.01, "resolution": 0.2, "baseline_error": 2.0},
            # a resolution within the relevant difference, but the interval off centre reaches past it
            {"metric": "exceedance_ratio_p999", "p_value": 0.07, "difference": 0.12, "resolution": 0.1},
            # a forecast score without the baseline's score: nothing to judge "no difference" against
            {"metric": "crps", "p_value": 0.5, "difference": 0.01, "resolution": 0.04, "baseline_error": np.nan}]
    out = comparisons.adjusted_verdicts(frame(rows), {"tp": "upper"}, 0.95)
    # 0.05 relative; 0.2 of the exceedance ratio; 5 % of the baseline's score (0.1)
    assert out.verdict.tolist() == ["indistinguishable", "inconclusive", "inconclusive", "indistinguishable",
                                    "inconclusive", "inconclusive", "inconclusive"]
    assert out.relevant.tolist()[:6] == pytest.approx([0.05, 0.05, 0.2, 0.1, 0.1, 0.2])
    wider = comparisons.adjusted_verdicts(frame(rows[1:3]), {"tp": "upper"}, 0.95,
                                          {"quantile_rel_error": 0.5, "exceedance_ratio": 0.5})
    assert wider.verdict.tolist() == ["indistinguishable", "indistinguishable"]


def test_an_undefined_error_has_no_p_value_and_is_inconclusive():
    out = comparisons.interval([0.1, np.nan, 0.2], [0.1, 0.2, 0.3], [0.0, 0.01, -0.01])
    assert np.isnan(out["p_value"]) and np.isnan(out["resolution"])
    rows = frame([{"metric": "tail_ks", "p_value": out["p_value"], "difference": out["difference"],
                   "resolution": out["resolution"]}])
    assert comparisons.adjusted_verdicts(rows, {"tp": "upper"}, 0.95).verdict.tolist() == ["inconclusive"]
    with pytest.raises(ValueError, match="'mystery' has no family"):
        comparisons.metric_family("mystery")


def test_interval_gives_the_t_statistics_p_value_and_resolution():
    a, b = np.array([0.10, 0.14, 0.12]), np.array([0.20, 0.16, 0.21])
    out = comparisons.interval(a, b, [0.0, 0.01, -0.01], 0.95)
    # p below 0.05 exactly when the interval leaves out 0, and the resolution is its half-width
    assert out["resolution"] == pytest.approx((out["ci_high"] - out["ci_low"]) / 2)
    assert (out["p_value"] < 0.05) == (out["ci_high"] < 0 or out["ci_low"] > 0)
    # at confidence 1 - p the interval's nearer end touches 0: p is the interval's own
    level = comparisons.interval(a, b, [0.0, 0.01, -0.01], 1 - out["p_value"])
    assert min(abs(level["ci_high"]), abs(level["ci_low"])) == pytest.approx(0, abs=1e-9)


def test_relevant_differences_are_the_schemas_defaults():
    config = load_config({})
    assert config["evaluation"]["relevant_difference"] == comparisons.RELEVANT_DIFFERENCE
    families = {comparisons.metric_family(m) for m in [*key_metric_names("both"), *comparisons.KEY_WET_METRICS,
                                                        *comparisons.KEY_SPATIAL_METRICS, "crps", "twcrps_p99"]}
    assert families == set(comparisons.RELEVANT_DIFFERENCE)


# --- the A/A check ---------------------------------------------------------------------------

def test_splits_are_disjoint_groups_each_pair_once():
    found = aa_check.splits(7, 3, 1000, np.random.default_rng(0))
    assert len(found) == math.comb(7, 3) * math.comb(4, 3) // 2 == 70
    assert all(not set(a) & set(b) for a, b in found)
    assert len({frozenset([a, b]) for a, b in found}) == 70
    assert len(aa_check.splits(8, 3, 50, np.random.default_rng(0))) == 50
    with pytest.raises(ValueError, match="needs 6 trainings"):
        aa_check.splits(5, 3, 10, np.random.default_rng(0))
    # too many to list (C(20, 6) C(14, 6) / 2 = 58 198 140): drawn directly, still disjoint and distinct
    many = aa_check.splits(20, 6, 100, np.random.default_rng(1))
    assert len(many) == 100 and len({frozenset([a, b]) for a, b in many}) == 100
    assert all(len(a) == len(b) == 6 and not set(a) & set(b) for a, b in many)


def gpd_fields(n, cells, scale, rng, persistence=0.0, xi=0.2):
    """(n, cells) GPD(xi, scale) values, AR(1) in time (a stand-in for storms' rain)."""
    latent = np.empty((n, cells))
    latent[0] = rng.normal(size=cells)
    for t in range(1, n):
        latent[t] = persistence * latent[t - 1] + math.sqrt(1 - persistence**2) * rng.normal(size=cells)
    return stats.genpareto.ppf(stats.norm.cdf(latent), xi, scale=scale)


def test_aa_check_on_one_process_gives_no_more_than_the_nominal_rate():
    """Seven 'trainings' of one process, each with its own tail scale (seed variance) and 128
    members, against AR(1) test data: every 3-vs-3 split compared on the tail metrics. The
    adjusted verdicts' false rate is within the nominal 5 %, and the interval over trainings
    holds the rate."""
    rng = np.random.default_rng(5)
    cells = 64
    runs = [gpd_fields(128, cells, math.exp(rng.normal(0, 0.05)), rng)[:, None, :] for _ in range(7)]
    data = gpd_fields(600, cells, 1.0, rng, persistence=0.8)[:, None, :]
    opts = {"quantiles": [0.99, 0.999], "tail_probability": 0.99, "bootstrap": 40, "block_length": 8,
            "confidence": 0.95}
    point, draws = aa_check.model_errors(runs, data, "upper", opts, lambda kind: np.random.default_rng(len(kind)))
    assert set(point) >= set(key_metric_names("upper")) and draws["tail_ks"].shape == (40, 7)
    table = aa_check.aa_table("m", "x", "upper", point, draws, 3, 1000, 0.95, None, rng)
    assert table.split.nunique() == 70
    rates = aa_check.false_verdict_rates(table, 7)
    overall = rates[rates.family == "all"].iloc[0]
    print(rates.to_string())
    assert overall.false_rate <= 0.05 and overall.false_rate_unadjusted <= 0.08
    assert overall.false_low <= overall.false_rate <= overall.false_high
    # what Benjamini-Hochberg bounds under no difference: the share of families with any false verdict
    assert overall.any_false_rate <= 0.05 and overall.any_false_low <= overall.any_false_rate <= overall.any_false_high


def test_the_jackknife_interval_is_wide_when_a_few_trainings_drive_the_verdicts():
    """Three trainings of seven far from the other four: only the splits that put those three
    together against three of the four flag a difference (4 of 70), so the rate rests on a few
    trainings, and the interval over trainings is wider than the rate itself."""
    n = 7
    point = {"quantile_rel_error_0.999": np.array([0, 0, 0, 1, 1, 1, 1]) + np.linspace(0, 0.01, n)}
    draws = {"quantile_rel_error_0.999": np.zeros((0, n))}
    table = aa_check.aa_table("m", "x", "upper", point, draws, 3, 1000, 0.95, None, np.random.default_rng(0))
    rates = aa_check.false_verdict_rates(table, n)
    row = rates[rates.family == "all"].iloc[0]
    assert row.false_rate == pytest.approx(4 / 70)
    assert row.false_low <= row.false_rate <= row.false_high and row.false_high - row.false_low > row.false_rate


def test_trainings_needed_matches_the_normal_approximation_for_large_n():
    sd, diff = 1.0, 0.25
    n = aa_check.trainings_needed(sd, diff)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert abs(n - 2 * (z * sd / diff) ** 2) <= 3  # ~251.2; the t quantiles add a little
    assert aa_check.trainings_needed(sd, diff, data_sd=0.2) is None  # the data term alone is wider
    assert aa_check.trainings_needed(0.01, 1.0) == 2


def test_aa_check_config_needs_one_training_more_than_two_groups():
    models = {"edm": {"family": "edm", "nu": "inf", "replicates": 6}}
    with pytest.raises(ConfigError, match=r"models.edm.replicates: .* needs 7 or more"):
        load_config({"models": models, "aa_check": {"models": ["edm"]}})
    with pytest.raises(ConfigError, match="aa_check.models: 'tedm' is not a model"):
        load_config({"models": models, "aa_check": {"models": ["tedm"], "size": 2}})
    assert load_config({"models": models, "aa_check": {"models": ["edm"], "size": 2}})["aa_check"]["splits"] == 300


# --- the model intervals ---------------------------------------------------------------------

def test_replicate_means_cover_a_known_truth_with_the_data_noise_in_them():
    """Three replicates scored on one test set: value_r = truth + D + e_r, D the test data's
    sampling error (shared), e_r the seed's. Each replicate's own bootstrap interval has the
    half-width of D's and the ensemble's noise. The interval with the data term covers the truth
    in about 95 % of 4000 repetitions; the t interval over replicates alone in far fewer."""
    rng = np.random.default_rng(3)
    truth, data_sd, seed_sd, member_sd, z = 1.0, 0.1, 0.03, 0.01, stats.norm.ppf(0.975)
    covered, covered_seed_only = 0, 0
    for _ in range(4000):
        values = truth + rng.normal(0, data_sd) + rng.normal(0, seed_sd, 3)
        half_own = z * math.hypot(data_sd, member_sd)
        mean, half = tables.mean_interval(values, np.stack([values - half_own, values + half_own], axis=1))
        covered += abs(mean - truth) <= half
        t_half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
        covered_seed_only += abs(values.mean() - truth) <= t_half
    assert 0.93 <= covered / 4000 <= 0.985
    assert covered_seed_only / 4000 < 0.6


def test_replicate_means_rows_carry_the_wider_interval():
    rows = pd.DataFrame({"model": ["m", "m", "m"], "replicate": ["0", "1", "2"], "variable": "x",
                         "metric": "quantile_rel_error_0.999", "lead": pd.NA, "value": [-0.35, -0.36, -0.34],
                         "ci_low": [-0.5, -0.55, -0.5], "ci_high": [-0.2, -0.15, -0.2]})
    mean = tables.replicate_means(rows).iloc[0]
    assert mean.value == pytest.approx(-0.35)
    assert mean.ci_high - mean.ci_low > 0.25  # the data's spread, not the replicates' 0.01


def test_verdict_agreement_counts_agreements_and_sign_changes(tmp_path, capsys):
    """benchmarks/verdict_agreement.py on two hand-made tables."""
    import runpy
    script = runpy.run_path(str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"
                                / "verdict_agreement.py"))
    base = {"model": "tedm", "baseline": "edm", "variable": "tp", "lead": None, "ci_low": -1.0, "ci_high": 1.0}
    first = pd.DataFrame([{**base, "metric": m, "verdict": v} for m, v in
                          [("tail_ks", "better"), ("exceedance_ratio_p999", "worse"),
                           ("quantile_rel_error_0.999", "inconclusive"), ("psd_log_error", "better")]])
    second = first.assign(verdict=["better", "better", "indistinguishable", "worse"])
    first.to_csv(tmp_path / "a.csv", index=False)
    second.to_csv(tmp_path / "b.csv", index=False)
    script["main"]([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    out = capsys.readouterr().out
    assert "main pairs, key metrics: 1 of 3 verdicts agree (0.33); sign changes 1; better/worse 2 and 2" in out
    assert "every row: 1 of 4 verdicts agree (0.25); sign changes 2" in out


def test_downscaling_errors_are_each_trainings_mean_score_on_shared_resamples_of_the_times():
    rng = np.random.default_rng(3)
    per_time = [rng.gamma(2.0, 1.0, 50) for _ in range(4)]
    components = [{"tp": {"crps": s, "twcrps_p99": s / 2, "twcrps_p999": s / 4}} for s in per_time]
    opts = {"bootstrap": 200}
    point, draws = aa_check.downscaling_errors(components, "tp", "upper", opts, np.random.default_rng(0))
    assert set(point) == {"crps", "twcrps_p99", "twcrps_p999"}
    np.testing.assert_allclose(point["crps"], [s.mean() for s in per_time])
    assert draws["crps"].shape == (200, 4)
    np.testing.assert_allclose(draws["twcrps_p99"], draws["crps"] / 2)  # one resample of the times for all
    np.testing.assert_allclose(draws["crps"].mean(axis=0), point["crps"], rtol=0.05)


def test_the_aa_check_of_downscaled_stores_compares_every_split_on_the_paired_scores(store, tmp_path):
    """Five 'trainings' of one downscaler (the truth plus independent noise), written as the
    pipeline writes downscaled stores: every split of 2 against 2 on CRPS and twCRPS."""
    from htweather.data.store import load_split, load_stats
    from htweather.generation import downscale

    cfg, root = store
    cfg = {**cfg, "downscaling": {"factor": 2, "times": 8, "members": 3, "conserve": False},
           "aa_check": {"models": ["ds"], "size": 2, "splits": 300}}
    stats = load_stats(root / "stats.json")
    times, picks, coarsening, _ = downscale.coarse_inputs(cfg, 2, root / "store.zarr", stats)
    truth = load_split(root / "store.zarr", "test")[picks]  # (time, C, H, W), normalised
    rng = np.random.default_rng(5)
    paths = {}
    for r in range(5):
        generated = truth[:, None] + 0.3 * rng.standard_normal((len(picks), 3, *truth.shape[1:]))
        paths[f"ds.r{r}"] = str(downscale.write_downscaled(generated, cfg, stats, root / "store.zarr", times, picks,
                                                           coarsening, {"model": "ds"}, tmp_path / f"ds.r{r}.zarr"))
    check, rates, power = aa_check.aa_check_tables(cfg, {"ds": list(paths)}, paths, root / "store.zarr",
                                                   root / "stats.json")
    assert check.split.nunique() == 15  # C(5, 2) * C(3, 2) / 2
    assert {"crps", "twcrps_p99", "twcrps_p999"} <= set(check.metric) and set(check.family) == {"forecast_score"}
    assert set(check.verdict) <= {"better", "worse", "indistinguishable", "inconclusive"}
    overall = rates[rates.family == "all"]
    assert set(overall.variable) == set(stats["channels"]) and (overall.trainings == 5).all()
    assert ((overall.false_low <= overall.false_rate) & (overall.false_rate <= overall.false_high)).all()
    assert (overall.false_rate <= 0.1).all()  # one method against itself (none when written)
    crps = power[(power.metric == "crps")]
    assert len(crps) == len(stats["channels"]) and (crps.relevant_difference > 0).all()
