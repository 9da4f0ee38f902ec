"""Conditional denoisers of forecast models: nu = inf is still EDM exactly, the condition
reaches the network, per-channel sigma_data."""

import math

import torch

from htweather.models.diffusion import (
    EDMLoss,
    EDMPrecond,
    FlowPrecond,
    StudentTNoise,
    edm_heun_sampler,
)
from htweather.models.networks import UNet


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
