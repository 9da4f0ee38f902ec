"""Extremes of sequences and of the test data: GEV and empirical return levels of block maxima
(two estimates of one quantity from the same pooled per-cell maxima) with whole-block bootstrap
intervals (the data, the forecast models' free-running sequences, the true process), the data's
own tail quantiles, and per-grid-point quantile maps."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import artifacts
from ..data.store import grid_coords, grid_dims, grid_mask, load_split_times, load_stats, test_fields
from ..data.windows import consecutive_runs, time_step
from ..runtime import derived_seed
from . import gev
from .bootstrap import SortedUnits, block_indices, data_opts
from .tables import COLUMNS
from ..tail_metrics import side_probability
from .tails import physical_quantile_name, tail_probabilities

log = logging.getLogger(__name__)


def return_period_name(period: float) -> str:
    return f"return_level_{period:g}"


# Rows for the return-level figure's curves (not for the tables): GEV and empirical levels at
# CURVE_POINTS log-spaced periods, named gev_curve_T / empirical_curve_T, and the block's length
# in days (block_days) for its period axis.
CURVE_POINTS = 17


def curve_periods(periods) -> np.ndarray:
    """Log-spaced return periods (in blocks) from min(2, shortest configured) to twice the
    longest configured, rounded to 3 significant digits: the points of the figure's curves."""
    periods = np.asarray(periods, dtype=float)
    grid = np.geomspace(min(2.0, periods.min()), 2.0 * periods.max(), CURVE_POINTS)
    return np.unique([float(f"{t:.3g}") for t in grid])


def pooled_block_maxima(sequences: list[np.ndarray], block: int, mask: np.ndarray | None,
                        stride: int = 1) -> np.ndarray:
    """Block maxima of the real grid cells (every `stride`-th in each direction), (blocks, cells):
    each sequence (time, lat, lon) is cut into blocks of `block` steps; the cells of one block
    stay together in a row, so that a bootstrap over rows keeps their spatial dependence."""
    rows = []
    for series in sequences:
        maxima = gev.block_maxima(series, block)[:, ::stride, ::stride]  # (blocks, lat, lon)
        keep = mask[::stride, ::stride] if mask is not None else None
        rows.append(maxima[:, keep] if keep is not None else maxima.reshape(len(maxima), -1))
    return np.concatenate(rows)


def return_level_rows(config: dict, source: str, sequences: dict[str, list[np.ndarray]], stats: dict,
                      rng: np.random.Generator, step: pd.Timedelta | None = None) -> list[dict]:
    """Return levels (periods in blocks) of the pooled per-cell block maxima, two estimates of
    the same quantity, the ``1 - 1/T`` quantile of one cell's block maximum, from the same
    maxima: the GEV fit (``return_level_T``; the lowest `gev.CENSOR` of the maxima censored, see
    `gev.return_levels_with_ci`) and the empirical quantile (``empirical_return_level_T``), both
    with percentile bootstrap intervals over whole blocks. Pooling cells assumes their maxima
    share one distribution (true for the homogeneous synthetic default; the quantile maps show
    where a real region is not homogeneous). Also the figure's curves (`curve_periods`) and,
    where the time `step` is given, the block's length in days."""
    opts = config["evaluation"]
    periods = np.asarray(opts["return_periods"], dtype=float)
    curve = curve_periods(periods)
    every = np.concatenate([periods, curve])
    mask = grid_mask(stats)
    rows = []

    def row(name: str, metric: str, value, low=np.nan, high=np.nan) -> dict:
        return {"model": source, "variable": name, "metric": metric, "value": value, "ci_low": low, "ci_high": high}

    for name, series in sequences.items():
        longest = max((len(s) for s in series), default=0)
        if longest < opts["block_steps"]:  # e.g. a short record's test split: no block to take a maximum of
            log.warning("%s / %s: no return levels: %d time steps, fewer than one block of evaluation.block_steps "
                        "= %d", source, name, longest, opts["block_steps"])
            continue
        # a lower tail (tails: lower): the block minima, as maxima of the negated series, and
        # their levels turned back (the level that one cell's minimum falls below once in T blocks)
        sign = -1.0 if stats["variables"][name].get("tails") == "lower" else 1.0
        maxima = pooled_block_maxima([sign * s for s in series if len(s) >= opts["block_steps"]],
                                     opts["block_steps"], mask, opts["gev_cell_stride"])
        fit = gev.return_levels_with_ci(maxima, every, opts["gev_bootstrap"], opts["confidence"], rng, rows=True,
                                        lower_bound=stats["variables"][name]["lower_bound"] if sign > 0 else None)
        # The same levels without the GEV: empirical quantiles of the pooled maxima, with the same
        # whole-block bootstrap. From a long simulation of the true process they are the true
        # return levels, free of the GEV's model error; within the range of the data they show
        # how far the fit is from the maxima it was fitted to.
        empirical = gev.empirical_return_levels_with_ci(maxima, every, opts["gev_bootstrap"], opts["confidence"],
                                                        rng, rows=True)
        if sign < 0:
            fit, empirical = ({**est, "level": -np.asarray(est["level"]), "ci_low": -np.asarray(est["ci_high"]),
                               "ci_high": -np.asarray(est["ci_low"])} for est in (fit, empirical))
        c = fit["params"][0]
        log.info("%s / %s: GEV on %d blocks x %d cells of block %s (the %.0f %% least extreme, beyond %.4g, "
                 "censored), shape xi = %.3f, "
                 "return levels %s, empirical %s", source, name, maxima.shape[0], maxima.shape[1],
                 "minima" if sign < 0 else "maxima", 100 * fit["censored"],
                 sign * fit["threshold"] if fit["threshold"] is not None else np.nan, -c,
                 np.round(fit["level"][:len(periods)], 4), np.round(empirical["level"][:len(periods)], 4))
        rows.append(row(name, "gev_shape_xi", -c))
        if fit["atom"] > 0:  # e.g. blocks without rain: their maxima sit at the lower bound
            rows.append(row(name, "block_maxima_at_bound", fit["atom"]))
        if step is not None:
            rows.append(row(name, "block_days", opts["block_steps"] * (step / pd.Timedelta(days=1))))
        n = len(periods)
        for prefix, est in (("", fit), ("empirical_", empirical)):
            rows += [row(name, f"{prefix}{return_period_name(p)}", v, lo, hi) for p, v, lo, hi in
                     zip(periods, est["level"][:n], est["ci_low"][:n], est["ci_high"][:n])]
        # the empirical curve stops where fewer than 2 pooled maxima are expected above the level
        count = np.isfinite(maxima).sum()
        for kind, est in (("gev", fit), ("empirical", empirical)):
            rows += [row(name, f"{kind}_curve_{p:g}", v, lo, hi) for p, v, lo, hi in
                     zip(curve, est["level"][n:], est["ci_low"][n:], est["ci_high"][n:])
                     if kind == "gev" or count / p >= 2]
    return rows


def sequence_fields(path: str | Path, variables: list[str]) -> dict[str, list[np.ndarray]]:
    """The sequences of a (chain, step, lat, lon) store, as a list of (step, lat, lon) per variable."""
    ds = artifacts.open_zarr(path)
    return {v: list(ds[v].values.astype(np.float64)) for v in variables}


def data_quantile_rows(config: dict, data: dict[str, np.ndarray], stats: dict, rng: np.random.Generator) -> list[dict]:
    """The test data's own tail quantiles with moving-block bootstrap intervals: the estimates
    that the true quantiles (known for the synthetic data) should lie within."""
    opts = data_opts(config, stats)
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
        rows += [{"model": "data", "variable": name, "metric": physical_quantile_name(p), "value": v, "ci_low": lo,
                  "ci_high": hi} for p, v, lo, hi in zip(probs, value, low, high)]
    return rows


def extremes_table(config: dict, source: str, store: str | Path, stats_path: str | Path,
                   sequences: str | Path | None = None) -> pd.DataFrame:
    """Return levels of one source in the tidy layout: source "data" = the test split (with its
    tail quantiles), else the (chain, step, lat, lon) store `sequences` (a forecast model's
    free-running sequences, or the true process)."""
    stats = load_stats(stats_path)
    rng = np.random.default_rng(derived_seed(config["seed"], "extremes", source))
    per_time = int(stats.get("fields_per_time") or 1)  # data.members: samples: a time's members in a row
    times = load_split_times(store, "test")[::per_time]
    step = time_step(times) if len(times) > 1 else None  # the sequences' step is the data's
    if source == "data":
        data = test_fields(store)
        rows = data_quantile_rows(config, data, stats, rng)
        # block maxima within runs of consecutive steps: not across the gaps between the blocks
        # of interleaved splits; each ensemble member is a sequence of its own
        runs = consecutive_runs(times)
        series = {v: [data[v][m::per_time][run] for m in range(per_time) for run in runs] for v in stats["channels"]}
    else:
        rows, series = [], sequence_fields(sequences, stats["channels"])
    rows += return_level_rows(config, source, series, stats, rng, step)
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
        ds = artifacts.open_zarr(path)
        sources[name] = {v: ds[v].values.astype(np.float64) for v in stats["channels"]}
    for name, path in sequences.items():
        ds = artifacts.open_zarr(path)
        sources[f"{name} (sequences)" if name in ensembles else name] = {
            v: ds[v].values.astype(np.float64).reshape(-1, *ds[v].shape[-2:]) for v in stats["channels"]}
    names = list(sources)
    out = {}
    for v in stats["channels"]:
        # a lower tail's map is of its mirror quantile (the 1st percentile for the 99th)
        q_v = side_probability(q, "lower") if stats["variables"][v]["tails"] == "lower" else q
        with warnings.catch_warnings():  # masked cells are all NaN; a value missing at some times is left out
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            maps = np.stack([np.nanquantile(sources[s][v], q_v, axis=0, method="inverted_cdf") for s in names])
        units = {"units": stats["variables"][v]["units"], "quantile": q_v}
        out[f"{v}_quantile"] = (("source", *grid_dims(stats)), maps, units)
        out[f"{v}_bias"] = (("source", *grid_dims(stats)), maps - maps[0], units)
    return xr.Dataset(out, coords={"source": names, **grid_coords(stats)},
                      attrs={"quantile": q, "description": "per-grid-point quantile; bias = source - data"})
