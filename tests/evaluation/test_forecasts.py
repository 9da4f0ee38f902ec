"""Forecast verification on ensembles with known calibration: CRPS, spread/skill, rank flatness,
masked cells."""

import numpy as np
import properscoring
import pytest

from htweather.evaluation import forecasts as verification
from htweather.evaluation import scores


def calibrated_forecasts(rng, starts=200, members=8, shape=(6, 5)):
    """Observation and members drawn from the same predictive distribution N(mu, s^2) per point."""
    mu = rng.normal(size=(starts, *shape))
    s = rng.uniform(0.5, 2.0, size=(starts, *shape))
    obs = mu + s * rng.normal(size=mu.shape)
    ens = mu[..., None] + s[..., None] * rng.normal(size=(*mu.shape, members))
    return obs, ens


def test_forecast_scores_of_a_calibrated_ensemble():
    rng = np.random.default_rng(3)
    obs, ens = calibrated_forecasts(rng)
    weights = scores.latitude_weights(np.linspace(40, 60, obs.shape[1]))
    thresholds = {"brier_p99": 2.5}
    components = verification.lead_statistics(obs, ens, weights, thresholds)
    point = verification.summarise(components)
    # the same numbers as properscoring and the direct formulas, weighted over the grid
    expected_crps = scores.weighted_mean(properscoring.crps_ensemble(obs, ens), weights)
    assert point["crps"] == pytest.approx(expected_crps, rel=1e-10)
    assert point["brier_p99"] == pytest.approx(scores.brier_score(obs, ens, 2.5, weights), rel=1e-10)
    assert point["spread_skill"] == pytest.approx(scores.spread_skill(obs, ens, weights)["ratio"], rel=1e-10)
    # calibrated: spread/skill near 1, fair CRPS below the ordinary CRPS by the finite-ensemble term
    assert point["spread_skill"] == pytest.approx(1.0, abs=0.05)
    assert point["fair_crps"] < point["crps"]
    # a bootstrap over start times brackets the point value
    boot = [verification.summarise(components, np.bincount(rng.integers(0, 200, 200), minlength=200))["crps"]
            for _ in range(200)]
    low, high = np.quantile(boot, [0.025, 0.975])
    assert low < point["crps"] < high


def test_rank_flatness_small_for_calibrated_large_for_overconfident():
    rng = np.random.default_rng(4)
    obs, ens = calibrated_forecasts(rng, starts=400)
    flat = verification.rank_flatness(scores.rank_histogram(obs, ens, rng))
    narrow = ens.mean(axis=-1, keepdims=True) + 0.3 * (ens - ens.mean(axis=-1, keepdims=True))
    peaked = verification.rank_flatness(scores.rank_histogram(obs, narrow, rng))
    assert flat < 0.03 and peaked > 0.3
    assert verification.rank_flatness(np.array([10, 0, 0, 0])) == pytest.approx(0.75)


def test_per_start_means_skip_masked_cells():
    values = np.ones((2, 3, 4))
    values[:, 0, 0] = np.nan  # a masked cell
    values[1, 2, :] = 3.0
    weights = np.array([1.0, 1.0, 2.0])
    out = verification.per_start(values, weights)
    assert out[0] == 1.0
    assert out[1] == pytest.approx((3 * 1 + 4 * 1 + 4 * 2 * 3) / (3 + 4 + 8))
