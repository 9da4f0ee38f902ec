"""Metrics against closed forms and against scipy / properscoring on known distributions."""

import math

import numpy as np
import properscoring
import pytest
from scipy import stats

from htweather import evaluate, metrics

N = 400_000


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_kurtosis_ratio_laplace_vs_normal(rng):
    # Pearson kurtosis: Laplace 6, normal 3 -> |6 - 3| / 3 = 1
    gen, data = rng.laplace(size=N), rng.normal(size=N)
    assert metrics.kurtosis_ratio(gen, data) == pytest.approx(1.0, abs=0.05)
    assert metrics.kurtosis_ratio(data, data) == 0.0


def test_skewness_ratio_gamma_vs_exponential(rng):
    # skewness of Gamma(k) is 2 / sqrt(k): Gamma(4) -> 1, exponential -> 2; |1 - 2| / 2 = 0.5
    gen, data = rng.gamma(4.0, size=N), rng.exponential(size=N)
    assert metrics.skewness_ratio(gen, data) == pytest.approx(0.5, abs=0.03)


def test_ks_matches_scipy_and_closed_form(rng):
    shift = 0.5
    gen, data = rng.normal(shift, size=N), rng.normal(size=N)
    assert metrics.ks(gen, data) == stats.ks_2samp(gen, data).statistic
    # sup |Phi(x) - Phi(x - d)| = 2 Phi(d / 2) - 1
    assert metrics.ks(gen, data) == pytest.approx(2 * stats.norm.cdf(shift / 2) - 1, abs=0.005)


def test_tail_ks_exponential_scales(rng):
    # Beyond any threshold an exponential is again exponential (memoryless): the tails of scale 1
    # and 1.5 differ by sup_y exp(-y/1.5) - exp(-y), attained at y = 3 ln 1.5.
    data, gen = rng.exponential(1.0, size=N), rng.exponential(1.5, size=N)
    y = 3 * math.log(1.5)
    expected = math.exp(-y / 1.5) - math.exp(-y)
    assert metrics.tail_ks(gen, data, p=0.99)["tail_ks"] == pytest.approx(expected, abs=0.03)
    same = rng.exponential(1.0, size=N)
    assert metrics.tail_ks(same, data, p=0.99)["tail_ks"] < 0.05


def test_tail_ks_two_sided_and_empty_tail(rng):
    data = rng.standard_t(4, size=N)
    light = rng.normal(size=N) * data.std()  # same variance, lighter tails on both sides
    both = metrics.tail_ks(light, data, p=0.99, tails="both")
    assert both["tail_ks"] == max(both["tail_ks_upper"], both["tail_ks_lower"])
    assert both["tail_ks_upper"] > 0.2 and both["tail_ks_lower"] > 0.2
    # a generated set with nothing beyond the threshold has no tail: the maximal distance 1
    assert metrics.tail_ks(np.zeros(100), data, p=0.99)["tail_ks"] == 1.0


def test_exceedance_ratio_closed_form(rng):
    # data Exp(1): q_p = -ln(1-p); gen Exp(1.5): P(X > q_p) = (1-p)^(2/3) -> ratio (1-p)^(-1/3)
    data, gen = rng.exponential(1.0, size=2 * N), rng.exponential(1.5, size=2 * N)
    for p in (0.99, 0.999):
        assert metrics.exceedance_ratio(gen, data, p) == pytest.approx((1 - p) ** (-1 / 3), rel=0.05)
    assert metrics.exceedance_ratio(data, data, 0.99) == pytest.approx(1.0, abs=1e-3)
    # two-sided: symmetric data, generated with the same law -> 1
    sym = rng.normal(size=N)
    assert metrics.exceedance_ratio(rng.normal(size=N), sym, 0.99, tails="both") == pytest.approx(1.0, abs=0.05)


def test_quantile_rel_error_known_quantiles(rng):
    data = rng.exponential(1.0, size=2 * N)
    gen = 2 * data  # every quantile doubles
    np.testing.assert_allclose(metrics.quantile_rel_error(gen, data, [0.99, 0.999]), [1.0, 1.0], rtol=1e-12)
    assert metrics.quantile_rel_error(data * 0.9, data, 0.9999) == pytest.approx(-0.1)


def test_crps_climatology_matches_properscoring_loop(rng):
    ensemble = rng.gamma(2.0, size=(40, 3, 4))
    obs = rng.gamma(2.0, size=(7, 3, 4))
    expected = np.mean([properscoring.crps_ensemble(obs[t, i, j], ensemble[:, i, j])
                        for t in range(7) for i in range(3) for j in range(4)])
    assert metrics.crps_climatology(ensemble, obs) == pytest.approx(expected, rel=1e-12)
    # ties: observations equal to members, and repeated members (dry precipitation)
    dry = np.where(ensemble < 1.0, 0.0, ensemble)
    obs_dry = np.where(obs < 1.5, 0.0, np.round(obs, 1))
    expected = np.mean([properscoring.crps_ensemble(obs_dry[t, i, j], dry[:, i, j])
                        for t in range(7) for i in range(3) for j in range(4)])
    assert metrics.crps_climatology(dry, obs_dry) == pytest.approx(expected, rel=1e-12)


def test_crps_of_normal_ensemble_matches_analytic(rng):
    # E_y[CRPS(N(0,1), y)] for y ~ N(0,1) is 1 / sqrt(pi)
    ensemble = rng.normal(size=(2000, 2, 2))
    obs = rng.normal(size=(5000, 2, 2))
    analytic = properscoring.crps_gaussian(obs, 0.0, 1.0).mean()
    assert metrics.crps_climatology(ensemble, obs) == pytest.approx(analytic, rel=0.01)
    assert analytic == pytest.approx(1 / math.sqrt(math.pi), rel=0.02)


def test_crps_takes_numba_fast_path():
    assert metrics.crps_fast_path(), "numba missing: properscoring falls back to its O(m^2) path"


def test_ranking_orientation():
    assert metrics.distance_from_perfect("exceedance_ratio_p99", 2.0) == pytest.approx(math.log(2))
    assert metrics.distance_from_perfect("exceedance_ratio_p99", 0.5) == pytest.approx(math.log(2))
    assert metrics.distance_from_perfect("exceedance_ratio_p999", 0.0) == math.inf
    assert metrics.distance_from_perfect("quantile_rel_error_0.999", -0.3) == pytest.approx(0.3)
    assert metrics.distance_from_perfect("crps", 0.2) == 0.2


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
        units = evaluate.SortedUnits(x)
        ci = evaluate.bootstrap_intervals(
            2, len(x), lambda g, d: {"q": units.quantiles(units.cumulative(d), [0.99])[0]}, 100, 20, 0.9, rng)["q"]
        covered += ci[0] <= true_q <= ci[1]
    assert covered / trials >= 0.75


def test_sorted_units_agree_with_plain_metrics(rng):
    """The bootstrap's sort-once path gives exactly the plain metric functions' values."""
    gen = rng.standard_t(5, size=(60, 7, 9))
    data = rng.standard_t(4, size=(150, 7, 9))
    fast = evaluate.quantile_metrics(evaluate.SortedUnits(gen), evaluate.SortedUnits(data),
                                     [0.99, 0.999], tails="both")
    g, d = gen.ravel(), data.ravel()
    probs = [0.99, 0.999, 0.01, 0.001]
    for p, err in zip(probs, metrics.quantile_rel_error(g, d, probs)):
        assert fast[evaluate.quantile_metric_name(p)] == err
    assert fast["exceedance_ratio_p99"] == metrics.exceedance_ratio(g, d, 0.99, tails="both")
    assert fast["exceedance_ratio_p999"] == pytest.approx(metrics.exceedance_ratio(g, d, 0.999, tails="both"), rel=1e-12)


def test_sorted_units_resample_counts_equal_explicit_resample(rng):
    fields = rng.gamma(0.5, size=(40, 5, 5))
    units = evaluate.SortedUnits(fields)
    counts = np.bincount(rng.integers(0, 40, size=40), minlength=40)
    explicit = np.repeat(fields, counts, axis=0).ravel()
    cum = units.cumulative(counts)
    probs = [0.5, 0.9, 0.99]
    np.testing.assert_array_equal(units.quantiles(cum, probs), np.quantile(explicit, probs, method="inverted_cdf"))
    q = np.quantile(explicit, 0.95)
    assert units.fraction_above(cum, q) == pytest.approx(np.mean(explicit > q))
    assert units.fraction_below(cum, q) == pytest.approx(np.mean(explicit < q))
