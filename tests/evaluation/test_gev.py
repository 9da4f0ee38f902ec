"""Block maxima and GEV return levels against closed forms and scipy on known distributions."""

import math

import numpy as np
import pytest
from scipy import stats

from htweather.evaluation import gev

C, LOC, SCALE = -0.2, 10.0, 2.0  # a Frechet-type GEV: xi = -c = 0.2
PERIODS = np.array([10.0, 50.0, 100.0])


def _true_levels(periods=PERIODS):
    return stats.genextreme.ppf(1 - 1 / np.asarray(periods), C, loc=LOC, scale=SCALE)


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
    out = gev.block_maxima(values, 3)
    np.testing.assert_array_equal(out, [[5.0, nan], [3.0, 7.0]])
    np.testing.assert_array_equal(gev.block_maxima(np.arange(10.0), 5), [4.0, 9.0])
    assert gev.block_maxima(np.zeros((4, 2, 3)), 5).shape == (0, 2, 3)
    with pytest.raises(ValueError, match="block"):
        gev.block_maxima(values, 0)


def test_return_levels_equal_genextreme_ppf_and_closed_form():
    params = (C, LOC, SCALE)
    got = gev.return_levels(params, PERIODS)
    np.testing.assert_allclose(got, stats.genextreme.ppf(1 - 1 / PERIODS, C, loc=LOC, scale=SCALE), rtol=1e-12)
    # z_T = loc + scale * (1 - y^c) / c with y = -log(1 - 1/T); Gumbel: loc - scale * log(y)
    y = -np.log1p(-1 / PERIODS)
    np.testing.assert_allclose(got, LOC + SCALE * (1 - y**C) / C, rtol=1e-12)
    np.testing.assert_allclose(gev.return_levels((0.0, LOC, SCALE), PERIODS), LOC - SCALE * np.log(y),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="> 1"):
        gev.return_levels(params, [1.0])


def test_fit_gev_recovers_known_gev():
    rng = np.random.default_rng(0)
    maxima = stats.genextreme.rvs(C, loc=LOC, scale=SCALE, size=1000, random_state=rng)
    c, loc, scale = gev.fit_gev(maxima)
    assert c == pytest.approx(C, abs=0.06)
    np.testing.assert_allclose(gev.return_levels((c, loc, scale), PERIODS), _true_levels(), rtol=0.06)
    # the optimum scipy's own fit finds (which stops within ~1e-3 of it), at least as likely,
    # and equivariant under a change of units (mm -> m)
    scipy_params = stats.genextreme.fit(maxima)
    assert (c, loc, scale) == pytest.approx(scipy_params, rel=5e-3, abs=5e-3)
    assert stats.genextreme.nnlf((c, loc, scale), maxima) <= stats.genextreme.nnlf(scipy_params, maxima) + 1e-6
    c_m, loc_m, scale_m = gev.fit_gev(maxima * 1e-3)
    assert (c_m, loc_m * 1e3, scale_m * 1e3) == pytest.approx((c, loc, scale), rel=1e-3, abs=1e-3)


def test_fit_gev_on_block_maxima_of_exponential_is_gumbel():
    # max of m iid Exp(1): (1 - e^-x)^m ~ exp(-m e^-x), a Gumbel with loc log(m), scale 1, c = 0
    rng = np.random.default_rng(1)
    m = 50
    maxima = gev.block_maxima(rng.exponential(size=(500 * m + 7, 2)), m)
    assert maxima.shape == (500, 2)
    c, loc, scale = gev.fit_gev(maxima)
    assert abs(c) < 0.06
    assert loc == pytest.approx(math.log(m), abs=0.1)
    assert scale == pytest.approx(1.0, abs=0.08)


def test_fit_gev_too_few_maxima():
    with pytest.raises(ValueError, match="at least 10 finite"):
        gev.fit_gev(np.r_[np.arange(9.0), np.nan, np.inf])
    with pytest.raises(ValueError, match="all equal"):
        gev.fit_gev(np.ones(20))


def test_return_levels_with_ci_zero_replicates_gives_nan():
    maxima = stats.genextreme.rvs(C, loc=LOC, scale=SCALE, size=100, random_state=np.random.default_rng(2))
    out = gev.return_levels_with_ci(maxima, PERIODS, replicates=0)
    assert np.isnan(out["ci_low"]).all() and np.isnan(out["ci_high"]).all()
    assert out["ci_low"].shape == out["level"].shape == (3,)
    # the fit censors the lowest 70 % of the maxima (gev.CENSOR); every period here lies above
    u = gev.censoring_threshold(maxima)
    assert u == pytest.approx(np.quantile(maxima, gev.CENSOR)) and out["threshold"] == u
    assert out["censored"] == pytest.approx(gev.CENSOR, abs=0.01)
    np.testing.assert_allclose(out["level"], gev.return_levels(gev.fit_gev(maxima, u), PERIODS))
    assert out["params"] == gev.fit_gev(maxima, u)
    plain = gev.return_levels_with_ci(maxima, PERIODS, replicates=0, censor=0.0)
    assert plain["threshold"] is None and plain["params"] == gev.fit_gev(maxima)


def test_bootstrap_interval_coverage():
    # 40 independent samples of 200 maxima, 50 replicates each: the 95 % percentile intervals
    # should cover the true 50-block level about 95 % of the time (a little less with so few
    # replicates); 0.8 is about 2 binomial standard deviations below 0.9
    truth = _true_levels([50.0])[0]
    covered = []
    for seed in range(40):
        rng = np.random.default_rng([7, seed])
        maxima = stats.genextreme.rvs(C, loc=LOC, scale=SCALE, size=200, random_state=rng)
        out = gev.return_levels_with_ci(maxima, [50.0], replicates=50, confidence=0.95, rng=rng)
        assert out["ci_low"][0] < out["level"][0] < out["ci_high"][0]
        covered.append(out["ci_low"][0] <= truth <= out["ci_high"][0])
    assert np.mean(covered) >= 0.8


def test_return_levels_with_an_atom_at_the_lower_bound():
    """Block maxima of rain: a fraction p0 of dry blocks (maximum 0), the rest GEV. The levels
    solve p0 + (1 - p0) G(z) = 1 - 1/T; periods with 1 - 1/T <= p0 give the bound itself."""
    rng = np.random.default_rng(11)
    p0, c, loc, scale = 0.3, -0.1, 5.0, 1.5
    n = 4000
    wet = stats.genextreme.rvs(c, loc=loc, scale=scale, size=n, random_state=rng)
    maxima = np.where(rng.uniform(size=n) < p0, 0.0, wet)
    periods = np.array([1.2, 10.0, 50.0])
    fit = gev.return_levels_with_ci(maxima, periods, replicates=30, rng=rng, lower_bound=0.0)
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
    by_rows = gev.return_levels_with_ci(copies, [50], replicates=60, rng=1, rows=True)
    by_values = gev.return_levels_with_ci(copies, [50], replicates=60, rng=1)
    single = gev.return_levels_with_ci(one, [50], replicates=60, rng=1)
    width = {k: float(v["ci_high"][0] - v["ci_low"][0]) for k, v in
             {"rows": by_rows, "values": by_values, "single": single}.items()}
    assert width["rows"] > 2 * width["values"]
    assert width["rows"] == pytest.approx(width["single"], rel=0.5)


def test_a_test_split_shorter_than_one_block_has_no_return_levels(tiny_config, caplog):
    """A short record's test split (fewer steps than evaluation.block_steps) gives no return
    levels and says why, rather than failing inside the fit."""
    from htweather.evaluation import extremes

    stats = {"grid": {"mask": None}, "variables": {"tp": {"lower_bound": 0.0}}}
    short = {"tp": [np.random.default_rng(0).gamma(1.0, size=(5, 3, 3))]}
    cfg = {**tiny_config, "evaluation": {**tiny_config["evaluation"], "block_steps": 6}}
    with caplog.at_level("WARNING"):
        rows = extremes.return_level_rows(cfg, "data", short, stats, np.random.default_rng(1))
    assert rows == []
    assert "no return levels: 5 time steps, fewer than one block of evaluation.block_steps = 6" in caplog.text
    enough = {"tp": [np.random.default_rng(0).gamma(1.0, size=(60, 3, 3))]}
    assert any(r["metric"] == "return_level_2" for r in extremes.return_level_rows(
        cfg, "data", enough, stats, np.random.default_rng(1)))
