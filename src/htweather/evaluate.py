"""Evaluation: one ensemble against the test split -> tidy rows
(model, variable, metric, value, ci_low, ci_high).

Confidence intervals are bootstrap percentile intervals that respect the data's dependence:
generated members are independent fields and are resampled whole; the test split is a time
series of spatially correlated fields and is resampled in blocks of consecutive time steps
(moving-block bootstrap). Resampling single grid values instead would treat ~10^6 correlated
values as independent and give intervals far too narrow.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import metrics
from .ingest import grid_mask, load_stats
from .runtime import atomic_path, derived_seed

log = logging.getLogger(__name__)

COLUMNS = ["model", "variable", "metric", "value", "ci_low", "ci_high"]
EXCEEDANCE = {"exceedance_ratio_p99": 0.99, "exceedance_ratio_p999": 0.999}


def quantile_metric_name(q: float) -> str:
    return f"quantile_rel_error_{q:g}"


def tail_probabilities(quantiles: list[float], tails: str) -> list[float]:
    """The probabilities at which quantile errors are reported: the upper quantiles, plus
    their mirror images (1 - q) for two-tailed variables."""
    probs = list(quantiles)
    if tails == "both":
        probs += [round(1 - q, 10) for q in quantiles]
    return probs


class SortedUnits:
    """The values of a set of resampling units (whole fields), sorted once.

    A resample is a count per unit (how often the bootstrap drew it); its quantiles and
    exceedance fractions are then a gather, a cumulative sum and a binary search, with no new
    sort or partition per replicate. Quantiles are inverted-CDF (the smallest value whose
    empirical CDF reaches p), the same definition as `metrics`."""

    def __init__(self, fields: np.ndarray):
        flat = fields.reshape(fields.shape[0], -1)
        order = np.argsort(flat, axis=None, kind="stable")
        self.values = flat.ravel()[order]
        self.unit = (order // flat.shape[1]).astype(np.int64)
        self.units = flat.shape[0]

    def cumulative(self, counts: np.ndarray | None = None) -> np.ndarray:
        if counts is None:
            return np.arange(1, self.values.size + 1)
        return np.cumsum(counts[self.unit])

    def quantiles(self, cum: np.ndarray, probs) -> np.ndarray:
        index = np.searchsorted(cum, np.asarray(probs) * cum[-1], side="left")
        return self.values[np.minimum(index, self.values.size - 1)]

    def fraction_above(self, cum: np.ndarray, threshold: float) -> float:
        below_or_at = np.searchsorted(self.values, threshold, side="right")
        return float(cum[-1] - (cum[below_or_at - 1] if below_or_at else 0)) / cum[-1]

    def fraction_below(self, cum: np.ndarray, threshold: float) -> float:
        below = np.searchsorted(self.values, threshold, side="left")
        return float(cum[below - 1] if below else 0) / cum[-1]


def quantile_metrics(gen: SortedUnits, data: SortedUnits, quantiles: list[float], tails: str,
                     gen_counts=None, data_counts=None) -> dict[str, float]:
    """Quantile errors and exceedance ratios (the statistics that get bootstrap intervals) of
    one resample; counts None means the samples as they are."""
    probs = tail_probabilities(quantiles, tails)
    cg, cd = gen.cumulative(gen_counts), data.cumulative(data_counts)
    q_data = data.quantiles(cd, probs)
    q_gen = gen.quantiles(cg, probs)
    out = {quantile_metric_name(q): float((g - d) / abs(d)) for q, g, d in zip(probs, q_gen, q_data)}
    for name, p in EXCEEDANCE.items():
        upper = gen.fraction_above(cg, data.quantiles(cd, [p])[0])
        if tails == "upper":
            out[name] = upper / (1 - p)
        else:
            lower = gen.fraction_below(cg, data.quantiles(cd, [1 - p])[0])
            out[name] = (upper + lower) / (2 * (1 - p))
    return out


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
    return {k: tuple(np.quantile(v, [alpha, 1 - alpha])) for k, v in draws.items()}


def test_fields(store: str | Path) -> dict[str, np.ndarray]:
    """The test split's physical fields (time, latitude, longitude) per variable."""
    ds = xr.open_zarr(store)
    test = ds.sel(time=ds.split.values == "test")
    return {v: test[v].values.astype(np.float64) for v in json.loads(ds.attrs["channels"])}


def evaluate(config: dict, model: str, ensemble_path: str | Path, store: str | Path,
             stats_path: str | Path) -> pd.DataFrame:
    opts = config["evaluation"]
    stats = load_stats(stats_path)
    data = test_fields(store)
    ensemble = xr.open_zarr(ensemble_path)
    rng = np.random.default_rng(derived_seed(config["seed"], "evaluate", model))
    mask = grid_mask(stats)
    rows = []
    for name in stats["channels"]:
        tails = stats["variables"][name]["tails"]
        gen_fields = ensemble[name].values.astype(np.float64)
        data_fields = data[name]
        if mask is not None:  # real cells only: (members or times, cells)
            gen_fields, data_fields = gen_fields[:, mask], data_fields[:, mask]
        g, d = gen_fields.ravel(), data_fields.ravel()
        log.info("%s / %s: %d generated vs %d test values (%s tails)", model, name, g.size, d.size, tails)

        point = {
            "kurtosis_ratio": metrics.kurtosis_ratio(g, d),
            "skewness_ratio": metrics.skewness_ratio(g, d),
            "ks": metrics.ks(g, d),
            **metrics.tail_ks(g, d, opts["tail_probability"], tails),
        }
        gen_sorted, data_sorted = SortedUnits(gen_fields), SortedUnits(data_fields)

        def statistic(gen_counts=None, data_counts=None, _tails=tails, _g=gen_sorted, _d=data_sorted):
            return quantile_metrics(_g, _d, opts["quantiles"], _tails, gen_counts, data_counts)

        point.update(statistic())
        intervals = bootstrap_intervals(gen_sorted.units, data_sorted.units, statistic, opts["bootstrap"],
                                        opts["block_length"], opts["confidence"], rng)
        point["crps"] = metrics.crps_climatology(gen_fields, data_fields)
        for metric, value in point.items():
            low, high = intervals.get(metric, (np.nan, np.nan))
            rows.append({"model": model, "variable": name, "metric": metric, "value": value,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")


def combine(tables: list[str | Path], path: str | Path) -> pd.DataFrame:
    """Concatenate per-model tables into the one tidy metrics table."""
    frame = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
    write_table(frame, path)
    return frame


def best_models(frame: pd.DataFrame) -> pd.DataFrame:
    """For each (variable, metric), the best generative model (truth excluded)."""
    candidates = frame[frame.model != "truth"].copy()
    candidates["distance"] = [metrics.distance_from_perfect(m, v) for m, v in zip(candidates.metric, candidates.value)]
    idx = candidates.groupby(["variable", "metric"])["distance"].idxmin()
    return candidates.loc[idx.dropna(), ["variable", "metric", "model"]]
