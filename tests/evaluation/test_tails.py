"""Tail metrics against closed forms and scipy on known distributions."""

import math

import numpy as np
import pytest
from scipy import stats

from htweather.evaluation import tails as metrics

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
    assert set(both) == {"tail_ks", "tail_ks_lower"}  # each tail its own number, none pooled
    assert both["tail_ks"] > 0.2 and both["tail_ks_lower"] > 0.2
    assert metrics.tail_ks(light, data, p=0.99, tails="lower") == {"tail_ks_lower": both["tail_ks_lower"]}
    assert metrics.tail_ks(-light, -data, p=0.99)["tail_ks"] == pytest.approx(both["tail_ks_lower"])
    # a generated set with nothing beyond the threshold has no tail: the maximal distance 1
    assert metrics.tail_ks(np.zeros(100), data, p=0.99)["tail_ks"] == 1.0


def test_exceedance_ratio_closed_form(rng):
    # data Exp(1): q_p = -ln(1-p); gen Exp(1.5): P(X > q_p) = (1-p)^(2/3) -> ratio (1-p)^(-1/3)
    data, gen = rng.exponential(1.0, size=2 * N), rng.exponential(1.5, size=2 * N)
    for p in (0.99, 0.999):
        assert metrics.exceedance_ratio(gen, data, p) == pytest.approx((1 - p) ** (-1 / 3), rel=0.05)
    assert metrics.exceedance_ratio(data, data, 0.99) == pytest.approx(1.0, abs=1e-3)
    # the lower tail: the mirror image, the mass below the data's (1 - p)-quantile
    for p in (0.99, 0.999):
        assert metrics.exceedance_ratio(-gen, -data, p, "lower") == pytest.approx(metrics.exceedance_ratio(gen, data, p))


def test_quantile_rel_error_known_quantiles(rng):
    data = rng.exponential(1.0, size=2 * N)
    gen = 2 * data  # every quantile doubles
    np.testing.assert_allclose(metrics.quantile_rel_error(gen, data, [0.99, 0.999]), [1.0, 1.0], rtol=1e-12)
    assert metrics.quantile_rel_error(data * 0.9, data, 0.9999) == pytest.approx(-0.1)
