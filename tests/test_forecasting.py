"""Forecast models: conditional denoisers (nu = inf still EDM exactly), consecutive-step windows,
and the forecast scores of the verification step on ensembles with known calibration."""

import math

import numpy as np
import pandas as pd
import properscoring
import pytest
import torch

from htweather import forecast, scores, train, verification
from htweather.config import ConfigError
from htweather.diffusion import EDMLoss, EDMPrecond, FlowPrecond, StudentTNoise, edm_heun_sampler
from htweather.networks import UNet


def conditional_net(channels=2, history=1):
    torch.manual_seed(5)
    net = UNet(channels * (1 + history), channels, base_channels=8, channel_mult=(1, 2), embedding_dim=16)
    for p in net.head.parameters():  # zero-initialised head: give the output some weight
        torch.nn.init.normal_(p, std=0.1)
    return net


def test_conditional_edm_is_edm_on_the_stacked_input():
    """With nu = inf, the conditional denoiser is EDM's formula with the (unscaled) previous state
    concatenated to the scaled noisy state: c_skip x + c_out F([c_in x, cond], ln(sigma) / 4)."""
    net = conditional_net()
    precond = EDMPrecond(net, StudentTNoise(math.inf, 2), sigma_data=0.8)
    x, cond = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    s = sigma.reshape(-1, 1, 1, 1)
    c_skip, c_out, c_in = 0.64 / (s**2 + 0.64), s * 0.8 / (s**2 + 0.64).sqrt(), 1 / (s**2 + 0.64).sqrt()
    expected = c_skip * x + c_out * net(torch.cat([c_in * x, cond], dim=1), sigma.log() / 4)
    torch.testing.assert_close(precond(x, sigma, cond), expected)
    # the condition matters: another previous state gives another denoised field
    assert not torch.allclose(precond(x, sigma, cond), precond(x, sigma, cond + 1.0))


def test_conditional_loss_and_samplers_pass_the_condition_through():
    net = conditional_net()
    edm = EDMPrecond(net, StudentTNoise([math.inf, 5.0], 2))
    x0, cond = torch.randn(4, 2, 8, 8), torch.randn(4, 2, 8, 8)
    torch.manual_seed(0)
    a = EDMLoss()(edm, x0, cond)
    torch.manual_seed(0)
    b = EDMLoss()(edm, x0, cond + 1.0)
    assert a.shape == x0.shape and not torch.equal(a, b)
    noise = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    out1 = edm_heun_sampler(edm, noise, num_steps=4, cond=cond)
    out2 = edm_heun_sampler(edm, noise, num_steps=4, cond=cond + 1.0)
    assert torch.isfinite(out1).all() and not torch.equal(out1, out2)
    flow = FlowPrecond(net, StudentTNoise(math.inf, 2))
    assert flow.velocity(x0, torch.full((4,), 0.5), cond).shape == x0.shape


def test_per_channel_sigma_data_broadcasts_per_channel():
    """PCP: each channel's coefficients use its own sigma_data; with equal values it is EDM."""
    net = conditional_net(history=0)
    x, sigma = torch.randn(2, 2, 8, 8), torch.tensor([0.5, 2.0])
    per_channel = EDMPrecond(net, StudentTNoise(math.inf, 2), sigma_data=[0.7, 0.7])
    scalar = EDMPrecond(net, StudentTNoise(math.inf, 2), sigma_data=0.7)
    torch.testing.assert_close(per_channel(x, sigma), scalar(x, sigma))
    mixed = EDMPrecond(net, StudentTNoise(math.inf, 2), sigma_data=[0.7, 0.3])
    c_skip = mixed.coefficients(sigma)[0]
    torch.testing.assert_close(c_skip[:, 1], 0.09 / (sigma.reshape(-1, 1, 1) ** 2 + 0.09))


def test_regular_windows_skip_gaps_and_edges():
    times = pd.DatetimeIndex(list(pd.date_range("2000-01-01", periods=5, freq="6h"))
                             + list(pd.date_range("2000-01-03", periods=4, freq="6h")))
    # history 1 before the target: targets 1..4 and 6..8 (5 follows a gap)
    np.testing.assert_array_equal(forecast.regular_windows(times, before=1, after=0), [1, 2, 3, 4, 6, 7, 8])
    np.testing.assert_array_equal(forecast.regular_windows(times, before=1, after=2), [1, 2, 6])
    assert forecast.regular_windows(times[:2], before=2, after=1).size == 0


def test_training_history_is_oldest_first():
    class Fields:  # what train.Examples reads from: times, and rows by index
        times = pd.date_range("2000-01-01", periods=6, freq="6h")
        values = np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1).repeat(2, axis=1)

        def __getitem__(self, rows):
            return torch.from_numpy(self.values[rows])

    examples = train.Examples(Fields(), history=2, where="test")
    np.testing.assert_array_equal(examples.targets, [2, 3, 4, 5])
    x0, stacked = examples.read([1, 3])  # targets 3 and 5
    np.testing.assert_array_equal(x0[:, 0, 0, 0].numpy(), [3, 5])
    # channels: [t-2 (both variables), t-1 (both variables)]
    np.testing.assert_array_equal(stacked[:, :, 0, 0].numpy(), [[1, 1, 2, 2], [3, 3, 4, 4]])


def test_start_indices_spread_over_the_split():
    times = pd.date_range("2000-01-01", periods=100, freq="6h")
    starts = forecast.start_indices(times, history=2, lead=3, count=5)
    assert starts[0] == 1 and starts[-1] == 96 and len(starts) == 5
    assert np.all(np.diff(starts) > 20)
    np.testing.assert_array_equal(forecast.start_indices(times, history=2, lead=3, count="all"), np.arange(1, 97))
    with pytest.raises(ConfigError, match="forecast.lead_steps: the test split has no 5 consecutive"):
        forecast.start_indices(times[:3], history=2, lead=3, count=5)


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
