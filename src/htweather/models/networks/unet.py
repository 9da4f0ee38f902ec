"""A small U-Net for multi-channel 2-D fields, conditioned on the noise level.

Residual blocks with group norm and a noise embedding that scales and shifts the features
(as in EDM's DDPM++ blocks), average-pool downsampling, nearest-neighbour upsampling and skip
connections. Fields whose size is not a multiple of 2^(levels-1) are padded by edge
replication and cropped back, so any regional grid works."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1


class NoiseEmbedding(nn.Module):
    """Sinusoidal features of the scalar noise level at geometric frequencies, then an MLP."""

    def __init__(self, dim: int, max_period: float = 1000.0):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half) * max_period ** 0.5
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        args = c_noise.reshape(-1, 1).float() * self.freqs
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=1))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        h = self.conv2(self.dropout(h))
        return (h + self.skip(x)) / math.sqrt(2)


class UNet(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, base_channels: int = 32,
                 channel_mult: tuple[int, ...] = (1, 2, 2), num_blocks: int = 1,
                 embedding_dim: int = 128, dropout: float = 0.0, output_norm: bool = True):
        super().__init__()
        self.levels = len(channel_mult)
        self.embed = NoiseEmbedding(embedding_dim)
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        widths = [base_channels * m for m in channel_mult]

        self.down = nn.ModuleList()
        skip_widths = [base_channels]
        c = base_channels
        for level, w in enumerate(widths):
            if level > 0:
                skip_widths.append(c)  # the downsampled features are a skip too
            blocks = nn.ModuleList()
            for _ in range(num_blocks):
                blocks.append(ResBlock(c, w, embedding_dim, dropout))
                c = w
                skip_widths.append(c)
            self.down.append(blocks)
        self.middle = nn.ModuleList([ResBlock(c, c, embedding_dim, dropout), ResBlock(c, c, embedding_dim, dropout)])

        self.up = nn.ModuleList()
        for w in reversed(widths):
            blocks = nn.ModuleList()
            for _ in range(num_blocks + 1):
                blocks.append(ResBlock(c + skip_widths.pop(), w, embedding_dim, dropout))
                c = w
            self.up.append(blocks)
        # a group norm is blind to its input's scale (GN(a h) = GN(h)): without it the output
        # layer sees each field's amplitude (architecture.output_norm)
        self.head_norm = nn.GroupNorm(_groups(c), c) if output_norm else nn.Identity()
        self.head = nn.Conv2d(c, out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** (self.levels - 1)
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        emb = self.embed(c_noise)
        h = self.stem(x)
        skips = [h]
        for level, blocks in enumerate(self.down):
            if level > 0:
                h = F.avg_pool2d(h, 2)
                skips.append(h)
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
        for block in self.middle:
            h = block(h, emb)
        for i, blocks in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            for block in blocks:
                skip = skips.pop()
                h = block(torch.cat([h, skip], dim=1), emb)
        out = self.head(F.silu(self.head_norm(h)))
        return out[..., :height, :width]
