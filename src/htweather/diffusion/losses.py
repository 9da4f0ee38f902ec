"""Training objectives. Each returns the per-element loss; the caller averages. `cond` (the
previous states, for a forecast model) is passed through to the network unchanged."""

from __future__ import annotations

import torch

from .preconditioning import EDMPrecond, FlowPrecond


class EDMLoss:
    """t-EDM loss: ln sigma ~ N(P_mean, P_std^2), x = x0 + sigma n with Student-t n,
    loss = lambda(sigma) |D(x, sigma) - x0|^2 with lambda = 1 / c_out^2 = (s^2 + sd^2) / (s sd)^2."""

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2):
        self.P_mean = P_mean
        self.P_std = P_std

    def __call__(self, precond: EDMPrecond, x0: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        rnd_normal = torch.randn([x0.shape[0], 1, 1, 1], device=x0.device)
        sigma = (rnd_normal * self.P_std + self.P_mean).exp()
        n = precond.noise.sample(x0.shape, device=x0.device, dtype=x0.dtype)
        denoised = precond(x0 + sigma * n, sigma, cond)
        s, sd = precond.scale(sigma), precond.sigma_data
        weight = (s**2 + sd**2) / (s * sd) ** 2
        return weight * (denoised - x0) ** 2


class FlowMatchingLoss:
    """t-Flow loss: t ~ U(0, 1), x_t = (1 - t) x0 + t n, loss = |v(x_t, t) - (n - x0)|^2."""

    def __call__(self, precond: FlowPrecond, x0: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.rand([x0.shape[0], 1, 1, 1], device=x0.device)
        n = precond.noise.sample(x0.shape, device=x0.device, dtype=x0.dtype)
        x_t = (1 - t) * x0 + t * n
        return (precond.velocity(x_t, t, cond) - (n - x0)) ** 2
