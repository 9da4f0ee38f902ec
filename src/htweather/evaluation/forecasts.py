"""Verification of ensemble forecasts against the test split: skill, calibration and extremes.

Per variable and lead time, over the forecast start times:

- CRPS (and the fair CRPS, unbiased for small ensembles), latitude-weighted on a lat/lon grid;
- the spread/skill ratio with the finite-ensemble correction (1 = calibrated);
- Brier scores for exceeding the test data's high quantiles (the upper tail), and the
  threshold-weighted CRPS above the data's p99 and p999 (the CRPS of the extremes alone);
- rank histograms (counts in a separate file) and their distance from flat.

Intervals are percentile bootstrap intervals over start times: the scores of one start time
are averaged over the grid first, so the grid's spatial correlation is respected.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..data.store import area_weights, load_split_times, load_stats, test_fields
from ..runtime import derived_seed
from . import scores

log = logging.getLogger(__name__)

RANK_COLUMNS = ["model", "variable", "lead", "rank", "count"]
TWCRPS_PROBABILITIES = (0.99, 0.999)  # twCRPS above the test data's p99 and p999


def latitude_weights(stats: dict, latitude_weighting: bool) -> np.ndarray:
    """Area weights of the grid's cells, or all ones: on a regular lat/lon grid (lat,) weights
    cos(latitude), normalised to mean 1; on a projected or curvilinear grid (y, x) weights of
    each cell's area (`store.area_weights`)."""
    lat = np.asarray(stats["grid"]["latitude"])
    if lat.ndim == 2:
        return area_weights(stats) if latitude_weighting else np.ones(lat.shape)
    return scores.latitude_weights(lat) if latitude_weighting else np.ones(len(lat))


def per_start(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted grid mean of each start time's field of point scores (start, lat, lon) -> (start,);
    NaN cells (masked) carry no weight."""
    return np.array([scores.weighted_mean(v, weights) for v in values])


def brier_name(p: float) -> str:
    return f"brier_p{f'{p:g}'.split('.')[1]}"


def lead_statistics(obs: np.ndarray, ens: np.ndarray, weights: np.ndarray, thresholds: dict[str, float],
                    tw_thresholds: dict[str, float] | None = None) -> dict:
    """Per-start components of every score for one variable and lead: obs (start, lat, lon),
    ens (start, lat, lon, member); `thresholds` of the Brier scores and `tw_thresholds` of the
    threshold-weighted CRPS, by score name. Ratios are formed after averaging (see `summarise`)."""
    variance, squared_error = scores.variance_and_squared_error(obs, ens)
    out = {
        "crps": per_start(scores.crps_ensemble(obs, ens), weights),
        "fair_crps": per_start(scores.crps_ensemble(obs, ens, fair=True), weights),
        "variance": per_start(variance, weights),
        "squared_error": per_start(squared_error, weights),
    }
    for name, threshold in thresholds.items():
        out[name] = per_start(scores.brier_points(obs, ens, threshold), weights)
    for name, threshold in (tw_thresholds or {}).items():
        out[name] = per_start(scores.twcrps_ensemble(obs, ens, threshold), weights)
    out["members"] = ens.shape[-1]
    return out


def summarise(components: dict, counts: np.ndarray | None = None) -> dict[str, float]:
    """The scores from per-start components, with start times weighted by `counts` (a bootstrap
    resample; None = each once)."""
    n = len(components["crps"])
    c = np.ones(n) if counts is None else counts
    mean = {k: float(np.sum(v * c) / c.sum()) for k, v in components.items() if isinstance(v, np.ndarray)}
    m = components["members"]
    out = {k: v for k, v in mean.items() if k not in ("variance", "squared_error")}
    out["spread_skill"] = scores.spread_skill_ratio(mean["variance"], mean["squared_error"], m)
    out["rmse"] = float(np.sqrt(mean["squared_error"]))
    out["spread"] = float(np.sqrt(mean["variance"]))
    return out


def rank_flatness(counts: np.ndarray) -> float:
    """Total-variation distance of a rank histogram from flat: 0 = flat, towards 1 = every
    observation in one bin."""
    f = counts / counts.sum()
    return float(0.5 * np.abs(f - 1 / len(f)).sum())


def twcrps_name(p: float) -> str:
    return f"twcrps_p{str(p).split('.', 1)[1]}"  # 0.99 -> twcrps_p99, as exceedance_ratio_p99


def lead_components(config: dict, forecasts_path: str | Path, store: str | Path, stats: dict,
                    data: dict[str, np.ndarray] | None = None):
    """Per variable and lead of one forecast store: (variable, lead, obs (start, lat, lon),
    ens (start, lat, lon, member), the per-start components of every score). `data`: the test
    fields (`test_fields(store)`) when the caller has them already."""
    opts = config["evaluation"]
    ds = xr.open_zarr(forecasts_path, chunks=None)
    data = test_fields(store) if data is None else data
    position = {t: i for i, t in enumerate(load_split_times(store, "test").values)}
    weights = latitude_weights(stats, opts["latitude_weighting"])
    for name in stats["channels"]:
        pooled = data[name][np.isfinite(data[name])]
        thresholds = {brier_name(p): float(np.quantile(pooled, p)) for p in opts["brier_probabilities"]}
        # the upper tail, as for the Brier scores: the data's own p99 and p999
        tw_thresholds = {twcrps_name(p): float(np.quantile(pooled, p)) for p in TWCRPS_PROBABILITIES}
        for lead in ds.lead.values:
            valid = ds.valid_time.sel(lead=lead).values
            obs = data[name][[position[t] for t in valid]]  # (start, lat, lon)
            ens = np.moveaxis(ds[name].sel(lead=lead).values.astype(np.float64), 1, -1)  # (start, lat, lon, M)
            yield name, int(lead), obs, ens, lead_statistics(obs, ens, weights, thresholds, tw_thresholds)


def verify(config: dict, model: str, forecasts_path: str | Path, store: str | Path,
           stats_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (model, variable, metric, lead, value, ci_low, ci_high) and rank-histogram counts."""
    opts = config["evaluation"]
    stats = load_stats(stats_path)
    n_starts = xr.open_zarr(forecasts_path, chunks=None).sizes["init_time"]
    rng = np.random.default_rng(derived_seed(config["seed"], "verify", model))
    resamples = [np.bincount(rng.integers(0, n_starts, n_starts), minlength=n_starts)
                 for _ in range(opts["bootstrap"])]
    alpha = (1 - opts["confidence"]) / 2
    rows, ranks = [], []
    for name, lead, obs, ens, components in lead_components(config, forecasts_path, store, stats):
        point = summarise(components)
        boot = [summarise(components, c) for c in resamples]
        hist = scores.rank_histogram(obs, ens, rng)
        point["rank_flatness"] = rank_flatness(hist)
        ranks += [{"model": model, "variable": name, "lead": lead, "rank": r, "count": int(k)}
                  for r, k in enumerate(hist)]
        for metric, value in point.items():
            low = high = np.nan
            if boot and metric in boot[0]:
                low, high = np.quantile([b[metric] for b in boot], [alpha, 1 - alpha])
            rows.append({"model": model, "variable": name, "metric": metric, "lead": lead,
                         "value": value, "ci_low": low, "ci_high": high})
        log.info("%s / %s, lead %d: CRPS %.4g, spread/skill %.3f", model, name, lead, point["crps"],
                 point["spread_skill"])
    return pd.DataFrame(rows), pd.DataFrame(ranks, columns=RANK_COLUMNS)
