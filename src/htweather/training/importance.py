"""Importance sampling of training fields by how extreme they are (`training.extremes`).

Storm fields are rare: with uniform batches a model sees the field that holds the split's
largest rain a handful of times in a whole training. Here a share `fraction` of each batch is,
in expectation, drawn from the extreme fields E (those with at least one real cell beyond the
train split's `quantile` on a tail the variable is evaluated on), the rest uniformly:

    q_i = (1 - f) / N + f 1[i in E] / |E|,

and example i's loss is weighted by w_i = 1 / (N q_i). Then E_q[w_i L_i] = sum_i L_i / N: the
objective, and so the model it converges to, is the uniform one's; only the gradient's variance
changes (storms are seen more often, each with a smaller weight).
"""

from __future__ import annotations

import numpy as np
import torch

from ..tail_metrics import sides


def extreme_fields(fields: np.ndarray, tails: list[str], quantile: float, mask: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the fields (N, C, H, W) with a real cell beyond the `quantile` of their split's
    real values on a tail of `tails` (one per channel: upper, lower or both). Cells outside
    `mask` (H, W; the store keeps them as 0) and missing values (NaN) count neither towards the
    quantile nor as extreme."""
    extreme = np.zeros(len(fields), dtype=bool)
    real = None if mask is None else np.asarray(mask, dtype=bool).ravel()
    for c, channel_tails in enumerate(tails):
        values = fields[:, c].reshape(len(fields), -1)
        if real is not None:
            values = values[:, real]
        for side in sides(channel_tails):
            p = quantile if side == "upper" else 1 - quantile
            threshold = np.nanquantile(values, p)
            with np.errstate(invalid="ignore"):
                beyond = values > threshold if side == "upper" else values < threshold
            extreme |= beyond.any(axis=1)
    return extreme


class ExtremeSampling:
    """Draw probabilities q (N,) and unbiasing weights 1 / (N q) of N examples."""

    def __init__(self, extreme: np.ndarray, fraction: float):
        extreme = np.asarray(extreme, dtype=bool)
        n = len(extreme)
        if not 0 <= fraction < 1:
            raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
        if extreme.any():
            q = (1 - fraction) / n + fraction * extreme / extreme.sum()
        else:  # nothing extreme: uniform
            q = np.full(n, 1.0 / n)
        self.extreme_count = int(extreme.sum())
        self.probabilities = torch.from_numpy(q)
        self.weights = torch.from_numpy(1.0 / (n * q)).float()

    def draw(self, k: int, generator: torch.Generator) -> torch.Tensor:
        """k example positions drawn with replacement from q."""
        return torch.multinomial(self.probabilities, k, replacement=True, generator=generator)
