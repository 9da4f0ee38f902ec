"""The samplers against exact denoisers: EDM's Euler, Heun, DPM-Solver++(2M) and stochastic
sampler, and flow's Euler, Heun and Adams-Bashforth, on a Gaussian target (closed-form
denoiser) and on a heavy-tailed target under Student-t noise (denoiser by quadrature). Started
from the exact noisy marginal, the exact ODE ends exactly at the target, so what remains is the
solver's error; KS tolerances are the sampling noise of 20000 draws (1.95 / sqrt(n) = 0.014 is
the 99.9 % point of the KS statistic) plus the solver's measured error. Also: the churn is the
model's own noise, nu = inf is EDM's Algorithm 2 bit for bit, and the config selects the solver."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from htweather.config import load_config
from htweather.errors import ConfigError
from htweather.models import assemble
from htweather.models.diffusion import (
    EDMPrecond,
    StudentTNoise,
    edm_sampler,
    edm_sigma_steps,
    flow_sampler,
)
from htweather.models.diffusion.samplers import EDM_SOLVERS, FlowAsEDMDenoiser, network_evaluations
from htweather.models.networks import UNet

SIGMA_MAX = 80.0
N_SAMPLES = 20_000
KS_NOISE = 1.95 / math.sqrt(N_SAMPLES)  # the KS statistic's 99.9 % point for n draws from the target


# --- Targets with exact denoisers -------------------------------------------------------------

class GaussianTarget(nn.Module):
    """x0 ~ N(MU, S^2) under Gaussian noise: D(x, sigma) = MU + S^2 (x - MU) / (S^2 + sigma^2), and
    the ODE's exact solution from sigma_max is x0 = MU + (x - MU) S / sqrt(S^2 + sigma_max^2)."""

    MU, S = 0.5, 0.7
    noise = StudentTNoise(math.inf, 1)

    def forward(self, x, sigma, cond=None):
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        return self.MU + self.S**2 * (x - self.MU) / (self.S**2 + sigma**2)

    def exact(self, x_start):
        return self.MU + (x_start - self.MU) * self.S / math.sqrt(self.S**2 + SIGMA_MAX**2)

    def cdf(self, x):
        return stats.norm(self.MU, self.S).cdf(x)


class MixtureTarget(nn.Module):
    """x0 ~ sum_k w_k N(m_k, s_k^2), a skewed target with a heavy upper tail (a 10 % component of
    scale 4), under Student-t noise n = z / sqrt(kappa), kappa ~ Chi2(nu) / nu. Given kappa and
    the component, x = x0 + sigma n is Gaussian and E[x0 | x] is linear in x; the exact denoiser
    averages these over the posterior of (kappa, k). The kappa integral is a trapezoid rule in
    ln kappa over [1e-6, 1e2] (smooth and decaying at both ends, so accurate to ~1e-7: see
    test_heavy_tailed_denoiser_is_exact)."""

    W, M, S = (0.6, 0.3, 0.1), (-0.3, 0.5, 1.0), (0.5, 1.0, 4.0)

    def __init__(self, nu=5.0, nodes=41):
        super().__init__()
        self.nu = nu
        self.noise = StudentTNoise(nu, 1)
        self.w, self.m, self.s = (torch.tensor(v, dtype=torch.float64) for v in (self.W, self.M, self.S))
        u = torch.linspace(math.log(1e-6), math.log(1e2), nodes, dtype=torch.float64)
        self.kappa = u.exp()
        chi2_over_nu = stats.gamma(a=nu / 2, scale=2 / nu)
        self.log_weight = torch.from_numpy(chi2_over_nu.logpdf(self.kappa.numpy())) + u + math.log(u[1] - u[0])

    def forward(self, x, sigma, cond=None):
        shape, nodes = x.shape, len(self.kappa)
        var = (self.s**2 + float(sigma) ** 2 / self.kappa[:, None]).reshape(-1)  # (kappa, component)
        m, s2 = self.m.repeat(nodes), (self.s**2).repeat(nodes)
        log_prior = (self.w.log() + self.log_weight[:, None]).reshape(-1) - 0.5 * torch.log(2 * math.pi * var)
        r = x.to(torch.float64).reshape(-1, 1) - m
        log_post = log_prior - r * r * (0.5 / var)
        post = (log_post - log_post.amax(dim=1, keepdim=True)).exp()
        return ((post @ m + (post * r) @ (s2 / var)) / post.sum(1)).reshape(shape)

    def sample(self, n, generator):
        k = torch.multinomial(self.w, n, replacement=True, generator=generator)
        return self.m[k] + self.s[k] * torch.randn(n, dtype=torch.float64, generator=generator)

    def cdf(self, x):
        x = np.asarray(x)[..., None]
        return (np.array(self.W) * stats.norm.cdf((x - np.array(self.M)) / np.array(self.S))).sum(-1)

    def pdf(self, x):
        x = np.asarray(x)[..., None]
        return (np.array(self.W) * stats.norm.pdf(x, np.array(self.M), np.array(self.S))).sum(-1)

    def quantile(self, p):
        from scipy.optimize import brentq
        return np.array([brentq(lambda x, q=q: self.cdf(x) - q, -100, 100, xtol=1e-12) for q in p])


class AsFlow(nn.Module):
    """The exact flow velocity of an EDM target: x_t = (1 - t) x0 + t n is (1 - t) times the EDM
    state at sigma = t / (1 - t), so D_flow(x, t) = D(x / (1 - t), t / (1 - t)) and v = (x - D) / t;
    at t = 1, x is pure noise and D is the target's mean."""

    def __init__(self, target, mean):
        super().__init__()
        self.target, self.mean, self.noise = target, mean, target.noise

    def velocity(self, x, t, cond=None):
        t = float(t)
        denoised = self.mean if t == 1.0 else self.target(x / (1 - t), t / (1 - t))
        return (x - denoised) / t


def edm_start(target, x0, seed):
    """The sampler's `noise` for starting at the exact marginal at sigma_max: x = x0 + sigma_max n."""
    torch.manual_seed(seed)
    n = target.noise.sample((len(x0), 1, 1, 1), dtype=torch.float64)
    return (x0.reshape(-1, 1, 1, 1) + SIGMA_MAX * n) / SIGMA_MAX


def quantile_tolerance(target, p, n):
    """Four standard errors of the empirical p-quantile of n draws: sqrt(p (1 - p) / n) / f(q_p)."""
    q = target.quantile(p)
    return 4 * np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / n) / target.pdf(q)


@pytest.fixture(scope="module")
def heavy():
    """The heavy-tailed target and 20000 exact starts for EDM and flow (the same x0 and noise)."""
    target = MixtureTarget()
    x0 = target.sample(N_SAMPLES, torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    n = target.noise.sample((N_SAMPLES, 1, 1, 1), dtype=torch.float64)
    return target, (x0.reshape(-1, 1, 1, 1) + SIGMA_MAX * n) / SIGMA_MAX, n


@pytest.fixture(scope="module")
def heavy_reference(heavy):
    """EDM's Heun at 128 steps (255 network evaluations) from the first 2000 starts."""
    target, start, _ = heavy
    return edm_sampler(target, start[:2000], "heun", num_steps=128)


def test_heavy_tailed_denoiser_is_exact():
    """The quadrature denoiser against direct integration over x0 with Student-t likelihood."""
    target = MixtureTarget()
    assert target.log_weight.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    density = target.pdf
    for x, sigma in [(0.1, 0.002), (3.0, 0.05), (5.0, 1.0), (-40.0, 5.0), (200.0, 80.0), (50.0, 2.0), (0.3, 0.5)]:
        def posterior(a, x=x, sigma=sigma):  # unnormalised: prior density times Student-t likelihood
            return density(a) * stats.t.pdf((x - a) / sigma, target.nu) / sigma

        lo, hi = min(x, -30) - 50 * sigma - 30, max(x, 30) + 50 * sigma + 30
        opts = {"limit": 1000, "points": [x, 0.0], "epsabs": 0, "epsrel": 1e-12}
        num = integrate.quad(lambda a: a * posterior(a), lo, hi, **opts)[0]
        den = integrate.quad(posterior, lo, hi, **opts)[0]
        ours = target(torch.tensor([x], dtype=torch.float64), sigma).item()
        assert ours == pytest.approx(num / den, abs=1e-6)


# --- EDM solvers --------------------------------------------------------------------------------

# at the default budget of 35 network evaluations; rms: the pathwise error against the exact map,
# std: the relative error of the standard deviation (measured: rms 0.035, 0.009, 0.054; std
# +5.6 %, +1.8 %, -7.1 %)
@pytest.mark.parametrize("solver,steps,rms,std", [("heun", 18, 0.05, 0.07), ("dpmpp_2m", 35, 0.012, 0.03),
                                                  ("euler", 35, 0.07, 0.09)])
def test_edm_solvers_map_noise_to_the_gaussian_target(solver, steps, rms, std):
    target = GaussianTarget()
    x0 = target.MU + target.S * torch.randn(N_SAMPLES, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    start = edm_start(target, x0, seed=3)
    x = edm_sampler(target, start, solver, num_steps=steps)
    exact = target.exact(start * SIGMA_MAX)
    assert (x - exact).pow(2).mean().sqrt().item() < rms
    assert stats.kstest(x.flatten().numpy(), target.cdf).statistic < KS_NOISE + 0.01
    assert x.mean().item() == pytest.approx(target.MU, abs=4 * target.S / math.sqrt(N_SAMPLES) + 0.01)
    assert x.std().item() == pytest.approx(target.S, rel=std)


@pytest.mark.parametrize("solver,steps,ks", [("heun", 18, 0.008), ("dpmpp_2m", 35, 0.004)])
def test_edm_solvers_map_student_t_noise_to_the_heavy_tailed_target(heavy, solver, steps, ks):
    """35 evaluations each; `ks`: the solver's allowance beyond sampling noise (measured: KS
    0.016 and 0.011; the 255-evaluation reference gets 0.011 from these starts)."""
    target, start, _ = heavy
    x = edm_sampler(target, start, solver, num_steps=steps).flatten().numpy()
    assert stats.kstest(x, target.cdf).statistic < KS_NOISE + ks
    p = np.array([0.01, 0.5, 0.99, 0.999])
    # the upper tail too: the 99.9 % quantile (about 10, in the 10 % component of scale 4)
    assert np.all(np.abs(np.quantile(x, p) - target.quantile(p)) < quantile_tolerance(target, p, len(x)) + 0.05)


def test_few_step_dpmpp_2m_is_close_to_the_255_evaluation_reference(heavy, heavy_reference):
    """At 10 evaluations DPM-Solver++(2M) is several times closer to the converged ODE solution
    than Heun (9 or 11 evaluations) or Euler (10) at the same cost, and at 35 closer than Heun
    at 35."""
    target, start, _ = heavy
    start, ref = start[:2000], heavy_reference
    rms = {}
    for solver, steps in [("dpmpp_2m", 10), ("heun", 5), ("heun", 6), ("euler", 10), ("dpmpp_2m", 35), ("heun", 18)]:
        x = edm_sampler(target, start, solver, num_steps=steps)
        rms[solver, network_evaluations("edm", steps, solver)] = (x - ref).pow(2).mean().sqrt().item()
        if (solver, steps) == ("dpmpp_2m", 10):
            assert stats.ks_2samp(x.flatten().numpy(), ref.flatten().numpy()).statistic < 0.05
    assert rms["dpmpp_2m", 10] < 0.3
    assert rms["dpmpp_2m", 10] < min(rms["heun", 9], rms["heun", 11], rms["euler", 10]) / 2
    assert rms["dpmpp_2m", 35] < 0.03 and rms["dpmpp_2m", 35] < rms["heun", 35] / 3


@torch.no_grad()
def reference_dpmpp_2m(denoise, latents, num_steps):
    """DPM-Solver++(2M) as published (Lu et al. 2022, Algorithm 2, data prediction) with
    r = h_prev / h, on EDM's noise levels, written out independently of the package."""
    sigmas = edm_sigma_steps(num_steps)
    x, old = latents.to(torch.float64) * sigmas[0], None
    for i in range(num_steps):
        denoised = denoise(x, sigmas[i])
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            x = (sigmas[i + 1] / sigmas[i]) * x - torch.expm1(-h) * denoised
        else:
            r = (t - (-sigmas[i - 1].log())) / h
            x = (sigmas[i + 1] / sigmas[i]) * x - torch.expm1(-h) * ((1 + 1 / (2 * r)) * denoised - old / (2 * r))
        old = denoised
    return x


def test_dpmpp_2m_is_the_published_update_and_second_order():
    net = tiny_net()
    precond = EDMPrecond(net, StudentTNoise(5.0, 2), sigma_data=0.7)
    torch.manual_seed(4)
    latents = precond.noise.sample((3, 2, 8, 8), dtype=torch.float64)
    ours = edm_sampler(precond, latents, "dpmpp_2m", num_steps=7)
    ref = reference_dpmpp_2m(lambda x, s: precond(x, s).to(torch.float64), latents, 7)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    # doubling the steps divides the error by about 4 (2^2) once the steps are short
    target = GaussianTarget()
    start = torch.linspace(-4, 4, 201, dtype=torch.float64).reshape(-1, 1, 1, 1)
    errors = [(edm_sampler(target, start, "dpmpp_2m", num_steps=n) - target.exact(start * SIGMA_MAX)).abs().max()
              for n in (50, 100)]
    assert 3.0 < errors[0] / errors[1] < 5.0


# --- The stochastic sampler ---------------------------------------------------------------------

def tiny_net(channels=2):
    torch.manual_seed(123)
    net = UNet(channels, channels, base_channels=8, channel_mult=(1, 2), num_blocks=1, embedding_dim=16)
    for p in net.head.parameters():  # the head is zero-initialised: give the network output weight
        nn.init.normal_(p, std=0.1)
    return net


@torch.no_grad()
def reference_edm_stochastic_sampler(net, latents, sd, num_steps, S_churn, S_min, S_max, S_noise,
                                     sigma_min=0.002, sigma_max=80, rho=7):
    """EDM's Algorithm 2 as in its reference code (NVlabs/edm generate.py), written out
    independently of the package, with Gaussian churn from torch.randn_like."""

    def denoise(x, sigma):
        sigma = sigma.reshape(-1, 1, 1, 1).to(torch.float32).expand(x.shape[0], 1, 1, 1)
        x = x.to(torch.float32)
        c_skip, c_out = sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in, c_noise = 1 / (sd**2 + sigma**2).sqrt(), sigma.log() / 4
        return (c_skip * x + c_out * net(c_in * x, c_noise.flatten())).to(torch.float64)

    i = torch.arange(num_steps, dtype=torch.float64)
    t_steps = (sigma_max ** (1 / rho) + i / (num_steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    t_steps = torch.cat([t_steps, torch.zeros_like(t_steps[:1])])
    x_next = latents.to(torch.float64) * t_steps[0]
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        gamma = min(S_churn / num_steps, np.sqrt(2) - 1) if S_min <= t_cur <= S_max else 0
        t_hat = t_cur + gamma * t_cur
        x_hat = x_cur + (t_hat**2 - t_cur**2).sqrt() * S_noise * torch.randn_like(x_cur)
        d_cur = (x_hat - denoise(x_hat, t_hat)) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        if i < num_steps - 1:
            d_prime = (x_next - denoise(x_next, t_next)) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def test_nu_inf_stochastic_sampler_is_edm_algorithm_2_exactly():
    net, sd = tiny_net(), 0.7
    precond = EDMPrecond(net, StudentTNoise(math.inf, 2), sigma_data=sd)
    churn = {"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.003}
    torch.manual_seed(5)
    latents = torch.randn((3, 2, 8, 8), dtype=torch.float64)
    torch.manual_seed(6)
    ours = edm_sampler(precond, latents, "stochastic", num_steps=6, churn=churn)
    torch.manual_seed(6)
    ref = reference_edm_stochastic_sampler(net, latents, sd, 6, **churn)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("nu", [math.inf, 5.0])
def test_stochastic_sampler_without_churn_is_heun_exactly(nu):
    precond = EDMPrecond(tiny_net(), StudentTNoise(nu, 2), sigma_data=0.7)
    torch.manual_seed(7)
    latents = precond.noise.sample((2, 2, 8, 8), dtype=torch.float64)
    heun = edm_sampler(precond, latents, "heun", num_steps=5)
    still = edm_sampler(precond, latents, "stochastic", num_steps=5, churn={"S_churn": 0.0})
    assert torch.equal(heun, still)


class NoDrift(nn.Module):
    """D(x) = x: the ODE does not move x, so the sampler returns its start plus the churn."""

    def __init__(self, nu, channels):
        super().__init__()
        self.noise = StudentTNoise(nu, channels)

    def forward(self, x, sigma, cond=None):
        return x


def churn_only(nu, shape, seed):
    """The noise the first step adds (churn on that step alone), in units of its scale."""
    sigmas = edm_sigma_steps(4)
    model = NoDrift(nu, shape[1])
    torch.manual_seed(seed)
    churn = {"S_churn": 100.0, "S_min": float(sigmas[1]) * 1.01, "S_max": 1e9, "S_noise": 1.0}  # gamma = sqrt 2 - 1
    out = edm_sampler(model, torch.zeros(shape, dtype=torch.float64), "stochastic", num_steps=4, churn=churn)
    sigma_hat = sigmas[0] + (math.sqrt(2) - 1) * sigmas[0]
    return (out / (sigma_hat**2 - sigmas[0] ** 2).sqrt()).numpy()


@pytest.mark.parametrize("nu", [3.0, 5.0])
def test_student_t_churn_is_the_models_noise(nu):
    """The added noise is Student-t(nu) per pixel, with one kappa for the whole sample: the
    training and initial noise's convention (StudentTNoise)."""
    n = churn_only(nu, (20_000, 2, 4, 4), seed=8)
    for c, i, j in [(0, 0, 0), (1, 3, 2)]:
        assert stats.kstest(n[:, c, i, j], stats.t(df=nu).cdf).statistic < KS_NOISE
    # one kappa per sample: the channels share their scale 1/kappa (their log mean squares
    # correlate about 0.8), where independent t per pixel or per channel would not correlate
    ms = (n**2).mean(axis=(2, 3))
    assert np.corrcoef(np.log(ms[:, 0]), np.log(ms[:, 1]))[0, 1] > 0.6


def test_churn_per_channel_nu():
    n = churn_only([math.inf, 4.0], (20_000, 2, 1, 1), seed=9)[:, :, 0, 0]
    assert stats.kstest(n[:, 0], stats.norm.cdf).statistic < KS_NOISE
    assert stats.kstest(n[:, 1], stats.t(df=4).cdf).statistic < KS_NOISE


def test_stochastic_sampler_reaches_the_gaussian_target():
    """With Gaussian noise, churn is exact in law; at 64 steps the discretisation is small too."""
    target = GaussianTarget()
    x0 = target.MU + target.S * torch.randn(N_SAMPLES, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    start = edm_start(target, x0, seed=11)
    x = edm_sampler(target, start, "stochastic", num_steps=64, churn={"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0})
    assert stats.kstest(x.flatten().numpy(), target.cdf).statistic < KS_NOISE
    assert x.std().item() == pytest.approx(target.S, rel=0.02)


def test_student_t_churn_is_approximate_on_the_heavy_tailed_target(heavy):
    """Student-t churn is not exact: the sum of two independent Student-t draws is not Student-t
    (it is nearer Gaussian), so a churned state is not at the model's marginal and the tails come
    out light; the bias does not vanish with more steps (measured at 128 steps, S_churn 10: KS
    0.026, 99.9 % quantile 8.6 against 10.3). This pins its size at the default settings."""
    target, start, _ = heavy
    torch.manual_seed(12)
    x = edm_sampler(target, start[:10_000], "stochastic", num_steps=18,
                    churn={"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0}).flatten().numpy()
    ks = stats.kstest(x, target.cdf).statistic
    assert 1.95 / math.sqrt(10_000) < ks < 0.06
    assert 0.8 < np.quantile(x, 0.999) / target.quantile([0.999])[0] < 1.0


# --- Flow solvers -------------------------------------------------------------------------------

@pytest.mark.parametrize("solver,steps,rms", [("ab2", 10, 0.01), ("heun", 5, 0.04), ("euler", 10, 0.1)])
def test_flow_solvers_map_noise_to_the_gaussian_target(solver, steps, rms):
    """Pathwise against the exact map x0 = MU + S n at about 10 evaluations: Adams-Bashforth is
    several times closer than Heun at 9."""
    target = GaussianTarget()
    n = torch.randn(N_SAMPLES, 1, 1, 1, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    x = flow_sampler(AsFlow(target, target.MU), n, num_steps=steps, solver=solver)
    assert (x - (target.MU + target.S * n)).pow(2).mean().sqrt().item() < rms


def test_flow_as_edm_denoiser_is_the_edm_denoiser_at_sigma_over_one_plus_sigma():
    """x_t = (1 - t) (x0 + sigma n) at sigma = t / (1 - t): the flow's denoiser, read at
    (x / (1 + sigma), sigma / (1 + sigma)), is the EDM denoiser of the same target at (x, sigma)."""
    target = MixtureTarget()
    flow = FlowAsEDMDenoiser(AsFlow(target, float((target.w * target.m).sum())))
    x = torch.linspace(-30, 60, 91, dtype=torch.float64)
    for sigma in [0.002, 0.3, 1.0, 7.5, 80.0]:
        sigma = torch.tensor(sigma, dtype=torch.float64)
        torch.testing.assert_close(flow(x, sigma), target(x, sigma), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("levels", [{}, {"rho": 10.0, "sigma_max": 20.0}])
def test_flow_dpmpp_2m_is_edms_on_the_same_target(levels):
    """Flow's dpmpp_2m from noise n is EDM's dpmpp_2m from the same n on the same target and noise
    levels: one ODE in two parametrisations, one solver."""
    target = MixtureTarget()
    torch.manual_seed(5)
    n = target.noise.sample((500, 1, 1, 1), dtype=torch.float64)
    flow = flow_sampler(AsFlow(target, float((target.w * target.m).sum())), n, num_steps=10,
                        solver="dpmpp_2m", **levels)
    torch.testing.assert_close(flow, edm_sampler(target, n, "dpmpp_2m", num_steps=10, **levels),
                               rtol=1e-9, atol=1e-9)


def test_flow_dpmpp_2m_maps_student_t_noise_to_the_heavy_tailed_target(heavy):
    """At 35 evaluations as close as ab2 and Heun; at the default's 10 (rho 10, sigma_max 20) its
    error shows (measured: KS 0.023 against sampling noise 0.014, the 99.9 % quantile 11.8 against
    10.3): the benchmark on the trained models, not this target, set the default."""
    target, _, n = heavy
    model = AsFlow(target, float((target.w * target.m).sum()))
    p = np.array([0.01, 0.5, 0.99, 0.999])
    x = flow_sampler(model, n, num_steps=35, solver="dpmpp_2m").flatten().numpy()
    assert stats.kstest(x, target.cdf).statistic < KS_NOISE + 0.002
    assert np.all(np.abs(np.quantile(x, p) - target.quantile(p)) < quantile_tolerance(target, p, len(x)) + 0.05)
    x = flow_sampler(model, n, num_steps=10, solver="dpmpp_2m", rho=10.0, sigma_max=20.0).flatten().numpy()
    assert stats.kstest(x, target.cdf).statistic < 0.03
    assert abs(np.quantile(x, 0.999) / target.quantile([0.999])[0] - 1) < 0.2


def test_flow_ab2_maps_student_t_noise_to_the_heavy_tailed_target(heavy, solver="ab2", steps=35):
    target, _, n = heavy
    model = AsFlow(target, float((target.w * target.m).sum()))
    x = flow_sampler(model, n, num_steps=steps, solver=solver).flatten().numpy()
    assert stats.kstest(x, target.cdf).statistic < KS_NOISE + 0.002
    p = np.array([0.01, 0.5, 0.99, 0.999])
    assert np.all(np.abs(np.quantile(x, p) - target.quantile(p)) < quantile_tolerance(target, p, len(x)) + 0.05)


# --- Settings -----------------------------------------------------------------------------------

def test_network_evaluations():
    assert [network_evaluations("edm", 18, s) for s in EDM_SOLVERS] == [35, 18, 18, 35]
    assert [network_evaluations("flow", 18, s) for s in ("heun", "euler", "ab2", "dpmpp_2m")] == [35, 18, 18, 18]


def test_unknown_solver_is_an_error():
    with pytest.raises(ValueError, match="unknown EDM solver 'rk4'"):
        edm_sampler(GaussianTarget(), torch.zeros(1, 1, 1, 1), "rk4")
    with pytest.raises(ValueError, match="unknown flow solver 'dpmpp_3m'"):
        flow_sampler(AsFlow(GaussianTarget(), 0.5), torch.zeros(1, 1, 1, 1), solver="dpmpp_3m")


def test_sampling_solver_settings_validate():
    cfg = load_config({"sampling": {"edm": {"solver": "dpmpp_2m", "steps": 10}, "flow": {"solver": "ab2"}}})
    assert cfg["sampling"]["edm"]["solver"] == "dpmpp_2m" and cfg["sampling"]["flow"]["solver"] == "ab2"
    cfg = load_config({"sampling": {"edm": {"solver": "stochastic", "churn": {"S_churn": 10}}}})
    assert cfg["sampling"]["edm"]["churn"] == {"S_churn": 10, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.0}
    for family in ("edm", "flow"):  # the default, from benchmarks/sampler_budget.py
        opts = load_config({})["sampling"][family]
        assert (opts["solver"], opts["steps"], opts["sigma_max"], opts["rho"]) == ("dpmpp_2m", 10, 20.0, 10.0)


@pytest.mark.parametrize("sampling,key", [
    ({"edm": {"solver": "dpm"}}, "sampling.edm.solver"),
    ({"flow": {"solver": "stochastic"}}, "sampling.flow.solver"),
    ({"edm": {"churn": {"S_tmin": 0.1}}}, "sampling.edm.churn.S_tmin"),
    ({"edm": {"churn": {"S_churn": -1}}}, "sampling.edm.churn.S_churn"),
])
def test_bad_sampling_settings_are_one_line_errors_naming_the_key(sampling, key):
    with pytest.raises(ConfigError) as err:
        load_config({"sampling": sampling})
    message = str(err.value)
    assert "\n" not in message and key in message


@pytest.mark.parametrize("solver", EDM_SOLVERS)
def test_generate_uses_the_configured_solver(solver):
    """assemble.generate, which every caller uses (ensembles, snapshots, forecasts, the training's
    tail checks), runs the configured solver with the configured settings."""
    cfg = load_config({"models": {"tedm": {"family": "edm", "nu": 5}},
                       "architecture": {"base_channels": 4, "channel_mult": [1], "embedding_dim": 8},
                       "sampling": {"edm": {"solver": solver, "steps": 4, "churn": {"S_churn": 4.0}}}})
    spec = assemble.ModelSpec.from_config(cfg, "tedm")
    model = assemble.build(spec).eval()
    torch.manual_seed(14)
    ours = assemble.generate(model, spec, 2, (8, 8), cfg["sampling"], "cpu")
    torch.manual_seed(14)
    noise = model.noise.sample((2, len(spec.variables), 8, 8), dtype=torch.float64)
    opts = cfg["sampling"]["edm"]
    direct = edm_sampler(model, noise, solver, num_steps=4, sigma_min=opts["sigma_min"], sigma_max=opts["sigma_max"],
                         rho=opts["rho"], churn=opts["churn"])
    assert torch.equal(ours, direct)
    assert assemble.evaluations_per_sample(spec, cfg["sampling"]) == network_evaluations("edm", 4, solver)


def test_default_levels_at_10_evaluations_match_edms_levels_at_15():
    """The default's noise levels (sigma_max 20, rho 10) at 10 evaluations are as close to the
    exact map of the Gaussian target as EDM's (80, 7) at 15, and about half as far as EDM's
    levels at 10 (measured: rms 0.063, 0.060 and 0.113)."""
    target = GaussianTarget()
    x0 = target.MU + target.S * torch.randn(N_SAMPLES, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.manual_seed(3)
    n = target.noise.sample((N_SAMPLES, 1, 1, 1), dtype=torch.float64)
    rms = {}
    for steps, sigma_max, rho in [(10, 20.0, 10.0), (15, 80.0, 7.0), (10, 80.0, 7.0)]:
        start = (x0.reshape(-1, 1, 1, 1) + sigma_max * n) / sigma_max
        x = edm_sampler(target, start, "dpmpp_2m", num_steps=steps, sigma_max=sigma_max, rho=rho)
        exact = target.MU + (start * sigma_max - target.MU) * target.S / math.sqrt(target.S**2 + sigma_max**2)
        rms[steps, sigma_max] = (x - exact).pow(2).mean().sqrt().item()
    assert rms[10, 20.0] < 1.15 * rms[15, 80.0]
    assert rms[10, 20.0] < 0.6 * rms[10, 80.0]
