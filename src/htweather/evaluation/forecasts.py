"""Verification of ensemble forecasts against the test split: skill, calibration and extremes.

Per variable and lead time, over the forecast start times:

- CRPS (and the fair CRPS, unbiased for small ensembles), latitude-weighted on a lat/lon grid;
- the spread/skill ratio with the finite-ensemble correction (1 = calibrated);
- Brier scores for exceeding the test data's high quantiles (the upper tail), and the
  threshold-weighted CRPS above the data's p99 and p999 (the CRPS of the extremes alone);
- rank histograms (counts in a separate file) and their distance from flat;
- neighbourhood skill: the fractions skill score (FSS, Roberts and Lean 2008, as
  `pysteps.verification.spatialscores`) of exceeding the data's p99 and p999 over n x n
  neighbourhoods, each member against the observation, sums pooled over members and start times
  (`fss_p99_3x3`: 1 is perfect, 0 no overlap at all); and for precipitation SEEPS (`scores.categorical.seeps`,
  Rodwell et al. 2010; 0 is perfect) of each member, averaged, with the dry/light threshold at the
  variable's trace amount and the climatology (dry probability, light/heavy threshold) of each
  cell from the test split itself, where it is defined (dry probability 0.1 to 0.85).

Intervals are percentile bootstrap intervals over start times: the scores of one start time
are averaged over the grid first, so the grid's spatial correlation is respected.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import uniform_filter
from scores.categorical import seeps as seeps_score

from .. import artifacts
from ..data.store import area_weights, load_split_times, load_stats, test_fields
from ..runtime import derived_seed
from ..tail_metrics import probability_label, side_probability, sides
from . import scores

log = logging.getLogger(__name__)

RANK_COLUMNS = ["model", "variable", "lead", "rank", "count"]
TWCRPS_PROBABILITIES = (0.99, 0.999)  # twCRPS above the test data's p99 and p999
FSS_PROBABILITIES = (0.99, 0.999)     # FSS of exceeding the test data's p99 and p999


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


def brier_name(p: float, side: str = "upper") -> str:
    """brier_p99 (exceeding the data's 99th percentile) or, on a lower tail, brier_p01 (falling
    below its 1st)."""
    return f"brier_p{probability_label(side_probability(p, side))}"


def fractions(fields: np.ndarray, threshold: float, scale: int, axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """The fraction of cells >= threshold in the scale x scale neighbourhood of each cell, zero
    outside the grid (as pysteps); missing and masked (NaN) cells count as below."""
    binary = (np.nan_to_num(fields, nan=-np.inf) >= threshold).astype(np.float64)
    if scale <= 1:
        return binary
    size = [1] * binary.ndim
    for axis in axes:
        size[axis] = scale
    return uniform_filter(binary, size=size, mode="constant", cval=0.0)


def fss_sums(obs: np.ndarray, ens: np.ndarray, threshold: float, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Per start time, the FSS's numerator sum (P_f - P_o)^2 and denominator sum P_f^2 + P_o^2
    over the grid, averaged over members: obs (start, lat, lon), ens (start, lat, lon, member)."""
    p_o = fractions(obs, threshold, scale)[..., None]
    p_f = fractions(ens, threshold, scale, axes=(1, 2))
    num = ((p_f - p_o) ** 2).sum(axis=(1, 2)).mean(axis=-1)
    den = (p_f**2 + p_o**2).sum(axis=(1, 2)).mean(axis=-1)
    return num, den


def fss_name(p: float, scale: int, side: str = "upper") -> str:
    return f"fss_p{probability_label(side_probability(p, side))}_{scale}x{scale}"


def seeps_climate(data: np.ndarray, trace: float) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, SEEPS's climatology from (time, lat, lon) data: the probability of dry (at or
    below the trace amount; NaN where it is 0 or 1), and the light/heavy threshold (the wet
    values' 2/3 quantile)."""
    valid = np.isfinite(data)
    dry = np.where(valid, data <= trace, False).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    # always or never dry (and masked cells): no SEEPS there (`scores` would mask them, warning)
    dry = np.where((dry > 0) & (dry < 1) & valid.any(axis=0), dry, np.nan)
    wet = np.where(valid & (data > trace), data, np.nan)
    with warnings.catch_warnings():  # a cell never wet has no threshold: NaN (no SEEPS there)
        warnings.simplefilter("ignore", RuntimeWarning)
        heavy = np.nanquantile(wet, 2 / 3, axis=0)
    return dry, heavy


def seeps_points(obs: np.ndarray, ens: np.ndarray, trace: float, climate: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """SEEPS of each member against the observation, averaged over members: (start, lat, lon);
    NaN where the climatology leaves it undefined (dry probability outside 0.1 to 0.85)."""
    dims = ("start", "y", "x")
    prob_dry = xr.DataArray(climate[0], dims=dims[1:])
    heavy = xr.DataArray(np.nan_to_num(climate[1], nan=trace), dims=dims[1:])
    observed = xr.DataArray(obs, dims=dims)
    per_member = [seeps_score(xr.DataArray(ens[..., m], dims=dims), observed, prob_dry, heavy,
                              dry_light_threshold=trace, preserve_dims="all").values
                  for m in range(ens.shape[-1])]
    return np.mean(per_member, axis=0)


def lead_statistics(obs: np.ndarray, ens: np.ndarray, weights: np.ndarray, thresholds: dict[str, float],
                    tw_thresholds: dict[str, float] | None = None, fss: dict | None = None,
                    seeps: dict | None = None) -> dict:
    """Per-start components of every score for one variable and lead: obs (start, lat, lon),
    ens (start, lat, lon, member); `thresholds` of the Brier scores and `tw_thresholds` of the
    threshold-weighted CRPS, by score name; `fss`: {"thresholds": {p: value}, "scales": [n]};
    `seeps`: {"trace": amount, "climate": `seeps_climate`}. Ratios are formed after averaging
    (see `summarise`)."""
    if ens.shape[-1] >= 2:
        variance, squared_error = scores.variance_and_squared_error(obs, ens)
        fair = per_start(scores.crps_ensemble(obs, ens, fair=True), weights)
    else:  # a deterministic forecast (a downscaling baseline): no spread, no fair CRPS
        squared_error = (ens[..., 0] - obs) ** 2
        variance, fair = np.full(squared_error.shape, np.nan), np.full(len(obs), np.nan)
    out = {
        "crps": per_start(scores.crps_ensemble(obs, ens), weights),
        "fair_crps": fair,
        "variance": per_start(variance, weights),
        "squared_error": per_start(squared_error, weights),
        **tail_components(obs, ens, weights, thresholds, tw_thresholds, fss),
    }
    if seeps:
        out["seeps"] = per_start(seeps_points(obs, ens, seeps["trace"], seeps["climate"]), weights)
    out["members"] = ens.shape[-1]
    return out


def tail_components(obs: np.ndarray, ens: np.ndarray, weights: np.ndarray, thresholds: dict[str, float],
                    tw_thresholds: dict[str, float] | None = None, fss: dict | None = None, side: str = "upper") -> dict:
    """The per-start components of the scores of one tail (`lead_statistics`' arguments); a
    lower tail's are those of the negated fields against the negated thresholds."""
    out = {}
    for name, threshold in thresholds.items():
        out[name] = per_start(scores.brier_points(obs, ens, threshold), weights)
    for name, threshold in (tw_thresholds or {}).items():
        out[name] = per_start(scores.twcrps_ensemble(obs, ens, threshold), weights)
    for p, threshold in (fss or {}).get("thresholds", {}).items():
        for scale in fss["scales"]:
            name = fss_name(p, scale, side)
            out[f"fss_num:{name}"], out[f"fss_den:{name}"] = fss_sums(obs, ens, threshold, scale)
    return out


def summarise(components: dict, counts: np.ndarray | None = None) -> dict[str, float]:
    """The scores from per-start components, with start times weighted by `counts` (a bootstrap
    resample; None = each once)."""
    n = len(components["crps"])
    c = np.ones(n) if counts is None else counts
    mean = {k: float(np.sum(v * c) / c.sum()) for k, v in components.items() if isinstance(v, np.ndarray)}
    m = components["members"]
    out = {k: v for k, v in mean.items() if k not in ("variance", "squared_error") and ":" not in k}
    for k, num in mean.items():
        if k.startswith("fss_num:"):  # FSS = 1 - sum of numerators / sum of denominators
            name = k.split(":", 1)[1]
            den = mean[f"fss_den:{name}"]
            out[name] = 1 - num / den if den > 0 else float("nan")
    out["spread_skill"] = scores.spread_skill_ratio(mean["variance"], mean["squared_error"], m)
    out["rmse"] = float(np.sqrt(mean["squared_error"]))
    out["spread"] = float(np.sqrt(mean["variance"]))
    return out


def rank_flatness(counts: np.ndarray) -> float:
    """Total-variation distance of a rank histogram from flat: 0 = flat, towards 1 = every
    observation in one bin."""
    f = counts / counts.sum()
    return float(0.5 * np.abs(f - 1 / len(f)).sum())


def twcrps_name(p: float, side: str = "upper") -> str:
    """0.99 -> twcrps_p99, as exceedance_ratio_p99; on a lower tail twcrps_p01 (the weight
    1{z < the data's 1st percentile})."""
    return f"twcrps_p{probability_label(side_probability(p, side))}"


def forecast_tail_scores(tails: str) -> list[str]:
    """The threshold-weighted CRPS of each tail a variable looks at (lower is better)."""
    return [twcrps_name(p, side) for side in sides(tails) for p in TWCRPS_PROBABILITIES]


def lead_components(config: dict, forecasts_path: str | Path, store: str | Path, stats: dict,
                    data: dict[str, np.ndarray] | None = None):
    """Per variable and lead of one forecast store: (variable, lead, obs (start, lat, lon),
    ens (start, lat, lon, member), the per-start components of every score). `data`: the test
    fields (`test_fields(store)`) when the caller has them already."""
    opts = config["evaluation"]
    ds = artifacts.open_zarr(forecasts_path)
    data = test_fields(store) if data is None else data
    position = {t: i for i, t in enumerate(load_split_times(store, "test").values)}
    weights = latitude_weights(stats, opts["latitude_weighting"])
    for name in stats["channels"]:
        pooled = data[name][np.isfinite(data[name])]
        # each tail of interest (data.variables.NAME.tails), at the data's own p99 and p999; a
        # lower tail's scores are the negated fields' against the negated data's thresholds
        tails = {}
        for side in sides(stats["variables"][name].get("tails", "upper")):
            signed = pooled if side == "upper" else -pooled
            tails[side] = (
                {brier_name(p, side): float(np.quantile(signed, p)) for p in opts["brier_probabilities"]},
                {twcrps_name(p, side): float(np.quantile(signed, p)) for p in TWCRPS_PROBABILITIES},
                {"thresholds": {p: float(np.quantile(signed, p)) for p in FSS_PROBABILITIES},
                 "scales": opts["spatial"]["fss_scales"]})
        upper = tails.get("upper", ({}, {}, None))
        trace = stats["variables"][name].get("trace")
        seeps = {"trace": float(trace), "climate": seeps_climate(data[name], float(trace))} if trace is not None else None
        for lead in ds.lead.values:
            valid = ds.valid_time.sel(lead=lead).values
            obs = data[name][[position[t] for t in valid]]  # (start, lat, lon)
            ens = np.moveaxis(ds[name].sel(lead=lead).values.astype(np.float64), 1, -1)  # (start, lat, lon, M)
            components = lead_statistics(obs, ens, weights, *upper, seeps)
            if "lower" in tails:
                components.update(tail_components(-obs, -ens, weights, *tails["lower"], side="lower"))
            yield name, int(lead), obs, ens, components


def verify(config: dict, model: str, forecasts_path: str | Path, store: str | Path,
           stats_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (model, variable, metric, lead, value, ci_low, ci_high) and rank-histogram counts."""
    opts = config["evaluation"]
    stats = load_stats(stats_path)
    n_starts = artifacts.open_zarr(forecasts_path).sizes["init_time"]
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
            draws = np.array([b[metric] for b in boot if metric in b], dtype=float)
            if np.isfinite(draws).any():  # a score undefined in every resample (FSS, SEEPS) has none
                low, high = np.nanquantile(draws, [alpha, 1 - alpha])
            rows.append({"model": model, "variable": name, "metric": metric, "lead": lead,
                         "value": value, "ci_low": low, "ci_high": high})
        log.info("%s / %s, lead %d: CRPS %.4g, spread/skill %.3f", model, name, lead, point["crps"],
                 point["spread_skill"])
    return pd.DataFrame(rows), pd.DataFrame(ranks, columns=RANK_COLUMNS)
