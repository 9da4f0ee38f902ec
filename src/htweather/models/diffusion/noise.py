"""Student-t noise: n = z / sqrt(kappa), z ~ N(0, I), kappa ~ Chi2(nu) / nu.

kappa is shared by every pixel: a multivariate t, not independent t per pixel. With one nu for
every channel, one kappa per sample for the whole sample (all channels and pixels), as the
paper draws it (`per_channel=False`); with a nu per channel, or when asked, one kappa per sample
and channel. nu = inf gives z itself (Gaussian, no kappa drawn, so the random stream is exactly
EDM's)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class StudentTNoise:
    def __init__(self, nu: float | Sequence[float], channels: int, per_channel: bool | None = None):
        nus = [float(nu)] * channels if isinstance(nu, (int, float)) else [float(v) for v in nu]
        if len(nus) != channels:
            raise ValueError(f"nu has {len(nus)} values for {channels} channels")
        for v in nus:
            if not v > 2:
                raise ValueError(f"nu must be > 2 (finite noise variance nu/(nu-2)), got {v}")
        one_nu = len(set(nus)) == 1
        if per_channel is None:  # the paper's convention where it applies
            per_channel = not one_nu
        if not per_channel and not one_nu:
            raise ValueError(f"one kappa per sample needs one nu for every channel, got {nus}")
        self.nu = nus
        self.channels = channels
        self.per_channel = per_channel

    @property
    def gaussian(self) -> bool:
        return all(math.isinf(v) for v in self.nu)

    def std(self) -> torch.Tensor:
        """Per-channel standard deviation sqrt(nu / (nu - 2)) of n, shape (1, C, 1, 1); exactly 1
        for nu = inf."""
        s = [1.0 if math.isinf(v) else math.sqrt(v / (v - 2.0)) for v in self.nu]
        return torch.tensor(s, dtype=torch.float64).reshape(1, -1, 1, 1)

    def kappa(self, batch: int, device=None) -> torch.Tensor:
        """Chi2(nu)/nu mixing variables, shape (batch, C, 1, 1) (per channel) or (batch, 1, 1, 1)
        (one per sample); 1 where nu = inf."""
        nu = torch.tensor(self.nu if self.per_channel else self.nu[:1], dtype=torch.float64, device=device)
        finite = torch.isfinite(nu)
        safe_nu = torch.where(finite, nu, torch.ones_like(nu))  # placeholder df where nu = inf
        chi2 = torch.distributions.Chi2(safe_nu).sample((batch,))
        kappa = torch.where(finite, chi2 / safe_nu, torch.ones_like(chi2))
        return kappa.reshape(batch, -1, 1, 1)

    def sample(self, shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
        """Noise of shape (B, C, H, W)."""
        z = torch.randn(shape, device=device, dtype=dtype)
        if self.gaussian:
            return z
        return z / self.kappa(shape[0], device=device).sqrt().to(dtype)
