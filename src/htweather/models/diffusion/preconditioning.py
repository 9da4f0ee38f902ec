"""Preconditioners: wrap a raw network F(x, c_noise) into a denoiser with well-scaled inputs,
outputs and targets at every noise level.

A conditional model (a forecast of the next state) also takes `cond`, the previous states in
normalised units: they are clean data, so they enter the network unscaled, as extra channels
beside the scaled noisy state (as in conditional EDM / CorrDiff)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .noise import StudentTNoise


class Preconditioner(nn.Module):
    """A raw network F(x, c_noise), the noise it is trained with, and the data scale sd: one
    number, or one per channel (per-channel preconditioning, PCP); optionally the learned loss
    weighting's head (`weighting.LogVarianceHead`), which sampling does not use."""

    def __init__(self, net: nn.Module, noise: StudentTNoise, sigma_data: float | Sequence[float] = 1.0,
                 loss_weighting: nn.Module | None = None):
        super().__init__()
        self.net = net
        self.noise = noise
        # training only (training.loss_weighting: learned): the loss's u per noise level (`weighting`)
        self.loss_weighting = loss_weighting
        if isinstance(sigma_data, (int, float)):
            self.sigma_data = float(sigma_data)
        else:  # a (1, C, 1, 1) buffer broadcasts through every formula below
            self.register_buffer("sigma_data", torch.tensor([float(v) for v in sigma_data]).reshape(1, -1, 1, 1),
                                 persistent=False)
        self.register_buffer("noise_std", noise.std().float(), persistent=False)

    def network(self, x_in: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is not None:
            x_in = torch.cat([x_in, cond.to(x_in.dtype)], dim=1)
        return self.net(x_in, c_noise).to(torch.float32)


class EDMPrecond(Preconditioner):
    """t-EDM: EDM's preconditioning with the effective noise scale s = sigma * sqrt(nu/(nu-2)):

        c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),
        c_in = 1 / sqrt(s^2 + sd^2),   c_noise = ln(sigma) / 4,
        D(x, sigma) = c_skip x + c_out F(c_in x, c_noise).

    With nu = inf, s = sigma and this is EDM."""

    def scale(self, sigma: torch.Tensor) -> torch.Tensor:
        """Effective noise scale s, broadcast to (B, C, 1, 1)."""
        return sigma.reshape(-1, 1, 1, 1) * self.noise_std.to(sigma.dtype)

    def coefficients(self, sigma: torch.Tensor):
        s, sd = self.scale(sigma), self.sigma_data
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (s**2 + sd**2).sqrt()
        c_noise = sigma.reshape(-1).log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        x = x.to(torch.float32)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        return c_skip * x + c_out * self.network(c_in * x, c_noise, cond)


class FlowPrecond(Preconditioner):
    """t-Flow: flow matching on x_t = (1 - t) x0 + t n with Student-t n.

    The network predicts the velocity v = n - x0 from c_in x_t, c_in = 1/sqrt((1-t)^2 sd^2 +
    t^2 Var(n)) (unit-variance input); the denoiser D(x, t) = x - t v estimates x0 and
    dx/dt = (x - D) / t = v. nu = inf is Gaussian flow matching (rectified flow)."""

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        t = t.to(torch.float32).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        x = x.to(torch.float32)
        c_in = 1 / (((1 - t) * self.sigma_data) ** 2 + (t * self.noise_std) ** 2).sqrt()
        return self.network(c_in * x, t.reshape(-1), cond)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        t4 = t.to(torch.float32).reshape(-1, 1, 1, 1)
        return x.to(torch.float32) - t4 * self.velocity(x, t, cond)
