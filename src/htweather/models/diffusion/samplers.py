"""Samplers: integrate the probability-flow ODE from noise to data. State in float64 as in
EDM; the only heavy-tailed change is the Student-t initial state. `cond` (previous states, for
forecasts) is held fixed along the trajectory."""

from __future__ import annotations

import torch

from .preconditioning import EDMPrecond, FlowPrecond


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
        d_cur = (x - denoiser(x, sigma_cur, cond).to(torch.float64)) / sigma_cur
        x_next = x + (sigma_next - sigma_cur) * d_cur
        if sigma_next > 0:  # second-order correction, except on the last step
            d_next = (x_next - denoiser(x_next, sigma_next, cond).to(torch.float64)) / sigma_next
            x_next = x + (sigma_next - sigma_cur) * (0.5 * d_cur + 0.5 * d_next)
        x = x_next
    return x


@torch.no_grad()
def flow_sampler(model: FlowPrecond, noise: torch.Tensor, num_steps: int = 18,
                 solver: str = "heun", cond: torch.Tensor | None = None) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from t = 1 (x = noise) to t = 0 on a uniform grid. Euler: N
    network evaluations; Heun: 2 N - 1 (its correction is skipped on the last step, matching
    the EDM sampler's budget)."""
    if solver not in ("euler", "heun"):
        raise ValueError(f"unknown flow solver {solver!r}")
    ts = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64, device=noise.device)
    x = noise.to(torch.float64)
    for t_cur, t_next in zip(ts[:-1], ts[1:]):
        v_cur = model.velocity(x, t_cur, cond).to(torch.float64)
        x_next = x + (t_next - t_cur) * v_cur
        if solver == "heun" and t_next > 0:
            v_next = model.velocity(x_next, t_next, cond).to(torch.float64)
            x_next = x + (t_next - t_cur) * (0.5 * v_cur + 0.5 * v_next)
        x = x_next
    return x


def network_evaluations(family: str, steps: int, solver: str = "heun") -> int:
    if family == "flow" and solver == "euler":
        return steps
    return 2 * steps - 1
