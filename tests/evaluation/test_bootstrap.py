"""Bootstrap intervals: coverage on a known distribution, and resampling by counts equal to
explicit resamples."""

import numpy as np
import pytest
from scipy import stats

from htweather.evaluation import bootstrap, tails

N = 400_000


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_block_bootstrap_interval_covers_truth(rng):
    """The block bootstrap interval of an upper quantile covers the true value at about the
    nominal rate on autocorrelated series (AR(1), phi = 0.8)."""
    true_q = stats.norm.ppf(0.99)
    covered, trials = 0, 40
    for _ in range(trials):
        e = rng.normal(size=(2000, 4))
        x = np.empty_like(e)
        x[0] = e[0]
        for t in range(1, len(e)):
            x[t] = 0.8 * x[t - 1] + 0.6 * e[t]
        units = bootstrap.SortedUnits(x)
        ci = bootstrap.bootstrap_intervals(
            2, len(x), lambda g, d: {"q": units.quantiles(units.cumulative(d), [0.99])[0]}, 100, 20, 0.9, rng)["q"]
        covered += ci[0] <= true_q <= ci[1]
    assert covered / trials >= 0.75


def test_sorted_units_agree_with_plain_metrics(rng):
    """The bootstrap's sort-once path gives exactly the plain metric functions' values."""
    gen = rng.standard_t(5, size=(60, 7, 9))
    data = rng.standard_t(4, size=(150, 7, 9))
    fast = tails.quantile_metrics(bootstrap.SortedUnits(gen), bootstrap.SortedUnits(data),
                                     [0.99, 0.999], tails="both")
    g, d = gen.ravel(), data.ravel()
    probs = [0.99, 0.999, 0.01, 0.001]
    for p, err in zip(probs, tails.quantile_rel_error(g, d, probs)):
        assert fast[tails.quantile_metric_name(p)] == err
    for side, names in (("upper", ("exceedance_ratio_p99", "exceedance_ratio_p999")),
                        ("lower", ("exceedance_ratio_p01", "exceedance_ratio_p001"))):
        for name, p in zip(names, (0.99, 0.999)):
            assert fast[name] == pytest.approx(tails.exceedance_ratio(g, d, p, side), rel=1e-12)


def test_sorted_units_resample_counts_equal_explicit_resample(rng):
    fields = rng.gamma(0.5, size=(40, 5, 5))
    units = bootstrap.SortedUnits(fields)
    counts = np.bincount(rng.integers(0, 40, size=40), minlength=40)
    explicit = np.repeat(fields, counts, axis=0).ravel()
    cum = units.cumulative(counts)
    probs = [0.5, 0.9, 0.99]
    np.testing.assert_array_equal(units.quantiles(cum, probs), np.quantile(explicit, probs, method="inverted_cdf"))
    q = np.quantile(explicit, 0.95)
    assert units.fraction_above(cum, q) == pytest.approx(np.mean(explicit > q))
    assert units.fraction_below(cum, q) == pytest.approx(np.mean(explicit < q))


def test_sorted_units_leave_out_missing_values(rng):
    """Values missing at some times (NaN) are left out: the quantiles and exceedances are those of
    the valid values, and a resample by counts still weighs each unit's valid values."""
    fields = rng.gamma(0.5, size=(40, 5, 5))
    fields[3, 1, 1] = fields[10:14, 2, 4] = np.nan
    units = bootstrap.SortedUnits(fields)
    valid = fields[~np.isnan(fields)]
    assert units.values.size == valid.size and units.units == 40
    probs = [0.5, 0.9, 0.99]
    np.testing.assert_array_equal(units.quantiles(units.cumulative(), probs),
                                  np.quantile(valid, probs, method="inverted_cdf"))
    counts = np.bincount(rng.integers(0, 40, size=40), minlength=40)
    explicit = np.repeat(fields, counts, axis=0).ravel()
    explicit = explicit[~np.isnan(explicit)]
    cum = units.cumulative(counts)
    np.testing.assert_array_equal(units.quantiles(cum, probs), np.quantile(explicit, probs, method="inverted_cdf"))
    q = np.quantile(explicit, 0.95)
    assert units.fraction_above(cum, q) == pytest.approx(np.mean(explicit > q))
