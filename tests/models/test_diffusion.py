"""t-EDM and t-Flow: the nu = inf limit reproduces EDM / flow matching exactly; preconditioning,
loss weights and samplers against closed forms."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from htweather.models.diffusion import (EDMLoss, EDMPrecond, FlowMatchingLoss, FlowPrecond, StudentTNoise,
                                 edm_heun_sampler, edm_sigma_steps, flow_sampler)
from htweather.models.networks import UNet

SD = 0.7  # a sigma_data other than 1, so that formulas are exercised


def tiny_net(channels=2):
    torch.manual_seed(123)
    net = UNet(channels, channels, base_channels=8, channel_mult=(1, 2), num_blocks=1, embedding_dim=16)
    # the head is zero-initialised; give it weights so the network output matters in the tests
    for p in net.head.parameters():
        nn.init.normal_(p, std=0.1)
    return net


# --- Reference EDM (Karras et al. 2022), written out independently of the package -------------

def reference_edm_denoiser(net, x, sigma, sd):
    sigma = sigma.reshape(-1, 1, 1, 1).to(torch.float32)
    x = x.to(torch.float32)
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
    c_in = 1 / (sd**2 + sigma**2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip * x + c_out * net(c_in * x, c_noise.flatten()).to(torch.float32)


def reference_edm_loss(net, y, sd, P_mean=-1.2, P_std=1.2):
    rnd_normal = torch.randn([y.shape[0], 1, 1, 1])
    sigma = (rnd_normal * P_std + P_mean).exp()
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    n = torch.randn_like(y) * sigma
    D_yn = reference_edm_denoiser(net, y + n, sigma, sd)
    return weight * ((D_yn - y) ** 2)


def reference_edm_sampler(net, latents, sd, num_steps=18, sigma_min=0.002, sigma_max=80, rho=7):
    step_indices = torch.arange(num_steps, dtype=torch.float64)
    t_steps = (sigma_max ** (1 / rho) + step_indices / (num_steps - 1)
               * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    t_steps = torch.cat([t_steps, torch.zeros_like(t_steps[:1])])
    x_next = latents.to(torch.float64) * t_steps[0]
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        denoised = reference_edm_denoiser(net, x_cur, t_cur.expand(x_cur.shape[0]), sd).to(torch.float64)
        d_cur = (x_cur - denoised) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
        if i < num_steps - 1:
            denoised = reference_edm_denoiser(net, x_next, t_next.expand(x_cur.shape[0]), sd).to(torch.float64)
            d_prime = (x_next - denoised) / t_next
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def test_nu_inf_loss_equals_edm_exactly():
    net = tiny_net()
    precond = EDMPrecond(net, StudentTNoise(math.inf, 2), sigma_data=SD)
    y = torch.randn(6, 2, 8, 8)
    torch.manual_seed(11)
    ours = EDMLoss()(precond, y)
    torch.manual_seed(11)
    ref = reference_edm_loss(net, y, SD)
    assert torch.equal(ours, ref)


def test_nu_inf_sampler_equals_edm_exactly():
    net = tiny_net()
    precond = EDMPrecond(net, StudentTNoise(math.inf, 2), sigma_data=SD)
    torch.manual_seed(12)
    latents = StudentTNoise(math.inf, 2).sample((3, 2, 8, 8), dtype=torch.float64)
    torch.manual_seed(12)
    ref_latents = torch.randn((3, 2, 8, 8), dtype=torch.float64)
    assert torch.equal(latents, ref_latents)
    ours = edm_heun_sampler(precond, latents, num_steps=6)
    ref = reference_edm_sampler(net, ref_latents, SD, num_steps=6)
    assert torch.equal(ours, ref)


def test_large_nu_approaches_edm():
    net = tiny_net()
    x = torch.randn(4, 2, 8, 8)
    sigma = torch.tensor([0.05, 0.5, 2.0, 20.0])
    gauss = EDMPrecond(net, StudentTNoise(math.inf, 2), SD)(x, sigma)
    near = EDMPrecond(net, StudentTNoise(1e9, 2), SD)(x, sigma)
    assert torch.allclose(gauss, near, atol=1e-5)


def test_t_edm_preconditioning_uses_effective_scale():
    nu = 5.0
    precond = EDMPrecond(nn.Identity(), StudentTNoise(nu, 1), sigma_data=SD)
    sigma = torch.tensor([0.3, 3.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = (c.flatten().numpy() for c in precond.coefficients(sigma))
    sigma = sigma.numpy()
    s = sigma * math.sqrt(nu / (nu - 2))
    np.testing.assert_allclose(c_skip, SD**2 / (s**2 + SD**2), rtol=1e-6)
    np.testing.assert_allclose(c_out, s * SD / np.sqrt(s**2 + SD**2), rtol=1e-6)
    np.testing.assert_allclose(c_in, 1 / np.sqrt(s**2 + SD**2), rtol=1e-6)
    np.testing.assert_allclose(c_noise, np.log(sigma) / 4, rtol=1e-6)


def test_t_edm_loss_weight_is_inverse_c_out_squared():
    """With F = 0 the denoiser is c_skip x, so the loss is computable by hand."""

    class Zero(nn.Module):
        def forward(self, x, c_noise):
            return torch.zeros_like(x)

    nu = 4.0
    precond = EDMPrecond(Zero(), StudentTNoise(nu, 1), sigma_data=SD)
    y = torch.randn(5, 1, 4, 4)
    torch.manual_seed(7)
    loss = EDMLoss()(precond, y)
    torch.manual_seed(7)
    sigma = (torch.randn([5, 1, 1, 1]) * 1.2 - 1.2).exp()
    n = StudentTNoise(nu, 1).sample(y.shape)
    s = sigma * math.sqrt(nu / (nu - 2))
    c_skip = SD**2 / (s**2 + SD**2)
    c_out = s * SD / (s**2 + SD**2).sqrt()
    expected = (c_skip * (y + sigma * n) - y) ** 2 / c_out**2
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_sigma_steps():
    steps = edm_sigma_steps(18, 0.002, 80.0, 7.0)
    assert len(steps) == 19
    assert steps[0].item() == pytest.approx(80.0)
    assert steps[17].item() == pytest.approx(0.002)
    assert steps[18].item() == 0
    assert torch.all(steps[:-1] > steps[1:])


class GaussianDataEDM(nn.Module):
    """The exact denoiser for x0 ~ N(0, SD^2) under Gaussian noise: D = SD^2 x / (SD^2 + sigma^2)."""

    noise = StudentTNoise(math.inf, 1)

    def forward(self, x, sigma, cond=None):
        sigma = sigma.reshape(-1, 1, 1, 1).to(torch.float64)
        return SD**2 * x / (SD**2 + sigma**2)


def test_edm_heun_sampler_maps_noise_to_data_distribution():
    torch.manual_seed(8)
    latents = torch.randn(20_000, 1, 1, 1, dtype=torch.float64)
    # the probability-flow ODE scales x by sqrt(SD^2 + sigma^2); starting at sigma_max * z
    expected_std = SD * 80.0 / math.sqrt(SD**2 + 80.0**2) * latents.std().item()
    x = edm_heun_sampler(GaussianDataEDM(), latents, num_steps=100)
    assert x.std().item() == pytest.approx(expected_std, rel=0.003)
    # EDM's default 18 steps carry a few per cent of discretisation error on this ODE
    x18 = edm_heun_sampler(GaussianDataEDM(), latents)
    assert x18.std().item() == pytest.approx(expected_std, rel=0.07)
    # and it is deterministic and monotone in the latent
    assert torch.all(torch.diff(x.flatten()[latents.flatten().argsort()]) > 0)


class GaussianDataFlow(nn.Module):
    """The exact velocity E[n - x0 | x_t] for x0 ~ N(0, SD^2), n ~ N(0, 1), x_t = (1-t) x0 + t n."""

    noise = StudentTNoise(math.inf, 1)

    def velocity(self, x, t, cond=None):
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1, 1, 1)
        return (t - (1 - t) * SD**2) / ((1 - t) ** 2 * SD**2 + t**2) * x


@pytest.mark.parametrize("solver,rel", [("heun", 0.01), ("euler", 0.15)])
def test_flow_sampler_maps_noise_to_data_distribution(solver, rel):
    torch.manual_seed(9)
    latents = torch.randn(20_000, 1, 1, 1, dtype=torch.float64)
    x = flow_sampler(GaussianDataFlow(), latents, num_steps=18, solver=solver)
    assert x.std().item() == pytest.approx(SD * latents.std().item(), rel=rel)


def reference_flow_matching_loss(velocity_fn, x0):
    t = torch.rand([x0.shape[0], 1, 1, 1])
    n = torch.randn_like(x0)
    x_t = (1 - t) * x0 + t * n
    return (velocity_fn(x_t, t) - (n - x0)) ** 2


def test_nu_inf_flow_loss_equals_flow_matching_exactly():
    net = tiny_net()
    model = FlowPrecond(net, StudentTNoise(math.inf, 2), sigma_data=SD)
    x0 = torch.randn(5, 2, 8, 8)
    torch.manual_seed(13)
    ours = FlowMatchingLoss()(model, x0)
    torch.manual_seed(13)
    ref = reference_flow_matching_loss(model.velocity, x0)
    assert torch.equal(ours, ref)


def test_flow_denoiser_is_consistent_with_velocity():
    net = tiny_net()
    model = FlowPrecond(net, StudentTNoise(5.0, 2), sigma_data=SD)
    x = torch.randn(3, 2, 8, 8)
    t = torch.tensor([0.1, 0.5, 0.9])
    d = model(x, t)
    v = model.velocity(x, t)
    torch.testing.assert_close((x - d) / t.reshape(-1, 1, 1, 1), v, rtol=1e-4, atol=1e-5)


def test_t_flow_sampler_starts_from_student_t_noise():
    """The only sampling change is the initial state: with zero velocity the output is the
    Student-t latent itself, whose per-sample scale varies (one kappa per sample)."""

    class Still(nn.Module):
        noise = StudentTNoise(3.0, 1)

        def velocity(self, x, t, cond=None):
            return torch.zeros_like(x)

    torch.manual_seed(10)
    latents = Still.noise.sample((2000, 1, 8, 8), dtype=torch.float64)
    out = flow_sampler(Still(), latents, num_steps=4)
    assert torch.equal(out, latents)
    per_sample_rms = out.pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert per_sample_rms.max() / per_sample_rms.median() > 3


def test_unet_handles_odd_grids():
    net = UNet(3, 3, base_channels=8, channel_mult=(1, 2, 2), embedding_dim=16)
    for shape in [(33, 49), (20, 28), (4, 4)]:
        out = net(torch.randn(2, 3, *shape), torch.randn(2))
        assert out.shape == (2, 3, *shape)


def test_model_kappa_setting_reaches_the_noise():
    from htweather.config import load_config
    from htweather.models import assemble

    cfg = load_config({"models": {"one": {"family": "edm", "nu": 5},
                                  "asked": {"family": "edm", "nu": 5, "kappa": "channel"},
                                  "mixed": {"family": "edm", "nu": {"t2m": "inf", "w": 5, "tp": 4}}}})
    per_channel = {m: assemble.build(assemble.ModelSpec.from_config(cfg, m)).noise.per_channel for m in cfg["models"]}
    assert per_channel == {"one": False, "asked": True, "mixed": True}
    spec = assemble.ModelSpec.from_config(cfg, "one").to_dict()
    assert assemble.ModelSpec.from_dict(spec).kappa == "auto"
    del spec["kappa"]  # a model saved before the setting existed drew kappa per channel
    assert assemble.build(assemble.ModelSpec.from_dict(spec)).noise.per_channel
