"""Learned loss weighting per noise level (EDM2, Karras et al. 2024, eq. 21): a small head u(c)
on the noise conditioning c (EDM: ln(sigma) / 4; flow matching: t) turns a per-element loss L
into

    L / exp(u(c)) + u(c).

For each noise level the minimising u is ln E[L | c], so every level's loss is divided by its own
expected size: levels whose loss is large (or noisy, as Student-t draws far out make it) stop
dominating the gradient, and levels whose loss is small are not neglected. The objective's
minimiser in the network is unchanged (u does not depend on the network's output); only how its
gradient is shared between noise levels changes. u starts at 0 (its output layer is zero), so
training starts from the fixed weighting.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LogVarianceHead(nn.Module):
    """u(c): random Fourier features of the noise conditioning c, then one linear layer."""

    def __init__(self, features: int = 128, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)  # fixed features: a rebuilt head matches its weights
        self.register_buffer("frequencies", 2 * math.pi * torch.randn(features, generator=generator))
        self.register_buffer("phases", 2 * math.pi * torch.rand(features, generator=generator))
        self.linear = nn.Linear(features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """u (B, 1, 1, 1) for the noise conditioning c (B, ...), one value per sample."""
        c = c.reshape(-1, 1).to(torch.float32)
        features = math.sqrt(2) * torch.cos(c * self.frequencies + self.phases)
        return self.linear(features).reshape(-1, 1, 1, 1)


def weighted(loss: torch.Tensor, head: LogVarianceHead | None, c: torch.Tensor) -> torch.Tensor:
    """L / exp(u(c)) + u(c) with the head in training mode; L as it is without a head or in eval
    mode, so that validation losses (of the EMA model, in eval mode) stay the fixed weighting's:
    comparable between checks and positive, as the stop rule and the loss figure need."""
    if head is None or not head.training:
        return loss
    u = head(c)
    return loss / u.exp() + u
