"""Training objectives. Each returns the per-element loss; the caller averages. `cond` (the
previous states, for a forecast model) is passed through to the network unchanged.

`draw` makes the random part of the loss (noise level and noise) for a batch shape; passing a
slice of one draw as `draws` lets data-parallel ranks use exactly the noise that one process
would give the same examples of the combined batch."""

from __future__ import annotations

import torch

from .preconditioning import EDMPrecond, FlowPrecond
from .weighting import weighted


class EDMLoss:
    """t-EDM loss: ln sigma ~ N(P_mean, P_std^2), x = x0 + sigma n with Student-t n,
    loss = lambda(sigma) |D(x, sigma) - x0|^2 with lambda = 1 / c_out^2 = (s^2 + sd^2) / (s sd)^2
    (divided by exp(u) plus u where the preconditioner has a learned weighting: `weighting`)."""

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2):
        self.P_mean = P_mean
        self.P_std = P_std

    def draw(self, precond: EDMPrecond, shape, device=None, dtype=torch.float32):
        """(sigma, n): sigma (B, 1, 1, 1) and Student-t noise n of `shape`."""
        rnd_normal = torch.randn([shape[0], 1, 1, 1], device=device)
        sigma = (rnd_normal * self.P_std + self.P_mean).exp()
        return sigma, precond.noise.sample(shape, device=device, dtype=dtype)

    def __call__(self, precond: EDMPrecond, x0: torch.Tensor, cond: torch.Tensor | None = None,
                 draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        sigma, n = draws if draws is not None else self.draw(precond, x0.shape, x0.device, x0.dtype)
        denoised = precond(x0 + sigma * n, sigma, cond)
        s, sd = precond.scale(sigma), precond.sigma_data
        weight = (s**2 + sd**2) / (s * sd) ** 2
        return weighted(weight * (denoised - x0) ** 2, precond.loss_weighting, sigma.log() / 4)


class FlowMatchingLoss:
    """t-Flow loss: t ~ U(0, 1), x_t = (1 - t) x0 + t n, loss = |v(x_t, t) - (n - x0)|^2 (learned
    weighting as in `EDMLoss`). With `time="logit_normal"`, logit t ~ N(mean, std^2) instead:
    the same regression target at every t, weighted towards the middle of the path."""

    def __init__(self, time: str = "uniform", mean: float = 0.0, std: float = 1.0):
        if time not in ("uniform", "logit_normal"):
            raise ValueError(f"flow matching time distribution {time!r}: uniform or logit_normal")
        self.time, self.mean, self.std = time, mean, std

    def draw(self, precond: FlowPrecond, shape, device=None, dtype=torch.float32):
        """(t, n): t (B, 1, 1, 1) and Student-t noise n of `shape`."""
        if self.time == "uniform":
            t = torch.rand([shape[0], 1, 1, 1], device=device)
        else:
            t = torch.sigmoid(torch.randn([shape[0], 1, 1, 1], device=device) * self.std + self.mean)
        return t, precond.noise.sample(shape, device=device, dtype=dtype)

    def __call__(self, precond: FlowPrecond, x0: torch.Tensor, cond: torch.Tensor | None = None,
                 draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        t, n = draws if draws is not None else self.draw(precond, x0.shape, x0.device, x0.dtype)
        x_t = (1 - t) * x0 + t * n
        return weighted((precond.velocity(x_t, t, cond) - (n - x0)) ** 2, precond.loss_weighting, t)
