"""The climatological CRPS of an ensemble against properscoring and the normal's closed form."""

import math

import numpy as np
import properscoring
import pytest

from htweather.evaluation import scores

N = 400_000


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_crps_climatology_matches_properscoring_loop(rng):
    ensemble = rng.gamma(2.0, size=(40, 3, 4))
    obs = rng.gamma(2.0, size=(7, 3, 4))
    expected = np.mean([properscoring.crps_ensemble(obs[t, i, j], ensemble[:, i, j])
                        for t in range(7) for i in range(3) for j in range(4)])
    assert scores.crps_climatology(ensemble, obs) == pytest.approx(expected, rel=1e-12)
    # ties: observations equal to members, and repeated members (dry precipitation)
    dry = np.where(ensemble < 1.0, 0.0, ensemble)
    obs_dry = np.where(obs < 1.5, 0.0, np.round(obs, 1))
    expected = np.mean([properscoring.crps_ensemble(obs_dry[t, i, j], dry[:, i, j])
                        for t in range(7) for i in range(3) for j in range(4)])
    assert scores.crps_climatology(dry, obs_dry) == pytest.approx(expected, rel=1e-12)


def test_crps_climatology_leaves_out_missing_observations(rng):
    ensemble = rng.gamma(2.0, size=(40, 3, 4))
    obs = rng.gamma(2.0, size=(7, 3, 4))
    obs[2, 1, 1] = obs[5, 0, 3] = np.nan
    expected = np.mean([properscoring.crps_ensemble(obs[t, i, j], ensemble[:, i, j])
                        for t in range(7) for i in range(3) for j in range(4) if not np.isnan(obs[t, i, j])])
    assert scores.crps_climatology(ensemble, obs) == pytest.approx(expected, rel=1e-12)


def test_crps_of_normal_ensemble_matches_analytic(rng):
    # E_y[CRPS(N(0,1), y)] for y ~ N(0,1) is 1 / sqrt(pi)
    ensemble = rng.normal(size=(2000, 2, 2))
    obs = rng.normal(size=(5000, 2, 2))
    analytic = properscoring.crps_gaussian(obs, 0.0, 1.0).mean()
    assert scores.crps_climatology(ensemble, obs) == pytest.approx(analytic, rel=0.01)
    assert analytic == pytest.approx(1 / math.sqrt(math.pi), rel=0.02)


def test_crps_takes_numba_fast_path():
    assert scores.crps_fast_path(), "numba missing: properscoring falls back to its O(m^2) path"
