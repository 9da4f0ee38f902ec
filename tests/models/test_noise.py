"""Student-t noise: moments, marginals, one kappa per sample, the Gaussian limit."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from htweather.models.diffusion import StudentTNoise


@pytest.mark.parametrize("nu", [3.0, 5.0, 10.0])
def test_pixel_marginal_is_student_t(nu):
    torch.manual_seed(0)
    n = StudentTNoise(nu, channels=1).sample((50_000, 1, 2, 2)).numpy()
    # each pixel, across samples, is exactly Student-t(nu): z / sqrt(Chi2(nu)/nu)
    assert stats.kstest(n[:, 0, 0, 0], stats.t(df=nu).cdf).statistic < 0.01
    assert stats.kstest(n[:, 0, 1, 1], stats.t(df=nu).cdf).statistic < 0.01


def test_variance_is_nu_over_nu_minus_2():
    torch.manual_seed(1)
    nu = 9.0
    noise = StudentTNoise(nu, channels=1)
    n = noise.sample((100_000, 1, 4, 4), dtype=torch.float64)
    expected = nu / (nu - 2)
    assert abs(n.var().item() / expected - 1) < 0.02
    assert noise.std().item() == pytest.approx(math.sqrt(expected))


def test_one_kappa_per_sample_shared_by_all_pixels():
    torch.manual_seed(2)
    nu = 5.0
    n = StudentTNoise(nu, channels=1).sample((4000, 1, 32, 32), dtype=torch.float64).numpy()
    # Within one field all pixels share kappa, so the field's mean square is ~ 1/kappa, which is
    # InvGamma(nu/2, scale nu/2). Independent per-pixel t noise would give nearly the same value
    # (nu/(nu-2)) for every field and fail this test by a wide margin.
    field_ms = (n**2).mean(axis=(1, 2, 3))
    inv_kappa = stats.invgamma(a=nu / 2, scale=nu / 2)
    assert stats.kstest(field_ms, inv_kappa.cdf).statistic < 0.05
    assert field_ms.std() > 0.3


def test_one_nu_draws_one_kappa_for_the_whole_sample():
    """The paper's convention: with one nu, the sample (all channels and pixels) is one
    multivariate t: its channels share their scale."""
    torch.manual_seed(3)
    noise = StudentTNoise(5.0, channels=2)
    assert not noise.per_channel and noise.kappa(7).shape == (7, 1, 1, 1)
    n = noise.sample((3000, 2, 16, 16), dtype=torch.float64).numpy()
    ms = (n**2).mean(axis=(2, 3))
    assert np.corrcoef(np.log(ms[:, 0]), np.log(ms[:, 1]))[0, 1] > 0.9
    # the whole sample's mean square is 1/kappa ~ InvGamma(nu/2, nu/2)
    assert stats.kstest((n**2).mean(axis=(1, 2, 3)), stats.invgamma(a=2.5, scale=2.5).cdf).statistic < 0.05


def test_one_kappa_per_sample_and_channel_when_asked():
    torch.manual_seed(3)
    noise = StudentTNoise(5.0, channels=2, per_channel=True)
    assert noise.kappa(7).shape == (7, 2, 1, 1)
    n = noise.sample((3000, 2, 16, 16), dtype=torch.float64).numpy()
    ms = (n**2).mean(axis=(2, 3))
    # channels draw their own kappa: their field scales are independent
    assert abs(np.corrcoef(np.log(ms[:, 0]), np.log(ms[:, 1]))[0, 1]) < 0.06
    for c in range(2):  # and each is InvGamma(nu/2, nu/2) on its own
        assert stats.kstest(ms[:, c], stats.invgamma(a=2.5, scale=2.5).cdf).statistic < 0.05


def test_kappa_per_channel_by_default_when_the_nus_differ():
    assert StudentTNoise([3.0, 5.0], channels=2).per_channel
    with pytest.raises(ValueError, match="one kappa per sample needs one nu"):
        StudentTNoise([3.0, 5.0], channels=2, per_channel=False)


def test_per_channel_nu_with_gaussian_channel():
    noise = StudentTNoise([math.inf, 4.0], channels=2)
    assert noise.per_channel
    torch.manual_seed(4)
    n = noise.sample((20_000, 2, 1, 1), dtype=torch.float64).numpy()[:, :, 0, 0]
    assert stats.kstest(n[:, 0], stats.norm.cdf).statistic < 0.015
    assert stats.kstest(n[:, 1], stats.t(df=4).cdf).statistic < 0.015
    assert noise.std().flatten().tolist() == pytest.approx([1.0, math.sqrt(2.0)])


def test_gaussian_limit_draws_exactly_randn():
    noise = StudentTNoise(math.inf, channels=3)
    assert noise.gaussian
    torch.manual_seed(5)
    a = noise.sample((4, 3, 8, 8))
    torch.manual_seed(5)
    b = torch.randn((4, 3, 8, 8))
    assert torch.equal(a, b)
    assert noise.std().flatten().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("bad", [2.0, 1.5, 0.0, -3.0])
def test_nu_at_most_two_is_rejected(bad):
    with pytest.raises(ValueError, match="nu must be > 2"):
        StudentTNoise(bad, channels=1)
