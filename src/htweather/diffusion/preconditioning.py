"""Preconditioners: wrap a raw network F(x, c_noise) into a denoiser with well-scaled inputs,
outputs and targets at every noise level."""

from __future__ import annotations

import torch
from torch import nn

from .noise import StudentTNoise


class Preconditioner(nn.Module):
    """A raw network F(x, c_noise), the noise it is trained with, and the data scale sd."""

    def __init__(self, net: nn.Module, noise: StudentTNoise, sigma_data: float = 1.0):
        super().__init__()
        self.net = net
        self.noise = noise
        self.sigma_data = float(sigma_data)
        self.register_buffer("noise_std", noise.std().float(), persistent=False)


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

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        x = x.to(torch.float32)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        F = self.net(c_in * x, c_noise)
        return c_skip * x + c_out * F.to(torch.float32)


class FlowPrecond(Preconditioner):
    """t-Flow: flow matching on x_t = (1 - t) x0 + t n with Student-t n.

    The network predicts the velocity v = n - x0 from c_in x_t, c_in = 1/sqrt((1-t)^2 sd^2 +
    t^2 Var(n)) (unit-variance input); the denoiser D(x, t) = x - t v estimates x0 and
    dx/dt = (x - D) / t = v. nu = inf is Gaussian flow matching (rectified flow)."""

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float32).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        x = x.to(torch.float32)
        c_in = 1 / (((1 - t) * self.sigma_data) ** 2 + (t * self.noise_std) ** 2).sqrt()
        return self.net(c_in * x, t.reshape(-1)).to(torch.float32)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t4 = t.to(torch.float32).reshape(-1, 1, 1, 1)
        return x.to(torch.float32) - t4 * self.velocity(x, t)
