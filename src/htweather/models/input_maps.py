"""How a model sees the (standardised) data: the baselines of REFERENCE.md section 4 that change
the data or the preconditioning rather than the noise.

- `InverseCDF` (EDM + INC): each variable through its empirical CDF on the training data, then
  the standard-normal quantile function, z = Phi^-1(F(x)); inverted after sampling,
  x = F^-1(Phi(z)). Every variable becomes Gaussian, so a Gaussian diffusion model suffices in
  the bulk; but F^-1 cannot go beyond the training extremes, which caps the generated tails.
- `SoftLog` (EDM + softlog, the transform school): each standardised variable through
  y = sign(z) log(1 + |z|), which compresses the tails to exponential-like ones, then
  re-standardised with the training mean and standard deviation of y (so sigma_data = 1 still
  holds); inverted exactly, z = sign(y') (exp(|y'|) - 1) with y' = y s + m, and unbounded: a
  generated value may go beyond the training extremes.
- `channel_sigma_data` (EDM + PCP, per-channel preconditioning): one sigma_data per channel, EDM's
  own definition (the standard deviation of the training data the model sees) taken channel by
  channel. Under the default per-variable standardisation every channel's is 1, so PCP is EDM;
  it differs where the model's channels are not standardised one by one (an input map that does
  not re-standardise). An earlier version took the spread of the bulk, IQR / 1.349, which is 0
  on mostly dry precipitation: floored at 0.05, it put c_in, c_out and the loss weights of that
  channel off by a factor of 20 and the model generated noise.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import special

from ..data.store import valid_values

KNOTS = 2**14 + 1  # quantile-table resolution of the inverse CDF (about 0.006 % in probability)


def _real_values(fields: np.ndarray, channel: int, mask: np.ndarray | None) -> np.ndarray:
    return valid_values(fields[:, channel], mask).astype(np.float64)


class InverseCDF:
    """Per-channel empirical-CDF Gaussianisation, z = Phi^-1(F(x)), and its inverse, both by linear
    interpolation on one quantile table: knot k holds the training quantile at the plotting
    position p_k = (k + 1/2) / K, except that the first and last knots hold the training minimum
    and maximum. The two directions are therefore exact inverses at the knots, the extremes map
    to finite scores (|z| <= Phi^-1(1 - 1/(2K)), about 4), and F^-1 stops at the training range."""

    def __init__(self, table: np.ndarray):
        self.table = np.asarray(table, dtype=np.float64)  # (channels, K)
        knots = self.table.shape[1]
        self.probs = (np.arange(knots) + 0.5) / knots

    @classmethod
    def fit(cls, fields: np.ndarray, mask: np.ndarray | None = None, knots: int = KNOTS) -> "InverseCDF":
        """fields: (time, channel, lat, lon) training data; masked cells do not count."""
        probs = (np.arange(knots) + 0.5) / knots
        table = []
        for c in range(fields.shape[1]):
            values = _real_values(fields, c, mask)
            row = np.quantile(values, probs)
            row[0], row[-1] = values.min(), values.max()
            table.append(row)
        return cls(np.stack(table))

    def _cdf(self, x: np.ndarray, channel: int) -> np.ndarray:
        # Tied knots (the dry mass of precipitation) share one value: map it to the middle of
        # its probability block, the mid-rank convention, rather than to either end.
        values, first, counts = np.unique(self.table[channel], return_index=True, return_counts=True)
        mid = (self.probs[first] + self.probs[first + counts - 1]) / 2
        return np.interp(x, values, mid)

    def forward(self, fields: np.ndarray) -> np.ndarray:
        """(..., channel, lat, lon) standardised values -> Gaussian scores, float32."""
        out = np.empty(fields.shape, dtype=np.float32)
        for c in range(fields.shape[-3]):
            out[..., c, :, :] = special.ndtri(self._cdf(fields[..., c, :, :], c))
        return out

    def inverse(self, scores: np.ndarray) -> np.ndarray:
        """Gaussian scores -> standardised values (float64), capped at the training extremes."""
        out = np.empty(scores.shape, dtype=np.float64)
        for c in range(scores.shape[-3]):
            out[..., c, :, :] = np.interp(special.ndtr(scores[..., c, :, :]), self.probs, self.table[c])
        return out

    def state(self) -> dict:
        return {"kind": "inc", "table": torch.from_numpy(self.table)}

    @classmethod
    def from_state(cls, state: dict) -> "InverseCDF":
        return cls(state["table"].numpy())


class SoftLog:
    """Per-channel y = (sign(z) log(1 + |z|) - m) / s with m, s the mean and standard deviation
    of sign(z) log(1 + |z|) on the training data; the inverse is exact."""

    def __init__(self, offset: np.ndarray, scale: np.ndarray):
        self.offset = np.asarray(offset, dtype=np.float64).reshape(-1, 1, 1)
        self.scale = np.asarray(scale, dtype=np.float64).reshape(-1, 1, 1)

    @staticmethod
    def softlog(z):
        return np.sign(z) * np.log1p(np.abs(z))

    @classmethod
    def fit(cls, fields: np.ndarray, mask: np.ndarray | None = None) -> "SoftLog":
        """fields: (time, channel, lat, lon) training data; masked cells do not count."""
        logs = [cls.softlog(_real_values(fields, c, mask)) for c in range(fields.shape[1])]
        return cls([v.mean() for v in logs], [max(v.std(), 1e-6) for v in logs])

    def forward(self, fields: np.ndarray) -> np.ndarray:
        """(..., channel, lat, lon) standardised values -> the model's values, float32."""
        return ((self.softlog(fields.astype(np.float64)) - self.offset) / self.scale).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """The model's values -> standardised values (float64)."""
        y = values.astype(np.float64) * self.scale + self.offset
        return np.sign(y) * np.expm1(np.abs(y))

    def state(self) -> dict:
        return {"kind": "softlog", "offset": torch.from_numpy(self.offset.ravel().copy()),
                "scale": torch.from_numpy(self.scale.ravel().copy())}

    @classmethod
    def from_state(cls, state: dict) -> "SoftLog":
        return cls(state["offset"].numpy(), state["scale"].numpy())


MAPS = {"inc": InverseCDF, "softlog": SoftLog}  # by models.NAME.normalisation ("standard": none)


def fit(normalisation: str, fields: np.ndarray, mask: np.ndarray | None = None):
    """The input map of a model's `normalisation`, fitted on its training fields; None for standard."""
    return MAPS[normalisation].fit(fields, mask) if normalisation in MAPS else None


def from_state(state: dict | None):
    """An input map back from a model file (a state without a kind is an INC table)."""
    return None if state is None else MAPS[state.get("kind", "inc")].from_state(state)


def channel_sigma_data(fields: np.ndarray, mask: np.ndarray | None = None) -> list[float]:
    """Per-channel standard deviation of the training data in the model's units (see the module
    docstring): EDM's sigma_data, channel by channel."""
    return [max(float(np.std(_real_values(fields, c, mask))), 1e-6) for c in range(fields.shape[1])]
