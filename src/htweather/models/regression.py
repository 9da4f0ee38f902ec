"""CorrDiff's first stage (Mardani et al. 2025): a regression U-Net for the conditional mean of
the fine field given its coarse version, mu(c) ~ E[x | c]. A residual downscaling model
(models.NAME.residual) trains its diffusion on r = x - mu(c) and generates x = mu(c) + r: the
diffusion is left the small-scale, stochastic part, which is where the extremes the coarse field
smooths away live, and Student-t noise acts on it alone.

The network is the models' U-Net (same architecture), given the coarse field on the fine grid
and a constant noise level; it is trained by mean squared error, masked cells and missing values
carrying no weight, in `training.regression.train_regression`."""

from __future__ import annotations

import torch
from torch import nn

from .networks import UNet


class RegressionNet(nn.Module):
    """mu(c): (B, C_cond, H, W) -> (B, C, H, W), in the fields' normalised units."""

    def __init__(self, net: UNet):
        super().__init__()
        self.net = net

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        c_noise = torch.zeros(cond.shape[0], device=cond.device, dtype=cond.dtype)
        return self.net(cond, c_noise).to(torch.float32)


def build_regression(channels: int, condition_channels: int, architecture: dict) -> RegressionNet:
    arch = architecture
    return RegressionNet(UNet(condition_channels, channels, base_channels=arch["base_channels"],
                              channel_mult=tuple(arch["channel_mult"]), num_blocks=arch["num_blocks"],
                              embedding_dim=arch["embedding_dim"], dropout=arch["dropout"]))


@torch.no_grad()
def conditional_mean(regression: RegressionNet, cond, batch: int = 256, device=None):
    """mu(c) of a whole split (numpy (N, C_cond, H, W) float32 in, (N, C, H, W) float32 out)."""
    import numpy as np

    device = device or torch.device("cpu")
    out = [regression(torch.from_numpy(np.ascontiguousarray(cond[i:i + batch])).to(device)).cpu().numpy()
           for i in range(0, len(cond), batch)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0,), np.float32)
