"""Bootstrap intervals that respect the data's dependence.

Generated members are independent fields and are resampled whole; the test split is a time
series of spatially correlated fields and is resampled in blocks of consecutive time steps
(moving-block bootstrap). Resampling single grid values instead would treat ~10^6 correlated
values as independent and give intervals far too narrow. A resample is a count per unit (whole
field or time step), so that `SortedUnits` gives its quantiles without sorting again.
"""

from __future__ import annotations

import numpy as np


class SortedUnits:
    """The values of a set of resampling units (whole fields), sorted once.

    A resample is a count per unit (how often the bootstrap drew it); its quantiles and
    exceedance fractions are then a gather, a cumulative sum and a binary search, with no new
    sort or partition per replicate. Quantiles are inverted-CDF (the smallest value whose
    empirical CDF reaches p), the same definition as `tails`. NaN values (missing at that time)
    are left out; their unit keeps its other values."""

    def __init__(self, fields: np.ndarray):
        flat = fields.reshape(fields.shape[0], -1)
        order = np.argsort(flat, axis=None, kind="stable")  # NaN sorts last
        values = flat.ravel()[order]
        valid = int(np.count_nonzero(~np.isnan(values)))
        self.values = values[:valid]
        self.unit = (order[:valid] // flat.shape[1]).astype(np.int64)
        self.units = flat.shape[0]

    def cumulative(self, counts: np.ndarray | None = None) -> np.ndarray:
        if counts is None:
            return np.arange(1, self.values.size + 1)
        return np.cumsum(counts[self.unit])

    def quantiles(self, cum: np.ndarray, probs) -> np.ndarray:
        target = np.asarray(probs) * cum[-1]
        if np.issubdtype(cum.dtype, np.integer):
            # integer counts: cum >= x exactly when cum >= ceil(x); searching with the counts'
            # own dtype spares numpy a float copy of the whole cumulative array on every call
            target = np.ceil(target).astype(cum.dtype)
        index = np.searchsorted(cum, target, side="left")
        return self.values[np.minimum(index, self.values.size - 1)]

    def fraction_above(self, cum: np.ndarray, threshold: float) -> float:
        below_or_at = np.searchsorted(self.values, threshold, side="right")
        return float(cum[-1] - (cum[below_or_at - 1] if below_or_at else 0)) / cum[-1]

    def fraction_below(self, cum: np.ndarray, threshold: float) -> float:
        below = np.searchsorted(self.values, threshold, side="left")
        return float(cum[below - 1] if below else 0) / cum[-1]

    def quantiles_from(self, cum: np.ndarray, threshold: float, probs) -> np.ndarray:
        """Quantiles of the values at or above `threshold` only (e.g. of wet amounts); NaN
        when there is none."""
        first = np.searchsorted(self.values, threshold, side="left")
        before = cum[first - 1] if first else 0
        if first >= self.values.size or cum[-1] == before:
            return np.full(len(probs), np.nan)
        target = before + np.asarray(probs) * (cum[-1] - before)
        if np.issubdtype(cum.dtype, np.integer):
            target = np.ceil(target).astype(cum.dtype)
        index = np.searchsorted(cum, target, side="left")
        return self.values[np.clip(index, first, self.values.size - 1)]

    def mean_from(self, cum: np.ndarray, threshold: float) -> float:
        """The mean of the values at or above `threshold` (e.g. the mean wet intensity)."""
        first = np.searchsorted(self.values, threshold, side="left")
        before = cum[first - 1] if first else 0
        counts = np.diff(cum[first:], prepend=before)
        total = counts.sum()
        return float(self.values[first:] @ counts / total) if total else float("nan")


def data_opts(config: dict, stats: dict) -> dict:
    """The evaluation settings for resampling the test data: `block_length` counts time steps,
    and where ensemble members are stored as fields of the same time (data.members: samples,
    `fields_per_time` in the statistics) a block holds that many rows per time step, so that it
    spans as much of the weather's dependence as without members."""
    opts = config["evaluation"]
    per_time = int(stats.get("fields_per_time") or 1)
    return opts if per_time == 1 else {**opts, "block_length": opts["block_length"] * per_time}


def block_indices(n: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Moving-block bootstrap indices for a series of length n."""
    block = min(block, n)
    starts = rng.integers(0, n - block + 1, size=-(-n // block))
    return (starts[:, None] + np.arange(block)).ravel()[:n]


def bootstrap_intervals(gen: np.ndarray, data: np.ndarray, statistic, replicates: int, block: int,
                        confidence: float, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """Percentile intervals of statistic(gen_counts, data_counts) -> dict, where the counts say
    how often each generated member (resampled independently) and each data time step
    (resampled in moving blocks of `block` steps) enter the replicate."""
    if replicates == 0:
        return {}
    draws: dict[str, list[float]] = {}
    for _ in range(replicates):
        gen_counts = np.bincount(rng.integers(0, gen, size=gen), minlength=gen)
        data_counts = np.bincount(block_indices(data, block, rng), minlength=data)
        for key, value in statistic(gen_counts, data_counts).items():
            draws.setdefault(key, []).append(value)
    alpha = (1 - confidence) / 2
    # a resample can leave a statistic undefined (no wet value in it): the others still count
    return {k: tuple(np.nanquantile(v, [alpha, 1 - alpha])) for k, v in draws.items()}
