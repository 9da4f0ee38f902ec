"""Where NVIDIA PhysicsNeMo's t-EDM differs from ours, pinned (benchmarks/peer_physicsnemo.py
measures what the differences do to the tails; docs/results/peer-physicsnemo.md reports it).

The first tests need no PhysicsNeMo: they measure, with our own code, what preconditioning with
the noise level sigma instead of the Student-t noise's scale s = sigma sqrt(nu / (nu - 2)) does
(PhysicsNeMo's `EDMPreconditioner` uses sigma; its `StudentTEDMNoiseScheduler.loss_weight` uses
s). The rest check PhysicsNeMo's classes themselves and skip where it is not installed
(`pip install -e ".[peer]"`): CI never has it."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from scipy import stats
from torch import nn

from htweather.data.store import load_stats
from htweather.models.diffusion import EDMPrecond, StudentTNoise
from htweather.models.diffusion.samplers import edm_sampler, edm_sigma_steps
from htweather.training import train

SIGMAS = torch.tensor([0.002, 0.05, 0.5, 1.0, 5.0, 80.0], dtype=torch.float64)
SD = 1.0  # sigma_data of standardised data, both sides' setting in the benchmark


class Zero(nn.Module):
    def forward(self, x, c_noise):
        return torch.zeros_like(x)


def coefficients(nu: float, sigma: torch.Tensor):
    """Our t-EDM preconditioner's (c_skip, c_out, c_in) at `nu`; nu = inf gives EDM's, which is
    what PhysicsNeMo's EDMPreconditioner computes whatever the noise."""
    precond = EDMPrecond(Zero(), StudentTNoise(nu, 1), sigma_data=SD).double()
    c_skip, c_out, c_in, _ = precond.coefficients(sigma.reshape(-1, 1, 1, 1))
    return c_skip.flatten(), c_out.flatten(), c_in.flatten()


def student_t_loss_weight(nu: float, sigma: torch.Tensor) -> torch.Tensor:
    """lambda = (s^2 + sd^2) / (s sd)^2 with s = sigma sqrt(nu / (nu - 2)): our EDMLoss's weight and
    PhysicsNeMo's StudentTEDMNoiseScheduler.loss_weight."""
    s = sigma * math.sqrt(nu / (nu - 2))
    return (s**2 + SD**2) / (s * SD) ** 2


@pytest.mark.parametrize("nu", [3.5, 5.0, 10.0])
def test_preconditioning_with_sigma_leaves_the_input_and_the_loss_off_unit(nu):
    """x = x0 + sigma n has variance sd^2 + s^2. Ours: c_in x has unit variance and the weight on
    the network's error, lambda c_out^2, is 1 at every level. With c_in, c_out from sigma (EDM's,
    PhysicsNeMo's with a Student-t scheduler) the input's variance rises to nu / (nu - 2) at high
    noise, and the weight falls to (nu - 2) / nu at low noise."""
    var_x = SD**2 + SIGMAS**2 * nu / (nu - 2)
    weight = student_t_loss_weight(nu, SIGMAS)
    _, c_out, c_in = coefficients(nu, SIGMAS)
    assert torch.allclose(c_in**2 * var_x, torch.ones_like(SIGMAS))
    assert torch.allclose(weight * c_out**2, torch.ones_like(SIGMAS))
    _, c_out_sigma, c_in_sigma = coefficients(math.inf, SIGMAS)
    input_var = c_in_sigma**2 * var_x
    effective_weight = weight * c_out_sigma**2
    assert input_var[-1].item() == pytest.approx(nu / (nu - 2), rel=1e-3)
    assert effective_weight[0].item() == pytest.approx((nu - 2) / nu, rel=1e-3)
    assert (input_var[1:] > 1.0).all() and (effective_weight < 1.0).all()


@pytest.mark.parametrize("nu", [5.0, 6.0])
def test_preconditioning_with_sigma_measured_on_student_t_noise(nu):
    """The same, measured: 400 000 draws of x0 ~ N(0, sd^2) plus sigma_max times our Student-t noise."""
    torch.manual_seed(3)
    x = SD * torch.randn(400_000, 1, 1, 1, dtype=torch.float64) + 80.0 * StudentTNoise(nu, 1).sample(
        (400_000, 1, 1, 1), dtype=torch.float64)
    sigma = torch.tensor([80.0], dtype=torch.float64)
    ours = (coefficients(nu, sigma)[2] * x).var().item()
    theirs = (coefficients(math.inf, sigma)[2] * x).var().item()
    assert ours == pytest.approx(1.0, rel=0.05)
    assert theirs == pytest.approx(nu / (nu - 2), rel=0.05)


# --- PhysicsNeMo itself (skipped without it) --------------------------------------------------

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "peer_physicsnemo.py"


@pytest.fixture(scope="module")
def peer():
    """The benchmark module (it makes PhysicsNeMo importable next to the CPU torch build)."""
    pytest.importorskip("physicsnemo", reason="PhysicsNeMo is not installed (pip install -e \".[peer]\")")
    spec = importlib.util.spec_from_file_location("peer_physicsnemo", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_physicsnemo_preconditioner_is_edms_whatever_the_noise(peer):
    precond = peer.EDMPreconditioner(Zero(), sigma_data=SD)
    c_in, c_noise, c_out, c_skip = precond.compute_coefficients(SIGMAS.reshape(-1, 1, 1, 1))
    edm_skip, edm_out, edm_in = coefficients(math.inf, SIGMAS)
    for theirs, edm in [(c_skip, edm_skip), (c_out, edm_out), (c_in, edm_in)]:
        assert torch.allclose(theirs.flatten().double(), edm)
    assert not torch.allclose(c_in.flatten().double(), coefficients(5.0, SIGMAS)[2])


def test_the_benchmarks_scaled_variant_is_our_preconditioning(peer):
    """--scaled-preconditioner: PhysicsNeMo's class with c_skip, c_out, c_in at s, c_noise at sigma."""
    precond = peer.ScaledEDMPreconditioner(Zero(), sigma_data=SD, nu=5.0)
    c_in, c_noise, c_out, c_skip = precond.compute_coefficients(SIGMAS.reshape(-1, 1, 1, 1))
    for theirs, ours in zip((c_skip, c_out, c_in), coefficients(5.0, SIGMAS)):
        assert torch.allclose(theirs.flatten().double(), ours)
    assert torch.allclose(c_noise.flatten().double(), SIGMAS.log() / 4)


def test_physicsnemo_student_t_loss_weight_is_ours(peer):
    scheduler = peer.StudentTEDMNoiseScheduler(nu=5, sigma_data=SD)
    assert torch.allclose(scheduler.loss_weight(SIGMAS).double(), student_t_loss_weight(5.0, SIGMAS))


def test_physicsnemo_noise_has_one_kappa_per_sample_as_ours(peer):
    """Student-t(nu) per pixel, one kappa for the whole sample (channels share their scale)."""
    torch.manual_seed(4)
    n = peer.StudentTEDMNoiseScheduler(nu=4)._sample_student_t(20_000, 2, 4, 4).double().numpy()
    assert stats.kstest(n[:, 1, 3, 2], stats.t(df=4).cdf).statistic < 1.95 / math.sqrt(20_000)
    ms = (n**2).mean(axis=(2, 3))
    assert np.corrcoef(np.log(ms[:, 0]), np.log(ms[:, 1]))[0, 1] > 0.6


def test_physicsnemo_start_draws_have_our_law(peer):
    """Its init_latents and our start noise are the same law (so W5E5's Heun verdicts, which
    followed the draws, are luck, not method): a two-sample KS test on each member's largest value."""
    torch.manual_seed(7)
    theirs = peer.StudentTEDMNoiseScheduler(nu=5, sigma_max=20.0).init_latents(
        (1, 4, 4), torch.full((40_000,), 20.0)).double() / 20.0
    ours = StudentTNoise(5.0, 1, per_channel=False).sample((40_000, 1, 4, 4), dtype=torch.float64)
    maxima = [x.flatten(1).max(1).values.numpy() for x in (theirs, ours)]
    assert stats.ks_2samp(*maxima).pvalue > 1e-3


class Shrink(nn.Module):
    """D(x, sigma) = x / (1 + sigma^2): the exact denoiser of x0 ~ N(0, 1) under Gaussian noise."""

    noise = StudentTNoise(math.inf, 1)

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, sigma, cond=None):
        self.calls += 1
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return x / (1 + sigma**2)


def test_physicsnemo_heun_is_ours_with_one_evaluation_more(peer):
    """Same probability-flow ODE dx/dsigma = (x - D) / sigma and the same steps; its last step
    evaluates the denoiser a second time and discards it: 2 N evaluations against our 2 N - 1."""
    scheduler = peer.EDMNoiseScheduler(sigma_min=0.002, sigma_max=80.0, rho=7.0, sigma_data=SD)
    theirs, ours = Shrink(), Shrink()
    denoiser = scheduler.get_denoiser(x0_predictor=theirs)
    x = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    x_t = x * 3.0
    t = torch.full((64,), 3.0)
    assert torch.allclose(denoiser(x_t, t), (x_t - theirs(x_t, t)) / 3.0)
    theirs.calls = 0
    out = peer.physicsnemo_sample(denoiser, x * 80.0, scheduler, num_steps=18, solver="heun")
    expected = edm_sampler(ours, x.double(), "heun", num_steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert (theirs.calls, ours.calls) == (36, 35)
    assert torch.allclose(out.double(), expected, atol=1e-5)


def test_physicsnemo_stochastic_heun_churns_gaussian_noise_into_student_t_models(peer):
    """With a Student-t scheduler its churn is still torch.randn_like: Gaussian increments, where
    ours draws the model's own Student-t noise (test_samplers.test_student_t_churn_is_the_models_noise)."""
    scheduler = peer.StudentTEDMNoiseScheduler(nu=3, sigma_data=SD)
    denoiser = scheduler.get_denoiser(x0_predictor=lambda x, t: x)  # D(x) = x: no drift, churn only
    sigmas = edm_sigma_steps(4).float()
    churn = {"S_churn": 100.0, "S_min": float(sigmas[1]) * 1.01, "S_max": 1e9, "S_noise": 1.0, "num_steps": 4}
    solver = peer.EDMStochasticHeunSolver(denoiser, **churn)
    torch.manual_seed(6)
    x = torch.zeros(20_000, 1, 2, 2)
    out = solver.step(x, sigmas[0].expand(20_000), sigmas[1].expand(20_000))
    sigma_hat = sigmas[0] * math.sqrt(2)
    n = (out / (sigma_hat**2 - sigmas[0] ** 2).sqrt()).double().numpy()[:, 0, 1, 1]
    assert stats.kstest(n, stats.norm.cdf).statistic < 1.95 / math.sqrt(20_000)
    assert stats.kstest(n, stats.t(df=3).cdf).statistic > 0.05


def test_the_benchmark_trains_and_samples_physicsnemos_t_edm_in_our_loop(peer, store, tmp_path):
    """The glue: PhysicsNeMo's pieces trained by train(method=) on the tiny store, then sampled by
    its Heun and by ours; a changed setting makes the sample stale."""
    cfg, root = store
    cfg = {**cfg, "models": {**cfg["models"], "tedm": {**cfg["models"]["tedm"], "nu": 5.0, "kappa": "sample"}},
           "sampling": {**cfg["sampling"], "members": 4, "batch_size": 2}}
    model_path = train.train(cfg, "tedm", root / "store.zarr", root / "stats.json", tmp_path / "m",
                             method=peer.PhysicsNeMoMethod())
    assert torch.load(model_path, weights_only=True)["method"].startswith("physicsnemo")
    stats = load_stats(root / "stats.json")
    levels = peer.sampling_levels(cfg, 3)
    for sampler, nfe in (("heun", 6), (peer.OUR_HEUN_ON_THEIRS, 5)):
        out = tmp_path / f"{sampler}.zarr"
        peer.sample_theirs(cfg, model_path, stats, out, sampler, levels, peer.PhysicsNeMoMethod())
        ds = xr.open_zarr(out)
        assert ds.sizes["member"] == 4 and ds.attrs["network_evaluations_per_member"] == nfe
        assert all(np.isfinite(ds[v].values).all() for v in ds.data_vars)
    inputs = {"weights": peer.weights_digest(model_path), "levels": levels}
    peer.record(out, inputs)
    assert peer.is_current(out, inputs) and not peer.is_current(out, {**inputs, "levels": peer.sampling_levels(cfg, 4)})
