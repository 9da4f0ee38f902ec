"""Samplers: integrate the probability-flow ODE from noise to data. State in float64 as in
EDM; the only heavy-tailed change is the Student-t initial state (and, for the stochastic
sampler, Student-t churn). `cond` (previous states, for forecasts) is held fixed along the
trajectory.

Why the solvers hold for Student-t noise. t-EDM's forward process is x = x0 + sigma n with n
Student-t (independent of x0), so x moves along the straight line x0 + sigma n with velocity
dx/dsigma = n. The ODE whose velocity is the average of that over the paths through x,

    dx/dsigma = E[n | x; sigma] = (x - E[x0 | x; sigma]) / sigma = (x - D(x, sigma)) / sigma,

carries the marginal of x at every sigma to the one at every other sigma (the continuity
equation needs only that the paths are x0 + sigma n, not the law of n). This is t-EDM's
probability-flow ODE, the very ODE of Gaussian EDM, in the level sigma that multiplies n (not
the preconditioning's effective scale sigma sqrt(nu / (nu - 2))). The noise's law enters only
through the denoiser, which learns E[x0 | x] whatever that law is, and through the start
x = sigma_max n with n drawn from the model's own Student-t noise. So every solver of this ODE (Euler, Heun,
DPM-Solver++, which only assume the ODE's form) applies to t-EDM unchanged. Likewise t-Flow's
x_t = (1 - t) x0 + t n moves with velocity n - x0, and dx/dt = E[n - x0 | x_t] = v(x, t) is its
probability-flow ODE for any law of n."""

from __future__ import annotations

import math

import torch

from .preconditioning import EDMPrecond, FlowPrecond

EDM_SOLVERS = ("heun", "euler", "dpmpp_2m", "stochastic")
FLOW_SOLVERS = ("heun", "euler", "ab2", "dpmpp_2m")


def edm_sigma_steps(num_steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0,
                    rho: float = 7.0, device=None) -> torch.Tensor:
    """sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho, i < N, then 0."""
    i = torch.arange(num_steps, dtype=torch.float64, device=device)
    steps = (sigma_max ** (1 / rho) + i / (num_steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([steps, torch.zeros_like(steps[:1])])


@torch.no_grad()
def edm_heun_sampler(denoiser: EDMPrecond, noise: torch.Tensor, num_steps: int = 18,
                     sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                     cond: torch.Tensor | None = None) -> torch.Tensor:
    """EDM's deterministic Heun sampler for dx/dsigma = (x - D(x, sigma)) / sigma, starting at
    x = sigma_max * noise. 2 N - 1 network evaluations."""
    sigmas = edm_sigma_steps(num_steps, sigma_min, sigma_max, rho, device=noise.device)
    x = noise.to(torch.float64) * sigmas[0]
    for sigma_cur, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x = heun_step(denoiser, x, sigma_cur, sigma_next, cond)
    return x


def heun_step(denoiser: EDMPrecond, x: torch.Tensor, sigma_cur, sigma_next, cond: torch.Tensor | None):
    """One step of dx/dsigma = (x - D(x, sigma)) / sigma from sigma_cur to sigma_next: Euler,
    then Heun's second-order correction, except on the step to sigma = 0: two network
    evaluations, one on that last step."""
    d_cur = (x - denoiser(x, sigma_cur, cond).to(torch.float64)) / sigma_cur
    x_next = x + (sigma_next - sigma_cur) * d_cur
    if sigma_next > 0:
        d_next = (x_next - denoiser(x_next, sigma_next, cond).to(torch.float64)) / sigma_next
        x_next = x + (sigma_next - sigma_cur) * (0.5 * d_cur + 0.5 * d_next)
    return x_next


@torch.no_grad()
def edm_euler_sampler(denoiser: EDMPrecond, noise: torch.Tensor, num_steps: int = 18,
                      sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                      cond: torch.Tensor | None = None) -> torch.Tensor:
    """Euler on dx/dsigma = (x - D) / sigma over EDM's noise levels: Heun without its correction.
    N network evaluations."""
    sigmas = edm_sigma_steps(num_steps, sigma_min, sigma_max, rho, device=noise.device)
    x = noise.to(torch.float64) * sigmas[0]
    for sigma_cur, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (sigma_next - sigma_cur) * (x - denoiser(x, sigma_cur, cond).to(torch.float64)) / sigma_cur
    return x


def dpmpp_2m_step(x: torch.Tensor, sigma_cur: torch.Tensor, sigma_next: torch.Tensor, denoised: torch.Tensor,
                  slope: torch.Tensor | None) -> torch.Tensor:
    """One step of the exact solution of dx/dsigma = (x - D) / sigma, written in lambda = -ln sigma
    over h = ln(sigma_cur / sigma_next):

        x_next = (sigma_next / sigma_cur) x + int_0^h e^(u - h) D(lambda_cur + u) du,

    with D held at its value at the step's midpoint in lambda, extrapolated linearly from the
    current and the previous denoised states (slope = (D_cur - D_prev) / h_prev; D_cur itself,
    DDIM's first-order step, when slope is None):

        x_next = (sigma_next / sigma_cur) x + (1 - e^-h) (D_cur + h/2 slope).

    This is DPM-Solver++(2M)'s update, (1 + 1/2r) D_cur - (1/2r) D_prev with r = h_prev / h. The
    linear part of the ODE is integrated exactly, so only D's variation in lambda, which is
    slow, is approximated: second order at one network evaluation per step. (Integrating the
    linear extrapolation exactly instead, weight h - 1 + e^-h on the slope, is second order too,
    but overshoots on the long steps of EDM's grid: 1.3 to 2.2 times the error on the Gaussian
    test target at 5 to 35 evaluations.)"""
    h = (sigma_cur / sigma_next).log()
    if slope is not None:
        denoised = denoised + h / 2 * slope
    return sigma_next / sigma_cur * x - torch.expm1(-h) * denoised  # -expm1(-h) = 1 - e^-h, exact for small h


@torch.no_grad()
def edm_dpmpp_2m_sampler(denoiser: EDMPrecond, noise: torch.Tensor, num_steps: int = 18,
                         sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                         cond: torch.Tensor | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) in EDM's parametrisation: over [sigma_i, sigma_i+1], with
    lambda = -ln sigma and h_i = ln(sigma_i / sigma_i+1),

        x_i+1 = (sigma_i+1 / sigma_i) x_i + (1 - e^-h_i) (D_i + h_i/2 (D_i - D_i-1) / h_i-1),

    the exact solution of dx/dsigma = (x - D) / sigma with D held at its value at the step's
    midpoint in lambda, extrapolated linearly through the current and the previous denoised
    states (`dpmpp_2m_step`; on the first step D_0 itself). The step to sigma = 0 is
    x = D_N-1 (lambda = inf: the solution is the denoised state). One network evaluation per
    step: N in all, against Heun's 2 N - 1.

    The ODE is t-EDM's own (module docstring): the denoiser estimates E[x0 | x] under the
    model's Student-t noise, and nothing else about the noise's law enters the step."""
    sigmas = edm_sigma_steps(num_steps, sigma_min, sigma_max, rho, device=noise.device)
    x = noise.to(torch.float64) * sigmas[0]
    denoised_prev = slope = None
    for i in range(num_steps):
        denoised = denoiser(x, sigmas[i], cond).to(torch.float64)
        if sigmas[i + 1] == 0:
            return denoised
        if denoised_prev is not None:
            slope = (denoised - denoised_prev) / (sigmas[i - 1] / sigmas[i]).log()
        x = dpmpp_2m_step(x, sigmas[i], sigmas[i + 1], denoised, slope)
        denoised_prev = denoised
    return x


def churn_gamma(sigma: torch.Tensor, num_steps: int, S_churn: float, S_min: float, S_max: float) -> float:
    """EDM's churn factor: sigma is raised to (1 + gamma) sigma on the steps with S_min <= sigma
    <= S_max, gamma = min(S_churn / N, sqrt 2 - 1) (at most doubling the noise variance)."""
    return min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= sigma <= S_max else 0.0


@torch.no_grad()
def edm_stochastic_sampler(denoiser: EDMPrecond, noise: torch.Tensor, num_steps: int = 18,
                           sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                           S_churn: float = 0.0, S_min: float = 0.0, S_max: float = math.inf,
                           S_noise: float = 1.0, cond: torch.Tensor | None = None) -> torch.Tensor:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): on each step, first raise the
    noise level, sigma_hat = (1 + gamma) sigma_i, by adding fresh noise of the model's own law,

        x_hat = x_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise n,     n ~ the model's noise,

    then take a Heun step of dx/dsigma = (x - D) / sigma from sigma_hat to sigma_i+1 (Euler on
    the last step). 2 N - 1 network evaluations; S_churn = 0 is the deterministic Heun sampler.

    n is drawn as the training noise and the initial noise are (`StudentTNoise.sample`: one kappa
    per sample, or per sample and channel), at every step as EDM's reference code draws it, so
    with nu = inf the random stream and the result are EDM's bit for bit. With Gaussian noise
    the step is exact in law: N(0, sigma^2) + N(0, sigma_hat^2 - sigma^2) = N(0, sigma_hat^2), so
    x_hat has the model's marginal at sigma_hat. With Student-t noise it is an approximation:
    a sum of independent Student-t draws is not Student-t (it is closer to Gaussian), so x_hat's
    law differs from the marginal at sigma_hat by a term of order sigma_hat^2 - sigma^2, which
    the following ODE steps carry on. On the tests' heavy-tailed target the samples' tails come
    out light and more steps do not remove it: prefer a deterministic solver for t-EDM."""
    sigmas = edm_sigma_steps(num_steps, sigma_min, sigma_max, rho, device=noise.device)
    x = noise.to(torch.float64) * sigmas[0]
    for sigma_cur, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        gamma = churn_gamma(sigma_cur, num_steps, S_churn, S_min, S_max)
        sigma_hat = sigma_cur + gamma * sigma_cur
        churn = denoiser.noise.sample(x.shape, device=x.device, dtype=torch.float64)
        x_hat = x + (sigma_hat**2 - sigma_cur**2).sqrt() * S_noise * churn
        x = heun_step(denoiser, x_hat, sigma_hat, sigma_next, cond)
    return x


def edm_sampler(denoiser: EDMPrecond, noise: torch.Tensor, solver: str = "heun", num_steps: int = 18,
                sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                churn: dict | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
    """The EDM-family sampler `solver` (one of EDM_SOLVERS) over EDM's noise levels; `churn`
    (S_churn, S_min, S_max, S_noise) is read by the stochastic sampler only."""
    levels = {"num_steps": num_steps, "sigma_min": sigma_min, "sigma_max": sigma_max, "rho": rho, "cond": cond}
    if solver == "heun":
        return edm_heun_sampler(denoiser, noise, **levels)
    if solver == "euler":
        return edm_euler_sampler(denoiser, noise, **levels)
    if solver == "dpmpp_2m":
        return edm_dpmpp_2m_sampler(denoiser, noise, **levels)
    if solver == "stochastic":
        return edm_stochastic_sampler(denoiser, noise, **levels, **(churn or {}))
    raise ValueError(f"unknown EDM solver {solver!r} (one of {', '.join(EDM_SOLVERS)})")


class FlowAsEDMDenoiser:
    """A flow model seen as an EDM denoiser. x_t = (1 - t) x0 + t n is (1 - t) times the EDM
    state x0 + sigma n at sigma = t / (1 - t), with the same x0 and n, so

        D_EDM(x, sigma) = D_flow(x / (1 + sigma), sigma / (1 + sigma)),   D_flow(x, t) = x - t v(x, t),

    and the flow's ODE dx/dt = v is EDM's dx/dsigma = (x - D) / sigma in the scaled state
    x / (1 - t). Any EDM solver then integrates a flow model on EDM's noise levels."""

    def __init__(self, model: FlowPrecond):
        self.model, self.noise = model, model.noise

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x_t, t = x / (1 + sigma), sigma / (1 + sigma)
        return x_t - t * self.model.velocity(x_t, t, cond).to(torch.float64)


@torch.no_grad()
def flow_sampler(model: FlowPrecond, noise: torch.Tensor, num_steps: int = 18,
                 solver: str = "heun", cond: torch.Tensor | None = None, sigma_min: float = 0.002,
                 sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from t = 1 (x = noise) to t = 0. Euler, Heun and ab2 step on a
    uniform grid of step h = -1/N. Euler: N network evaluations; Heun: 2 N - 1 (its correction is
    skipped on the last step, matching the EDM sampler's budget); ab2, the two-step
    Adams-Bashforth method,

        x_i+1 = x_i + h (3/2 v_i - 1/2 v_i-1)      (Euler on the first step),

    second order at N evaluations: it extrapolates the velocity linearly in t from the current
    and the previous evaluations instead of evaluating it again at the step's end.

    dpmpp_2m is DPM-Solver++(2M) on EDM's noise levels sigma_i (sigma_min, sigma_max, rho), that
    is at t_i = sigma_i / (1 + sigma_i), through `FlowAsEDMDenoiser`: N evaluations. A uniform
    grid in t spends most steps where little happens (t near 1); EDM's levels crowd them where
    the fields take shape, and the multistep update integrates the ODE's linear part exactly.
    It starts as EDM does, at x = t_0 n with t_0 = sigma_max / (1 + sigma_max), leaving out the
    (1 - t_0) x0 = x0 / (1 + sigma_max) of the true state there."""
    if solver not in FLOW_SOLVERS:
        raise ValueError(f"unknown flow solver {solver!r} (one of {', '.join(FLOW_SOLVERS)})")
    if solver == "dpmpp_2m":
        return edm_dpmpp_2m_sampler(FlowAsEDMDenoiser(model), noise, num_steps, sigma_min, sigma_max, rho, cond)
    ts = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64, device=noise.device)
    x = noise.to(torch.float64)
    v_prev = None
    for t_cur, t_next in zip(ts[:-1], ts[1:]):
        v_cur = model.velocity(x, t_cur, cond).to(torch.float64)
        if solver == "ab2" and v_prev is not None:
            x_next = x + (t_next - t_cur) * (1.5 * v_cur - 0.5 * v_prev)
        else:
            x_next = x + (t_next - t_cur) * v_cur
        if solver == "heun" and t_next > 0:
            v_next = model.velocity(x_next, t_next, cond).to(torch.float64)
            x_next = x + (t_next - t_cur) * (0.5 * v_cur + 0.5 * v_next)
        x, v_prev = x_next, v_cur
    return x


def network_evaluations(family: str, steps: int, solver: str = "heun") -> int:
    """Network evaluations per sample: N for the one-evaluation-per-step solvers (Euler,
    DPM-Solver++(2M), Adams-Bashforth), 2 N - 1 for Heun and the stochastic sampler (no
    correction on the last step). `family` is kept for the callers; the count depends on the
    solver alone."""
    if solver in ("euler", "dpmpp_2m", "ab2"):
        return steps
    return 2 * steps - 1
