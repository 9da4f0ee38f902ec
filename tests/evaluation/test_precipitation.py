"""Precipitation statistics of zero-inflated variables: the dry and wet fractions at the trace
amount, wet-value quantiles and the mean wet intensity, against numpy on known samples (with and
without resample counts), and a stand-in ensemble that drizzles found worse than one that
does not."""

import json

import numpy as np
import pytest

from htweather.data.store import calibrate_dry, make_dry_below
from htweather.evaluation import comparisons
from htweather.evaluation.bootstrap import SortedUnits
from htweather.evaluation.tails import wet_metrics_at

TRACE = 0.1
WET_QUANTILES = [0.5, 0.9, 0.99]


def rain(n: int, cells: int, rng, dry: float = 0.8, drizzle: float = 0.0) -> np.ndarray:
    """(n, cells) amounts: 0 with probability `dry`, else TRACE + a gamma; with `drizzle`, that
    share of the dry values becomes uniform in (0, TRACE), as a model's smeared atom does."""
    wet = TRACE + rng.gamma(0.6, 2.0, size=(n, cells))
    x = np.where(rng.random((n, cells)) < dry, 0.0, wet)
    smeared = (x == 0) & (rng.random((n, cells)) < drizzle)
    return np.where(smeared, rng.uniform(1e-4, TRACE, size=(n, cells)), x)


def plain_metrics(gen: np.ndarray, data: np.ndarray) -> dict:
    """The same statistics with numpy on flattened samples."""
    out = {"dry_fraction_error": np.mean(gen <= 0) - np.mean(data <= 0)}
    gw, dw = gen[gen >= TRACE], data[data >= TRACE]
    for p in WET_QUANTILES:
        g, d = (np.quantile(w, p, method="inverted_cdf") for w in (gw, dw))
        out[f"wet_quantile_rel_error_{p:g}"] = (g - d) / d
    out["wet_mean_rel_error"] = (gw.mean() - dw.mean()) / dw.mean()
    return out


def test_wet_metrics_equal_numpy_on_the_samples_and_on_resamples():
    rng = np.random.default_rng(0)
    gen, data = rain(40, 50, rng, dry=0.6, drizzle=0.5), rain(60, 50, rng)
    g, d = SortedUnits(gen), SortedUnits(data)
    found = wet_metrics_at(g, d, g.cumulative(), d.cumulative(), 0.0, TRACE, WET_QUANTILES)
    expected = plain_metrics(gen.ravel(), data.ravel())
    assert found.keys() == expected.keys()
    for k in expected:
        assert found[k] == pytest.approx(expected[k], rel=1e-12, abs=1e-12), k
    # a resample given by counts equals the repeated sample
    cg, cd = rng.integers(0, 3, 40), rng.integers(0, 3, 60)
    found = wet_metrics_at(g, d, g.cumulative(cg), d.cumulative(cd), 0.0, TRACE, WET_QUANTILES)
    expected = plain_metrics(np.repeat(gen, cg, axis=0).ravel(), np.repeat(data, cd, axis=0).ravel())
    for k in expected:
        assert found[k] == pytest.approx(expected[k], rel=1e-12, abs=1e-12), k


def test_the_data_against_itself_has_no_error_and_an_all_dry_ensemble_has_no_wet_values():
    rng = np.random.default_rng(1)
    data = rain(50, 40, rng)
    d = SortedUnits(data)
    same = wet_metrics_at(d, d, d.cumulative(), d.cumulative(), 0.0, TRACE, WET_QUANTILES)
    assert all(v == 0 for v in same.values())
    dry = SortedUnits(np.zeros((10, 40)))
    found = wet_metrics_at(dry, d, dry.cumulative(), d.cumulative(), 0.0, TRACE, WET_QUANTILES)
    assert found["dry_fraction_error"] == pytest.approx(1 - np.mean(data <= 0))
    assert found["wet_quantile_rel_error_0.99"] == -1 and found["wet_mean_rel_error"] == -1  # the worst, not NaN


def test_a_model_that_drizzles_is_worse_on_the_dry_fraction():
    """Two stand-in models with the data's wet values; one turns 40 % of its dry cells into
    drizzle below the trace amount. Its dry fraction is off by about 0.32 and the comparison,
    over 3 replicates each, says worse; the wet values are alike, so the wet statistics are not
    told apart."""
    rng = np.random.default_rng(2)
    data = rain(400, 64, rng)
    good = [rain(128, 64, rng) for _ in range(3)]
    drizzling = [rain(128, 64, rng, drizzle=0.4) for _ in range(3)]
    opts = {"quantiles": [0.99, 0.999], "tail_probability": 0.99, "bootstrap": 40, "block_length": 8,
            "confidence": 0.95, "wet_quantiles": WET_QUANTILES}
    result = comparisons.compare_tails(drizzling, good, data, "upper", opts, rng, wet=(0.0, TRACE))
    assert result["dry_fraction_error"]["verdict"] == "worse"
    assert result["dry_fraction_error"]["difference"] == pytest.approx(0.32, abs=0.03)
    assert result["wet_quantile_rel_error_0.99"]["verdict"] == "indistinguishable"
    # and the generation step's dry treatment removes exactly that drizzle
    variable = {"lower_bound": 0.0, "dry_below": TRACE}
    cleaned = [make_dry_below(x, variable) for x in drizzling]
    result = comparisons.compare_tails(cleaned, good, data, "upper", opts, rng, wet=(0.0, TRACE))
    assert result["dry_fraction_error"]["verdict"] == "indistinguishable"


def test_make_dry_below_only_where_asked():
    x = np.array([0.0, 0.05, 0.0999, 0.1, 3.0])
    on = {"lower_bound": 0.0, "dry_below": 0.1}
    np.testing.assert_array_equal(make_dry_below(x, on), [0, 0, 0, 0.1, 3.0])
    np.testing.assert_array_equal(make_dry_below(x, {**on, "dry_below": None}), x)
    np.testing.assert_array_equal(make_dry_below(x, {"lower_bound": 0.0}), x)  # a store written before


def calibrated_variable(target: float) -> dict:
    return {"lower_bound": 0.0, "dry_below": 1e-4, "dry_below_rule": "calibrated", "validation_dry_fraction": target}


def test_calibrated_dry_threshold_restores_the_validation_dry_fraction():
    """Radar-like rain: continuous amounts down to ~0, so the smallest wet value dries nothing.
    A model that spreads 30 of the data's 60 % dry mass over small amounts gets its dry fraction
    back from the calibration, and its amounts above the threshold are left as they were."""
    rng = np.random.default_rng(3)
    drizzle = rng.uniform(1e-4, 0.2, size=(40, 16, 16))
    rain = rng.lognormal(0.0, 1.0, size=(40, 16, 16))
    kind = rng.uniform(size=(40, 16, 16))
    generated = np.where(kind < 0.3, 0.0, np.where(kind < 0.6, drizzle, rain))
    generated[:, 0, 0] = np.nan  # a masked cell
    fields = {"tp": generated.copy()}
    raised = calibrate_dry(fields, {"variables": {"tp": calibrated_variable(0.6)}})
    out = fields["tp"]
    real = np.isfinite(generated)
    assert np.isnan(out[~real]).all()
    n = real.sum()
    assert (out[real] == 0).mean() == pytest.approx(0.6, abs=1.5 / n)
    threshold = raised["tp"]
    kept = real & (generated >= threshold)
    np.testing.assert_array_equal(out[kept], generated[kept])
    assert (out[real & (generated < threshold)] == 0).all()
    assert 0.0 < threshold < 0.5  # it took the drizzle, not the rain


def test_calibrated_dry_threshold_never_goes_down_and_only_where_asked():
    x = np.array([[0.0, 0.0, 0.0, 0.3, 1.0, 2.0]])
    for variable in (calibrated_variable(0.4),  # already drier than the validation data: kept
                     {**calibrated_variable(0.9), "dry_below_rule": "fixed"},  # a number or smallest_wet
                     {**calibrated_variable(0.9), "validation_dry_fraction": None},  # a store written before
                     {**calibrated_variable(0.9), "lower_bound": None}):
        fields = {"tp": x.copy()}
        assert calibrate_dry(fields, {"variables": {"tp": variable}}) == {}
        np.testing.assert_array_equal(fields["tp"], x)
    fields = {"tp": x.copy()}
    assert calibrate_dry(fields, {"variables": {"tp": calibrated_variable(4 / 6)}}) == {"tp": 1.0}
    np.testing.assert_array_equal(fields["tp"], [[0, 0, 0, 0, 1.0, 2.0]])


def test_an_all_dry_validation_split_dries_everything_with_a_finite_threshold(caplog):
    x = np.array([[0.0, 0.3, 1.0, 2.0]])
    fields = {"tp": x.copy()}
    raised = calibrate_dry(fields, {"variables": {"tp": calibrated_variable(1.0)}})
    assert np.isfinite(raised["tp"]) and (fields["tp"] == 0).all()
    # a stats.json written before the rule existed: the fixed threshold, and a warning that says so
    calibrate_dry({"tp": x.copy()}, {"variables": {"tp": {"lower_bound": 0.0, "dry_below": 0.1}}})
    assert "predates the calibrated dry threshold" in caplog.text


def test_a_dry_fraction_calibrated_on_every_training_of_both_models_is_not_compared(store, tmp_path):
    """comparison_table leaves out the dry fraction of a pair whose every ensemble had its dry
    threshold raised (equal by construction), and keeps it where one training was not raised."""
    from htweather.data.store import load_stats, test_fields
    from htweather.generation.ensembles import ensemble_dataset, write_ensemble

    config, root = store
    stats = load_stats(root / "stats.json")
    data = test_fields(root / "store.zarr")
    rng = np.random.default_rng(3)
    paths = {}
    for run in ("a0", "a1", "b0", "b1"):
        fields = {v: data[v][rng.integers(0, len(data[v]), 24)] for v in stats["channels"]}
        raised = {} if run == "b1" else {"tp": 0.05}
        ds = ensemble_dataset(fields, stats, {"dry_below_calibrated": json.dumps(raised)})
        write_ensemble(ds, tmp_path / f"{run}.zarr")
        paths[run] = str(tmp_path / f"{run}.zarr")
    config = {**config, "evaluation": {**config["evaluation"], "bootstrap": 20}}

    def tp_metrics(runs):
        table = comparisons.comparison_table(config, [["a", "b"]], runs, paths, root / "store.zarr",
                                             root / "stats.json")
        return set(table[table.variable == "tp"].metric)

    assert "dry_fraction_error" in tp_metrics({"a": ["a0", "a1"], "b": ["b0", "b1"]})
    every = tp_metrics({"a": ["a0", "a1"], "b": ["b0", "a1"]})
    assert "dry_fraction_error" not in every and "wet_mean_rel_error" in every


def test_the_dry_fraction_counts_as_calibrated_only_where_every_ensemble_was_raised():
    raised, dry_enough, old = {"dry_below_calibrated": '{"tp": 0.05}'}, {"dry_below_calibrated": "{}"}, {}
    assert comparisons.dry_calibrated_everywhere([raised, raised], "tp")
    assert not comparisons.dry_calibrated_everywhere([raised, dry_enough], "tp")
    assert not comparisons.dry_calibrated_everywhere([raised, old], "tp")
    assert not comparisons.dry_calibrated_everywhere([raised], "pr") and not comparisons.dry_calibrated_everywhere([], "tp")
