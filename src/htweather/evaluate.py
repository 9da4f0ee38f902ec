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

from . import extremes, metrics
from .ingest import grid_mask, load_stats
from .runtime import atomic_path, derived_seed

log = logging.getLogger(__name__)

COLUMNS = ["model", "variable", "metric", "value", "ci_low", "ci_high"]
# metrics.csv: the rows above, plus the lead time (in steps) of forecast scores, empty otherwise
TABLE_COLUMNS = ["model", "variable", "metric", "lead", "value", "ci_low", "ci_high"]
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
    """Concatenate per-model tables into the one tidy metrics table (TABLE_COLUMNS)."""
    frame = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
    frame = frame.reindex(columns=TABLE_COLUMNS)
    frame["lead"] = frame["lead"].astype("Int64")
    write_table(frame, path)
    return frame


def best_models(frame: pd.DataFrame, keys: tuple[str, ...] = ("variable", "metric")) -> pd.DataFrame:
    """For each group of `keys` (e.g. variable, metric), the best generative model (truth and the
    data excluded; metrics with no notion of best, such as return levels, skipped)."""
    candidates = frame[~frame.model.isin(["truth", "data"])].copy()
    candidates["distance"] = [metrics.distance_from_perfect(m, v) for m, v in zip(candidates.metric, candidates.value)]
    candidates = candidates[np.isfinite(candidates.distance)]
    if candidates.empty:
        return pd.DataFrame(columns=[*keys, "model"])
    idx = candidates.groupby(list(keys))["distance"].idxmin()
    return candidates.loc[idx.dropna(), [*keys, "model"]]


# --- Extremes of sequences: GEV return levels; per-grid-point quantile maps -------------------

def return_period_name(period: float) -> str:
    return f"return_level_{period:g}"


def pooled_block_maxima(sequences: list[np.ndarray], block: int, mask: np.ndarray | None,
                        stride: int = 1) -> np.ndarray:
    """Block maxima of the real grid cells (every `stride`-th in each direction), (blocks, cells):
    each sequence (time, lat, lon) is cut into blocks of `block` steps; the cells of one block
    stay together in a row, so that a bootstrap over rows keeps their spatial dependence."""
    rows = []
    for series in sequences:
        maxima = extremes.block_maxima(series, block)[:, ::stride, ::stride]  # (blocks, lat, lon)
        keep = mask[::stride, ::stride] if mask is not None else None
        rows.append(maxima[:, keep] if keep is not None else maxima.reshape(len(maxima), -1))
    return np.concatenate(rows)


def return_level_rows(config: dict, source: str, sequences: dict[str, list[np.ndarray]], stats: dict,
                      rng: np.random.Generator) -> list[dict]:
    """GEV return levels (periods in blocks) of the pooled per-cell block maxima, with percentile
    bootstrap intervals over whole blocks. Pooling cells assumes their maxima share one
    distribution (true for the homogeneous synthetic default; the quantile maps show where a
    real region is not homogeneous)."""
    opts = config["evaluation"]
    periods = np.asarray(opts["return_periods"], dtype=float)
    mask = grid_mask(stats)
    alpha = (1 - opts["confidence"]) / 2
    rows = []
    for name, series in sequences.items():
        maxima = pooled_block_maxima(series, opts["block_steps"], mask, opts["gev_cell_stride"])
        fit = extremes.return_levels_with_ci(maxima, periods, opts["gev_bootstrap"], opts["confidence"], rng,
                                             rows=True, lower_bound=stats["variables"][name]["lower_bound"])
        c = fit["params"][0]
        log.info("%s / %s: GEV on %d blocks x %d cells, shape xi = %.3f, return levels %s", source, name,
                 maxima.shape[0], maxima.shape[1], -c, np.round(fit["level"], 4))
        rows.append({"model": source, "variable": name, "metric": "gev_shape_xi", "value": -c,
                     "ci_low": np.nan, "ci_high": np.nan})
        if fit["atom"] > 0:  # e.g. blocks without rain: their maxima sit at the lower bound
            rows.append({"model": source, "variable": name, "metric": "block_maxima_at_bound", "value": fit["atom"],
                         "ci_low": np.nan, "ci_high": np.nan})
        levels, intervals = fit["level"], (fit["ci_low"], fit["ci_high"])
        for period, level, low, high in zip(periods, levels, intervals[0], intervals[1]):
            rows.append({"model": source, "variable": name, "metric": return_period_name(period), "value": level,
                         "ci_low": low, "ci_high": high})
        # The same levels without the GEV: empirical quantiles of the pooled maxima, with the same
        # whole-block bootstrap. From a long simulation of the true process they are the true
        # return levels, free of the GEV's model error; within the range of the data they show
        # how far the three-parameter fit is from the maxima it was fitted to.
        def empirical(table: np.ndarray) -> np.ndarray:
            return np.quantile(table[np.isfinite(table)], 1 - 1 / periods, method="inverted_cdf")

        draws = [empirical(maxima[rng.integers(0, len(maxima), len(maxima))]) for _ in range(opts["gev_bootstrap"])]
        low, high = (np.quantile(draws, [alpha, 1 - alpha], axis=0) if draws else np.full((2, len(periods)), np.nan))
        for period, level, lo, hi in zip(periods, empirical(maxima), low, high):
            rows.append({"model": source, "variable": name, "metric": f"empirical_{return_period_name(period)}",
                         "value": level, "ci_low": lo, "ci_high": hi})
    return rows


def sequence_fields(path: str | Path, variables: list[str]) -> dict[str, list[np.ndarray]]:
    """The sequences of a (chain, step, lat, lon) store, as a list of (step, lat, lon) per variable."""
    ds = xr.open_zarr(path)
    return {v: list(ds[v].values.astype(np.float64)) for v in variables}


def data_quantile_name(p: float) -> str:
    return f"quantile_{p:g}"


def data_quantile_rows(config: dict, data: dict[str, np.ndarray], stats: dict, rng: np.random.Generator) -> list[dict]:
    """The test data's own tail quantiles with moving-block bootstrap intervals: the estimates
    that the true quantiles (known for the synthetic data) should lie within."""
    opts = config["evaluation"]
    mask = grid_mask(stats)
    alpha = (1 - opts["confidence"]) / 2
    rows = []
    for name in stats["channels"]:
        fields = data[name][:, mask] if mask is not None else data[name]
        probs = tail_probabilities(opts["quantiles"], stats["variables"][name]["tails"])
        units = SortedUnits(fields)
        value = units.quantiles(units.cumulative(), probs)
        draws = [units.quantiles(units.cumulative(np.bincount(block_indices(units.units, opts["block_length"], rng),
                                                              minlength=units.units)), probs)
                 for _ in range(opts["bootstrap"])]
        low, high = (np.quantile(draws, [alpha, 1 - alpha], axis=0) if draws
                     else np.full((2, len(probs)), np.nan))
        rows += [{"model": "data", "variable": name, "metric": data_quantile_name(p), "value": v, "ci_low": lo,
                  "ci_high": hi} for p, v, lo, hi in zip(probs, value, low, high)]
    return rows


def extremes_table(config: dict, source: str, store: str | Path, stats_path: str | Path,
                   sequences: str | Path | None = None) -> pd.DataFrame:
    """Return levels of one source in the tidy layout: source "data" = the test split (with its
    tail quantiles), else the (chain, step, lat, lon) store `sequences` (a forecast model's
    free-running sequences, or the true process)."""
    stats = load_stats(stats_path)
    rng = np.random.default_rng(derived_seed(config["seed"], "extremes", source))
    if source == "data":
        data = test_fields(store)
        rows = data_quantile_rows(config, data, stats, rng)
        series = {v: [data[v]] for v in stats["channels"]}
    else:
        rows, series = [], sequence_fields(sequences, stats["channels"])
    rows += return_level_rows(config, source, series, stats, rng)
    return pd.DataFrame(rows, columns=COLUMNS)


def quantile_maps(config: dict, store: str | Path, stats_path: str | Path, ensembles: dict[str, str | Path],
                  sequences: dict[str, str | Path]) -> xr.Dataset:
    """Per-grid-point `map_quantile` of the test data and of every ensemble (over members) and
    sequence source (over all steps), with each source's bias against the data."""
    stats = load_stats(stats_path)
    q = config["evaluation"]["map_quantile"]
    data = test_fields(store)
    sources = {"data": {v: data[v] for v in stats["channels"]}}
    for name, path in ensembles.items():
        ds = xr.open_zarr(path)
        sources[name] = {v: ds[v].values.astype(np.float64) for v in stats["channels"]}
    for name, path in sequences.items():
        ds = xr.open_zarr(path)
        sources[f"{name} (sequences)" if name in ensembles else name] = {
            v: ds[v].values.astype(np.float64).reshape(-1, *ds[v].shape[-2:]) for v in stats["channels"]}
    names = list(sources)
    out = {}
    for v in stats["channels"]:
        maps = np.stack([np.quantile(sources[s][v], q, axis=0, method="inverted_cdf") for s in names])
        units = {"units": stats["variables"][v]["units"]}
        out[f"{v}_quantile"] = (("source", "latitude", "longitude"), maps, units)
        out[f"{v}_bias"] = (("source", "latitude", "longitude"), maps - maps[0], units)
    return xr.Dataset(out, coords={"source": names, "latitude": stats["grid"]["latitude"],
                                   "longitude": stats["grid"]["longitude"]},
                      attrs={"quantile": q, "description": "per-grid-point quantile; bias = source - data"})


def combine_plain(tables: list[str | Path], path: str | Path) -> pd.DataFrame:
    """Concatenate tables of one layout (e.g. rank-histogram counts) into one file."""
    frame = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True) if tables else pd.DataFrame()
    write_table(frame, path)
    return frame
