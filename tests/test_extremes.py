"""Extreme-value statistics against closed forms and scipy on known distributions."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from htweather import extremes

C, LOC, SCALE = -0.2, 10.0, 2.0  # a Frechet-type GEV: xi = -c = 0.2
PERIODS = np.array([10.0, 50.0, 100.0])


def _true_levels(periods=PERIODS):
    return stats.genextreme.ppf(1 - 1 / np.asarray(periods), C, loc=LOC, scale=SCALE)


def _expected_hill_alpha(dist, p):
    """1 / E[log(X/u) | X > u] at u = dist.isf(p): what Hill converges to at tail fraction p."""
    u = dist.isf(p)
    mean_log, _ = integrate.quad(lambda x: dist.sf(x) / x, u, np.inf)
    return p / mean_log


# --- block maxima -------------------------------------------------------------------------

def test_block_maxima_hand_built():
    nan = np.nan
    values = np.array([
        [1.0, nan],
        [5.0, nan],
        [2.0, nan],  # block 0: column 1 all NaN -> NaN
        [nan, 4.0],
        [3.0, -1.0],
        [0.0, 7.0],  # block 1: NaN ignored
        [99.0, 99.0],  # incomplete last block: dropped
    ])
    out = extremes.block_maxima(values, 3)
    np.testing.assert_array_equal(out, [[5.0, nan], [3.0, 7.0]])
    np.testing.assert_array_equal(extremes.block_maxima(np.arange(10.0), 5), [4.0, 9.0])
    assert extremes.block_maxima(np.zeros((4, 2, 3)), 5).shape == (0, 2, 3)
    with pytest.raises(ValueError, match="block"):
        extremes.block_maxima(values, 0)


# --- GEV ----------------------------------------------------------------------------------

def test_return_levels_equal_genextreme_ppf_and_closed_form():
    params = (C, LOC, SCALE)
    got = extremes.return_levels(params, PERIODS)
    np.testing.assert_allclose(got, stats.genextreme.ppf(1 - 1 / PERIODS, C, loc=LOC, scale=SCALE), rtol=1e-12)
    # z_T = loc + scale * (1 - y^c) / c with y = -log(1 - 1/T); Gumbel: loc - scale * log(y)
    y = -np.log1p(-1 / PERIODS)
    np.testing.assert_allclose(got, LOC + SCALE * (1 - y**C) / C, rtol=1e-12)
    np.testing.assert_allclose(extremes.return_levels((0.0, LOC, SCALE), PERIODS), LOC - SCALE * np.log(y),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="> 1"):
        extremes.return_levels(params, [1.0])


def test_fit_gev_recovers_known_gev():
    rng = np.random.default_rng(0)
    maxima = stats.genextreme.rvs(C, loc=LOC, scale=SCALE, size=1000, random_state=rng)
    c, loc, scale = extremes.fit_gev(maxima)
    assert c == pytest.approx(C, abs=0.06)
    np.testing.assert_allclose(extremes.return_levels((c, loc, scale), PERIODS), _true_levels(), rtol=0.06)
    # the optimum scipy's own fit finds (which stops within ~1e-3 of it), at least as likely,
    # and equivariant under a change of units (mm -> m)
    scipy_params = stats.genextreme.fit(maxima)
    assert (c, loc, scale) == pytest.approx(scipy_params, rel=5e-3, abs=5e-3)
    assert stats.genextreme.nnlf((c, loc, scale), maxima) <= stats.genextreme.nnlf(scipy_params, maxima) + 1e-6
    c_m, loc_m, scale_m = extremes.fit_gev(maxima * 1e-3)
    assert (c_m, loc_m * 1e3, scale_m * 1e3) == pytest.approx((c, loc, scale), rel=1e-3, abs=1e-3)


def test_fit_gev_on_block_maxima_of_exponential_is_gumbel():
    # max of m iid Exp(1): (1 - e^-x)^m ~ exp(-m e^-x), a Gumbel with loc log(m), scale 1, c = 0
    rng = np.random.default_rng(1)
    m = 50
    maxima = extremes.block_maxima(rng.exponential(size=(500 * m + 7, 2)), m)
    assert maxima.shape == (500, 2)
    c, loc, scale = extremes.fit_gev(maxima)
    assert abs(c) < 0.06
    assert loc == pytest.approx(math.log(m), abs=0.1)
    assert scale == pytest.approx(1.0, abs=0.08)


def test_fit_gev_too_few_maxima():
    with pytest.raises(ValueError, match="at least 10 finite"):
        extremes.fit_gev(np.r_[np.arange(9.0), np.nan, np.inf])
    with pytest.raises(ValueError, match="all equal"):
        extremes.fit_gev(np.ones(20))


def test_return_levels_with_ci_zero_replicates_gives_nan():
    maxima = stats.genextreme.rvs(C, loc=LOC, scale=SCALE, size=100, random_state=np.random.default_rng(2))
    out = extremes.return_levels_with_ci(maxima, PERIODS, replicates=0)
    assert np.isnan(out["ci_low"]).all() and np.isnan(out["ci_high"]).all()
    assert out["ci_low"].shape == out["level"].shape == (3,)
    np.testing.assert_allclose(out["level"], extremes.return_levels(extremes.fit_gev(maxima), PERIODS))
    assert out["params"] == extremes.fit_gev(maxima)


def test_bootstrap_interval_coverage():
    # 40 independent samples of 200 maxima, 50 replicates each: the 95 % percentile intervals
    # should cover the true 50-block level about 95 % of the time (a little less with so few
    # replicates); 0.8 is about 2 binomial standard deviations below 0.9
    truth = _true_levels([50.0])[0]
    covered = []
    for seed in range(40):
        rng = np.random.default_rng([7, seed])
        maxima = stats.genextreme.rvs(C, loc=LOC, scale=SCALE, size=200, random_state=rng)
        out = extremes.return_levels_with_ci(maxima, [50.0], replicates=50, confidence=0.95, rng=rng)
        assert out["ci_low"][0] < out["level"][0] < out["ci_high"][0]
        covered.append(out["ci_low"][0] <= truth <= out["ci_high"][0])
    assert np.mean(covered) >= 0.8


# --- Hill ---------------------------------------------------------------------------------

def test_hill_estimator_hand_computed():
    # top 3 of the positive values: e^3, e^2, e^1 over X_(4) = 1 -> mean log ratio 2 -> alpha 1/2
    values = np.array([math.e, 1.0, math.e**3, -5.0, 0.5, np.nan, math.e**2, 0.0])
    assert extremes.hill_estimator(values, 3) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match="at least 6 positive"):
        extremes.hill_estimator(values, 5)


def test_hill_estimator_exact_pareto():
    # exact Pareto: log(X_(i) / X_(k+1)) are iid Exp(mean 1/alpha), so Hill is unbiased for
    # 1/alpha with a relative standard error 1/sqrt(k) = 1 %
    rng = np.random.default_rng(3)
    x = rng.uniform(size=200_000) ** (-1 / 3.0)
    assert extremes.hill_estimator(x, 10_000) == pytest.approx(3.0, rel=0.03)


def test_hill_estimator_student_t5():
    rng = np.random.default_rng(4)
    n, k = 1_000_000, 1_000
    alpha = extremes.hill_estimator(np.abs(rng.standard_t(5, size=n)), k)
    # second-order bias: about 4.7 at this k / n; within 25 % of the tail index 5
    assert alpha == pytest.approx(5.0, rel=0.25)
    assert alpha == pytest.approx(_expected_hill_alpha(stats.t(5), k / (2 * n)), rel=0.1)


def test_gaussian_hill_reference_matches_simulation():
    rng = np.random.default_rng(5)
    n, k = 4_000_000, 4_000
    x = rng.standard_normal(n)
    y = x - np.median(x)
    for tails, values in (("both", np.abs(y)), ("upper", y)):
        reference = extremes.gaussian_hill_reference(n, k, tails)
        assert extremes.hill_estimator(values, k) == pytest.approx(reference, rel=0.05)
    assert extremes.gaussian_hill_reference(n, k, "upper") == pytest.approx(
        _expected_hill_alpha(stats.norm(), k / n), rel=1e-6)


def test_gaussian_hill_reference_grows_like_u_squared():
    u = stats.norm.isf(10 / 1e30)
    assert extremes.gaussian_hill_reference(1e30, 10, "upper") / u**2 == pytest.approx(1.0, abs=0.03)
    alphas = [extremes.gaussian_hill_reference(n, 10, "both") for n in (1e3, 1e5, 1e7)]
    assert alphas == sorted(alphas)
    with pytest.raises(ValueError):
        extremes.gaussian_hill_reference(100, 50, "upper")
    with pytest.raises(ValueError, match="tails"):
        extremes.gaussian_hill_reference(100, 5, "lower")


# --- choose_nu ----------------------------------------------------------------------------

def test_choose_nu_student_t5_is_heavy():
    rng = np.random.default_rng(6)
    out = extremes.choose_nu(3.0 + 2.0 * rng.standard_t(5, size=500_000), tails="both")
    assert out["n"] == 500_000 and out["k"] == 500
    assert out["heavy"]
    assert out["nu"] == out["alpha"] == pytest.approx(5.0, rel=0.25)
    assert out["alpha_gaussian"] == pytest.approx(extremes.gaussian_hill_reference(500_000, 500, "both"))


def test_choose_nu_gaussian_is_not_heavy():
    rng = np.random.default_rng(7)
    x = 280.0 + 5.0 * rng.standard_normal(500_000)  # a temperature-like field, with missing values
    x[::1000] = np.nan
    for tails in ("both", "upper"):
        out = extremes.choose_nu(x, tails=tails)
        assert out["n"] == 499_500
        assert not out["heavy"] and out["nu"] == math.inf
        assert out["alpha"] == pytest.approx(out["alpha_gaussian"], rel=0.15)


def test_choose_nu_zero_inflated_generalised_pareto():
    # precipitation-like: 60 % exact zeros, then a generalised Pareto with xi = 0.2 (alpha = 5)
    rng = np.random.default_rng(8)
    n = 500_000
    x = stats.genpareto.rvs(0.2, scale=2e-3, size=n, random_state=rng)
    x[rng.uniform(size=n) < 0.6] = 0.0
    out = extremes.choose_nu(x, tails="upper")
    assert out["heavy"]
    # Hill's second-order bias for a GPD at this threshold (tail fraction k / #positive) puts the
    # expected estimate near 3.7, not 5
    expected = _expected_hill_alpha(stats.genpareto(0.2), out["k"] / np.count_nonzero(x > 0))
    assert out["nu"] == pytest.approx(expected, rel=0.1)
    assert out["nu"] == pytest.approx(5.0, rel=0.3)


def test_choose_nu_clips_to_nu_min():
    # Cauchy: alpha = 1, below the smallest nu with finite variance
    out = extremes.choose_nu(np.random.default_rng(9).standard_cauchy(100_000), tails="both")
    assert out["heavy"] and out["alpha"] == pytest.approx(1.0, rel=0.15)
    assert out["nu"] == 2.5


def test_choose_nu_errors():
    with pytest.raises(ValueError, match="at least 11 finite values beyond the median"):
        extremes.choose_nu(np.arange(15.0), tails="upper")
    with pytest.raises(ValueError, match="beyond the median"):
        extremes.choose_nu(np.zeros(10_000), tails="both")
    with pytest.raises(ValueError, match="beyond the median"):
        extremes.choose_nu(np.full(50, np.nan), tails="both")
    with pytest.raises(ValueError, match="tails"):
        extremes.choose_nu(np.arange(1000.0), tails="lower")


def test_return_levels_with_an_atom_at_the_lower_bound():
    """Block maxima of rain: a fraction p0 of dry blocks (maximum 0), the rest GEV. The levels
    solve p0 + (1 - p0) G(z) = 1 - 1/T; periods with 1 - 1/T <= p0 give the bound itself."""
    rng = np.random.default_rng(11)
    p0, c, loc, scale = 0.3, -0.1, 5.0, 1.5
    n = 4000
    wet = stats.genextreme.rvs(c, loc=loc, scale=scale, size=n, random_state=rng)
    maxima = np.where(rng.uniform(size=n) < p0, 0.0, wet)
    periods = np.array([1.2, 10.0, 50.0])
    fit = extremes.return_levels_with_ci(maxima, periods, replicates=30, rng=rng, lower_bound=0.0)
    true = stats.genextreme.ppf((1 - 1 / periods[1:] - p0) / (1 - p0), c, loc=loc, scale=scale)
    assert fit["atom"] == pytest.approx(p0, abs=0.02)
    assert fit["level"][0] == 0.0
    np.testing.assert_allclose(fit["level"][1:], true, rtol=0.06)  # 2800 wet maxima: a few % of noise
    assert np.all(fit["ci_low"][1:] <= fit["level"][1:]) and np.all(fit["level"][1:] <= fit["ci_high"][1:])


def test_return_levels_bootstrap_by_rows_keeps_blocks_together():
    """rows=True resamples whole blocks: with cells that are copies of each other (complete
    spatial dependence) the interval is as wide as for one cell, not sqrt(cells) narrower."""
    rng = np.random.default_rng(12)
    one = stats.genextreme.rvs(-0.1, loc=0, scale=1, size=(200, 1), random_state=rng)
    copies = np.repeat(one, 20, axis=1)
    by_rows = extremes.return_levels_with_ci(copies, [50], replicates=60, rng=1, rows=True)
    by_values = extremes.return_levels_with_ci(copies, [50], replicates=60, rng=1)
    single = extremes.return_levels_with_ci(one, [50], replicates=60, rng=1)
    width = {k: float(v["ci_high"][0] - v["ci_low"][0]) for k, v in
             {"rows": by_rows, "values": by_values, "single": single}.items()}
    assert width["rows"] > 2 * width["values"]
    assert width["rows"] == pytest.approx(width["single"], rel=0.5)
