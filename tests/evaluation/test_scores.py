"""Ensemble verification scores against properscoring and closed forms on known distributions."""

import math

import numpy as np
import properscoring
import pytest
from scipy import stats

from htweather.evaluation import scores

SQRT_PI = math.sqrt(math.pi)


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


def _mixed_ensemble(rng, shape, members):
    """Observations and members rounded to 0.1 (many ties), with a few members set equal to
    the observation and one point where every member equals it (CRPS exactly 0)."""
    observations = np.round(rng.normal(size=shape), 1)
    ensemble = np.round(rng.normal(0.3, 1.5, size=shape + (members,)), 1)
    hit = rng.random(ensemble.shape) < 0.05
    ensemble[hit] = np.broadcast_to(observations[..., None], ensemble.shape)[hit]
    ensemble[(0,) * len(shape)] = observations[(0,) * len(shape)]
    return observations, ensemble


@pytest.mark.parametrize("members", [1, 2, 9, 40])
def test_crps_matches_properscoring(rng, members, monkeypatch):
    # small chunks, so that chunk boundaries (and a last partial chunk) are exercised
    monkeypatch.setattr(scores, "_CHUNK_ELEMENTS", 7 * members)
    observations, ensemble = _mixed_ensemble(rng, (3, 17, 11), members)
    expected = properscoring.crps_ensemble(observations, ensemble)
    ours = scores.crps_ensemble(observations, ensemble)
    assert ours.shape == observations.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=0)
    ordered = np.sort(ensemble, axis=-1)
    np.testing.assert_allclose(scores.crps_ensemble(observations, ordered, issorted=True), expected,
                               rtol=1e-9, atol=0)
    # float32 members and a large common offset (temperatures in K) give the same scores
    offset = 280.0
    shifted = scores.crps_ensemble(observations + offset, (ensemble + offset).astype(np.float32))
    np.testing.assert_allclose(shifted, properscoring.crps_ensemble(
        observations + offset, (ensemble + offset).astype(np.float32).astype(np.float64)), rtol=1e-9, atol=0)


def test_crps_scalar_point_and_bad_shapes():
    # one point: members 0 and 2, observation 0 -> mean |x - y| = 1, pair term 2 / 4 -> 0.5
    assert scores.crps_ensemble(0.0, [0.0, 2.0]) == pytest.approx(0.5)
    # fair: pair term divided by 2 M (M - 1) = 4 instead of 2 M^2 = 8 -> 1 - 1 = 0
    assert scores.crps_ensemble(0.0, [0.0, 2.0], fair=True) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least 2"):
        scores.crps_ensemble(np.zeros(3), np.zeros((3, 1)), fair=True)
    with pytest.raises(ValueError, match="trailing member axis"):
        scores.crps_ensemble(np.zeros(3), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="no members"):
        scores.crps_ensemble(np.zeros(3), np.zeros((3, 0)))
    # a NaN observation gives a NaN score, the others are untouched
    out = scores.crps_ensemble(np.array([np.nan, 0.0]), np.array([[0.0, 2.0], [0.0, 2.0]]))
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.5)


def test_crps_large_normal_ensemble_approaches_gaussian(rng):
    # CRPS(N(mu, s^2), y) = s (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)), z = (y - mu) / s.
    points, members = 40, 20_000
    mu = rng.normal(0, 3, size=points)
    sigma = rng.uniform(0.5, 2.0, size=points)
    z = rng.uniform(-3, 3, size=points)
    observations = mu + sigma * z
    closed_form = sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / SQRT_PI)
    np.testing.assert_allclose(closed_form, properscoring.crps_gaussian(observations, mu, sigma), rtol=1e-12)
    # random members: the estimate fluctuates with standard deviation below 1.1 s / sqrt(M) for
    # |z| <= 3 (measured), and is biased by s / (M sqrt(pi)) (fair: unbiased); bound at 5 SD
    ensemble = mu[:, None] + sigma[:, None] * rng.standard_normal((points, members))
    for fair in (False, True):
        error = scores.crps_ensemble(observations, ensemble, fair=fair) - closed_form
        assert np.max(np.abs(error) / sigma) < 5 * 1.1 / math.sqrt(members)
    # members at the normal quantiles (i - 1/2) / M: no sampling noise, the error is ~1e-8 s
    quantiles = stats.norm.ppf((np.arange(1, members + 1) - 0.5) / members)
    ensemble = mu[:, None] + sigma[:, None] * quantiles
    np.testing.assert_allclose(scores.crps_ensemble(observations, ensemble, issorted=True), closed_form,
                               rtol=0, atol=1e-6)


def test_fair_crps_is_unbiased_and_ordinary_crps_biased_by_known_amount(rng):
    # Members and observation iid N(0, 1): E CRPS(N(0,1), Y) = E|X - Y| - E|X - X'| / 2 = 1/sqrt(pi).
    # The ensemble CRPS averages |x_i - x_j| over M^2 pairs, M of them zero, so its pair term is
    # (M - 1)/M of the true one: bias E|X - X'| / (2M) = 1 / (M sqrt(pi)). The fair CRPS has none.
    cases, members = 200_000, 4
    observations = rng.standard_normal(cases)
    ensemble = rng.standard_normal((cases, members))
    target = 1 / SQRT_PI
    bias = 1 / (members * SQRT_PI)  # 0.141, against a standard error of about 0.001
    fair = scores.crps_ensemble(observations, ensemble, fair=True)
    ordinary = scores.crps_ensemble(observations, ensemble)
    for values, expected in ((fair, target), (ordinary, target + bias)):
        standard_error = values.std() / math.sqrt(cases)
        assert abs(values.mean() - expected) < 4 * standard_error
    # the difference of the two is deterministic per case: pair sum * (1/(M(M-1)) - 1/M^2)
    assert (ordinary - fair).mean() == pytest.approx(bias, rel=0.02)


def _chi_square_p(counts):
    return stats.chisquare(counts).pvalue  # against equal expected counts


def test_rank_histogram_flat_for_calibrated_and_u_shaped_for_underdispersed(rng):
    cases, members = 20_000, 9
    observations = rng.normal(size=(50, 20, 20))
    calibrated = rng.normal(size=observations.shape + (members,))
    counts = scores.rank_histogram(observations, calibrated, rng)
    assert counts.dtype == np.int64 and counts.shape == (members + 1,)
    assert counts.sum() == cases
    assert _chi_square_p(counts) > 0.01
    # members with half the observations' spread: observations fall outside the ensemble often
    narrow = 0.5 * calibrated
    counts = scores.rank_histogram(observations, narrow, rng)
    assert _chi_square_p(counts) < 1e-10
    assert min(counts[0], counts[-1]) > 2 * counts[1:-1].max()  # U shape


def test_rank_histogram_breaks_ties_at_random(rng):
    # zero-inflated (precipitation-like) variable: P(X = 0) = Phi(0.5) ~ 0.69, so the observation
    # ties with most members. Random tie-breaking gives a flat histogram, counting only the
    # members strictly below would pile the cases up in the low ranks.
    cases, members = 20_000, 9

    def draw(size):
        return np.maximum(rng.standard_normal(size) - 0.5, 0.0)

    observations, ensemble = draw(cases), draw((cases, members))
    observations[:100] = np.nan  # skipped
    counts = scores.rank_histogram(observations, ensemble, rng)
    assert counts.sum() == cases - 100
    assert _chi_square_p(counts) > 0.01
    keep = ~np.isnan(observations)
    below_only = np.bincount((ensemble[keep] < observations[keep, None]).sum(-1), minlength=members + 1)
    assert _chi_square_p(below_only) < 1e-10


def test_spread_skill_ratio_one_for_calibrated_small_ensemble(rng):
    # y and x_i iid N(mu, s^2) per cell, s varying with latitude: E[(xbar - y)^2] = s^2 (1 + 1/M),
    # E[var_ddof1] = s^2, so spread / rmse = sqrt(M / (M + 1)) (0.913 for M = 5) and the
    # corrected ratio is 1.
    times, lat, lon, members = 400, 10, 20, 5
    latitude = np.linspace(-60, 60, lat)
    sigma = (1 + np.abs(latitude) / 30)[:, None]
    mu = rng.normal(0, 5, size=(times, lat, lon))
    observations = mu + sigma * rng.standard_normal(mu.shape)
    ensemble = mu[..., None] + sigma[..., None] * rng.standard_normal(mu.shape + (members,))
    for weights in (None, scores.latitude_weights(latitude)):
        result = scores.spread_skill(observations, ensemble, weights)
        assert result["ratio"] == pytest.approx(1.0, abs=0.02)
        assert result["spread"] / result["rmse"] == pytest.approx(math.sqrt(members / (members + 1)), abs=0.02)
    expected_spread = math.sqrt(np.mean(sigma**2))
    assert scores.spread_skill(observations, ensemble)["spread"] == pytest.approx(expected_spread, rel=0.01)
    # an over-confident ensemble (half the spread) has a ratio well below 1
    narrow = mu[..., None] + 0.5 * (ensemble - mu[..., None])
    assert scores.spread_skill(observations, narrow)["ratio"] < 0.6


def test_brier_score_closed_forms(rng):
    # (a) forecast probability exactly p per case, outcome ~ Bernoulli(p): E[(p - o)^2] = p (1 - p).
    #     Members are 0/1 with exactly k = p M ones, so the fraction above 0.5 is p.
    cases, members = 100_000, 10
    k = rng.integers(0, members + 1, size=cases)
    p = k / members
    exact = (np.arange(members) < k[:, None]).astype(float)
    outcome = (rng.random(cases) < p).astype(float)
    bs = scores.brier_score(outcome, exact, 0.5)
    assert bs == pytest.approx(np.mean((p - outcome) ** 2), rel=1e-12)
    tolerance = 4 * ((p - outcome) ** 2).std() / math.sqrt(cases)
    assert bs == pytest.approx(np.mean(p * (1 - p)), abs=tolerance)
    # (b) M members iid with exceedance probability q, outcome ~ Bernoulli(q) independent:
    #     p = K/M, K ~ Bin(M, q): E[(p - o)^2] = Var(p) + q(1 - q) = q (1 - q) (1 + 1/M).
    for members in (4, 20):
        mu = rng.normal(0, 1, size=cases)
        q = stats.norm.cdf(mu)  # P(N(mu, 1) > 0)
        observations = mu + rng.standard_normal(cases)
        ensemble = mu[:, None] + rng.standard_normal((cases, members))
        probability = np.mean(ensemble > 0, axis=-1)
        squared = (probability - (observations > 0)) ** 2
        expected = np.mean(q * (1 - q)) * (1 + 1 / members)
        tolerance = 4 * squared.std() / math.sqrt(cases)
        bs = scores.brier_score(observations, ensemble, 0.0)
        assert bs == pytest.approx(expected, abs=tolerance)
        # the 1/M term is resolved: without it the expectation is off by > 8 standard errors
        assert abs(bs - np.mean(q * (1 - q))) > 2 * tolerance
    # NaN observations are left out
    observations[:10] = np.nan
    assert scores.brier_score(observations, ensemble, 0.0) == pytest.approx(np.mean(squared[10:]), rel=1e-12)


def test_crps_against_sorted_equals_crps_ensemble():
    rng = np.random.default_rng(9)
    members = np.sort(np.round(rng.normal(size=17), 1))
    obs = np.concatenate([np.round(rng.normal(size=300) * 1.5, 1), members[:3], [-10.0, 10.0]])
    for fair in (False, True):
        expected = scores.crps_ensemble(obs, np.broadcast_to(members, (obs.size, members.size)), fair=fair)
        np.testing.assert_allclose(scores.crps_against_sorted(obs, members, fair=fair), expected, rtol=1e-12,
                                   atol=1e-15)


def test_latitude_weights():
    latitude = np.array([90.0, 60.0, 30.0, 0.0, -30.0, -60.0, -90.0])
    weights = scores.latitude_weights(latitude)
    assert weights.mean() == pytest.approx(1.0, abs=1e-15)
    assert weights[0] == 0.0 and weights[-1] == 0.0
    assert weights[3] > weights[2] > weights[1] > 0
    # cos 60 deg = 1/2: half the equator's weight
    assert weights[1] / weights[3] == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(weights, weights[::-1], rtol=1e-15)
    with pytest.raises(ValueError):
        scores.latitude_weights([91.0, 0.0])


def test_weighted_mean_hand_computed_and_nan_cells():
    # one time, grid 2 x 2, latitude weights [3, 1]; one cell NaN (masked)
    values = np.array([[[1.0, np.nan], [4.0, 8.0]]])
    # (3 * 1 + 1 * 4 + 1 * 8) / (3 + 1 + 1) = 15 / 5
    assert scores.weighted_mean(values, np.array([3.0, 1.0])) == pytest.approx(3.0)
    # full (lat, lon) weights: (2 * 1 + 1 * 4 + 3 * 8) / 6 = 5; the NaN cell's weight 100 is dropped
    assert scores.weighted_mean(values, np.array([[2.0, 100.0], [1.0, 3.0]])) == pytest.approx(5.0)
    assert scores.weighted_mean(values) == pytest.approx(13.0 / 3.0)
    # a NaN cell at one time only drops that time's weight
    stacked = np.concatenate([values, np.array([[[2.0, 2.0], [2.0, 2.0]]])])
    assert scores.weighted_mean(stacked, np.array([3.0, 1.0])) == pytest.approx((15.0 + 2.0 * 8) / (5 + 8))
    assert math.isnan(scores.weighted_mean(np.full((2, 2), np.nan), np.ones(2)))
    with pytest.raises(ValueError):
        scores.weighted_mean(values, np.ones(3))


# --- threshold-weighted CRPS ------------------------------------------------------------------

def test_twcrps_matches_scoringrules_and_the_integral_above_the_threshold():
    import scoringrules

    rng = np.random.default_rng(3)
    obs, ens = rng.gamma(0.5, 2.0, 50), rng.gamma(0.5, 2.0, (50, 24))
    for threshold in (0.5, 2.0, 6.0):
        ours = scores.twcrps_ensemble(obs, ens, threshold)
        np.testing.assert_allclose(ours, scoringrules.twcrps_ensemble(obs, ens, a=threshold), atol=1e-12)
        np.testing.assert_allclose(scores.twcrps_ensemble(obs, ens, threshold, fair=True),
                                   scoringrules.twcrps_ensemble(obs, ens, a=threshold, estimator="fair"), atol=1e-12)
        # the definition: integral over z > t of (F_ens(z) - 1{y <= z})^2
        z = np.linspace(threshold, 40.0, 400_001)
        for i in range(3):
            f = (ens[i][:, None] <= z).mean(axis=0)
            integrand = (f - (obs[i] <= z)) ** 2
            assert ours[i] == pytest.approx(np.trapezoid(integrand, z), abs=2e-4)


def test_twcrps_is_zero_below_the_threshold_and_the_crps_without_one():
    rng = np.random.default_rng(4)
    obs, ens = rng.normal(size=20), rng.normal(size=(20, 16))
    assert np.all(scores.twcrps_ensemble(obs, ens, 10.0) == 0)
    np.testing.assert_allclose(scores.twcrps_ensemble(obs, ens, -np.inf), scores.crps_ensemble(obs, ens))
    obs[3] = np.nan
    assert np.isnan(scores.twcrps_ensemble(obs, ens, 0.0)[3])
