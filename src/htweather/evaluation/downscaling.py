"""Downscaled ensembles against the paired truth: every generated fine field has the true fine
field of its time, so the scores are field by field, not only marginal.

`verify_downscaled` writes, per run (model replicate or baseline), the forecast scores of
`forecasts.verify` at lead 0 (CRPS, fair CRPS, twCRPS above the data's p99 and p999, Brier
scores, FSS over neighbourhoods, SEEPS, spread/skill, rank histograms and their flatness), and:

- `block_mean_rel_error`: sqrt(mean (C(x_gen) - C(x_true))^2) / sqrt(mean C(x_true)^2) over
  members, times and coarse cells, C the coarsening operator: 0 when every generated field
  reproduces its coarse input exactly;
- `cell_quantile_rel_error_P`: per cell, each member's P-quantile over the downscaled times,
  averaged over members, against the truth's over the same times (both the empirical CDF's,
  numpy's inverted_cdf: one estimator on one sample size), as (mean over cells of the generated
  minus the true) / (mean over cells of the true): the local extremes' bias. Over T times the truth's
  per-cell quantile rests on T values (at P = 0.999 and T = 128, the largest);
- `quantile_rel_error_P`: the P-quantile of all the generated values against the truth's
  (pooled over cells: well estimated);
- `field_max_return_level_rel_error_T`: the T-field return level of each field's largest value
  (the level that the peak of one field in T exceeds; the smallest value, for a variable whose
  tail is its lower one), from a GEV fitted with `gev`'s censoring to each member's peaks over
  the downscaled times, averaged over members, against the one fitted to the truth's peaks over
  the same times: the peaks follow their coarse fields, so the times' own sampling error is
  shared by both sides and cancels, as in the cell quantiles. T in FIELD_RETURN_PERIODS fields,
  NaN where fewer fields than T were downscaled (beyond them a level is the GEV's extrapolation);
- `dry_fraction_error` (generated minus true) for a variable with a lower bound;
- `etccdi_<index>_rel_error`: for daily precipitation (a variable with a trace amount, in units
  of a rate or of a daily amount) downscaled on consecutive days (`downscaling.times: all` on a
  daily store), the ETCCDI indices CORDEX-ML-Bench uses, per cell
  and calendar year with xclim (ETCCDI_WET_DAY, 1 mm/day, the wet-day threshold): Rx1day (the
  year's wettest day), SDII (mean amount on wet days), CDD and CWD (the longest runs of dry and of
  wet days); each member's series against the truth's, as (mean over members, cells and years of
  the generated minus the true) / the true. Members are downscaled day by day, so a member's runs
  of days hold together only through the coarse fields;
- `fields_beyond_training_max`: the share of generated fields whose largest value exceeds
  IMPLAUSIBLE_FACTOR times the largest value of the whole training split (stats.json's max): fields no amount of
  data supports (Student-t sampling from the smallest-kappa starts can end in them), which
  dominate the mean scores of a model that makes them;
- `psd_log_error`: the mean |log10| ratio of the mean radially averaged power spectra
  (`spatial.power_spectra`, pysteps' RAPSD), generated against true;
- `sal_location`: SAL's location term L = L1 + L2 (Wernli et al. 2008), each member against
  its own true field, averaged: L1 the distance of the two fields' centres of mass and L2
  twice the difference of their objects' mass-weighted mean distances from it, both over the
  grid's diagonal (L in [0, 2], 0 perfect). Objects: 8-connected cells above 1/15 of each
  field's 95th percentile of its wet values (Wernli et al. 2009's threshold, pysteps'
  defaults; pysteps' own SAL needs scikit-image, which this project does not install). Fields with no rain on either side are
  left out.

A deterministic baseline (one member) has no spread, fair CRPS or rank histogram.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from .. import artifacts
from ..data.coarsening import Coarsening
from ..data.store import load_split_times, load_stats, test_fields
from . import forecasts, gev
from .spatial import power_spectra, spectrum_metrics

log = logging.getLogger(__name__)

SAL_THRESHOLD_FACTOR = 1 / 15   # of each field's 95th percentile of wet values (Wernli et al. 2009, pysteps)
SAL_THRESHOLD_QUANTILE = 0.95
CELL_QUANTILES = (0.99, 0.999)
IMPLAUSIBLE_FACTOR = 2.0  # fields_beyond_training_max: beyond this many times the training maximum
FIELD_RETURN_PERIODS = (10, 100)  # in fields: field_max_return_level_rel_error_T
ETCCDI_WET_DAY = "1 mm/d"  # the ETCCDI wet-day threshold (SDII, CDD, CWD)
RANK_TOLERANCE = 0.05  # a rank histogram "flat" where its total-variation distance from flat is at most this


def _mass_centre(field: np.ndarray) -> np.ndarray:
    total = field.sum()
    yy, xx = np.indices(field.shape)
    return np.array([(yy * field).sum() / total, (xx * field).sum() / total])


def _weighted_distance(field: np.ndarray, centre: np.ndarray) -> float:
    """r = sum_n R_n |x - x_n| / sum_n R_n over the field's objects (module docstring)."""
    wet = field[field > 0]
    threshold = SAL_THRESHOLD_FACTOR * np.quantile(wet, SAL_THRESHOLD_QUANTILE)
    labels, n = ndimage.label(field >= threshold, structure=np.ones((3, 3)))
    if n == 0:
        return 0.0
    index = np.arange(1, n + 1)
    totals = ndimage.sum(field, labels, index)
    centres = np.array(ndimage.center_of_mass(field, labels, index))
    return float((totals * np.hypot(*(centres - centre).T)).sum() / totals.sum())


def sal_location(generated: np.ndarray, observed: np.ndarray) -> float:
    """SAL's L for one pair of fields (NaN where either has no rain)."""
    g, o = np.nan_to_num(np.asarray(generated, dtype=np.float64)), np.nan_to_num(np.asarray(observed, dtype=np.float64))
    if g.sum() <= 0 or o.sum() <= 0:
        return float("nan")
    diagonal = np.hypot(g.shape[0] - 1, g.shape[1] - 1)
    cg, co = _mass_centre(g), _mass_centre(o)
    l1 = np.hypot(*(cg - co)) / diagonal
    l2 = 2 * abs(_weighted_distance(g, cg) - _weighted_distance(o, co)) / diagonal
    return float(l1 + l2)


def _relative(g: float, t: float) -> float:
    return (g - t) / abs(t) if t else float("nan")


def field_peak_return_levels(peaks: np.ndarray, lower_bound: float | None) -> np.ndarray:
    """GEV return levels (FIELD_RETURN_PERIODS, in fields) of one peak per field (`gev`'s censored
    fit, an atom at `lower_bound` for fields with no rain); NaN where the fit cannot be made."""
    try:
        return gev.return_levels_with_ci(peaks, FIELD_RETURN_PERIODS, replicates=0, lower_bound=lower_bound)["level"]
    except ValueError:  # too few peaks above the censoring threshold
        return np.full(len(FIELD_RETURN_PERIODS), np.nan)


def field_metrics(truth: np.ndarray, ensemble: np.ndarray, coarsening: Coarsening, variable: str,
                  training_max: float | None = None, lower_tail: bool = False) -> dict[str, float]:
    """The downscaling metrics (module docstring) of one variable: truth (time, H, W),
    ensemble (time, member, H, W), both physical; `training_max` the training split's largest
    value (None: no `fields_beyond_training_max`); `lower_tail`: the variable's tail is its lower
    one (return levels of each field's smallest value)."""
    out = {}
    if training_max is not None:
        largest = np.nanmax(ensemble.reshape(*ensemble.shape[:2], -1), axis=-1)
        out["fields_beyond_training_max"] = float(np.mean(largest > IMPLAUSIBLE_FACTOR * training_max))
    coarse_true = coarsening.coarsen(truth)[:, None]
    coarse_gen = coarsening.coarsen(ensemble)
    out["block_mean_rel_error"] = float(np.sqrt(np.nanmean((coarse_gen - coarse_true) ** 2))
                                        / np.sqrt(np.nanmean(coarse_true**2)))
    pooled_gen = ensemble.transpose(1, 0, 2, 3).reshape(-1, *truth.shape[1:])  # (member x time, H, W)
    # Per cell, each member's quantile over the same T times as the truth's, then the mean over
    # members: the same estimator on the same sample size on both sides. (Pooling the M x T
    # members would compare another order statistic: at T = 128 and P = 0.999 the truth's is its
    # maximum, the pooled members' their second largest of 1024, +31 % for a perfect ensemble.)
    method = "inverted_cdf"
    for p in CELL_QUANTILES:
        q_true = np.nanquantile(truth, p, axis=0, method=method)
        q_gen = np.nanquantile(ensemble, p, axis=0, method=method).mean(axis=0)  # (member, H, W) -> (H, W)
        out[f"cell_quantile_rel_error_{p}"] = _relative(float(np.nanmean(q_gen)), float(np.nanmean(q_true)))
        out[f"quantile_rel_error_{p}"] = _relative(float(np.nanquantile(ensemble, p, method=method)),
                                                   float(np.nanquantile(truth, p, method=method)))
    bound = coarsening.lower_bound(variable)
    sign = -1.0 if lower_tail else 1.0
    with np.errstate(all="ignore"):  # a field with no real value has no peak
        true_peaks = np.nanmax(sign * truth.reshape(len(truth), -1), axis=1)
        member_peaks = np.nanmax(sign * ensemble.reshape(*ensemble.shape[:2], -1), axis=2).T  # (member, time)
    peak_bound = bound if not lower_tail else None
    true_levels = gen_levels = np.full(len(FIELD_RETURN_PERIODS), np.nan)
    if len(truth) >= min(FIELD_RETURN_PERIODS):  # else no level to fit
        true_levels = sign * field_peak_return_levels(true_peaks, peak_bound)
        with np.errstate(all="ignore"), warnings.catch_warnings():  # NaN where no member's fit could be made
            warnings.simplefilter("ignore", RuntimeWarning)
            gen_levels = sign * np.nanmean([field_peak_return_levels(m, peak_bound) for m in member_peaks], axis=0)
    for period, g, t in zip(FIELD_RETURN_PERIODS, gen_levels, true_levels):
        within = len(truth) >= period  # beyond the downscaled times: the GEV's extrapolation
        out[f"field_max_return_level_rel_error_{period}"] = _relative(float(g), float(t)) if within else float("nan")
    if bound is not None:
        real = np.isfinite(truth)  # per time: a cell may be missing at some times only
        members_real = np.broadcast_to(real[:, None], ensemble.shape)
        out["dry_fraction_error"] = float(np.mean(ensemble[members_real] <= bound) - np.mean(truth[real] <= bound))
        pairs = [sal_location(ensemble[t, m], truth[t]) for t in range(len(truth)) for m in range(ensemble.shape[1])]
        out["sal_location"] = float(np.nanmean(pairs)) if np.isfinite(pairs).any() else float("nan")
    mask = coarsening.mask
    psd_true = power_spectra(truth, mask).mean(axis=0)
    psd_gen = power_spectra(pooled_gen, mask).mean(axis=0)
    out["psd_log_error"] = spectrum_metrics(psd_gen, psd_true).get("psd_log_error", float("nan"))
    return out


def consecutive_days(times) -> bool:
    """The downscaled times are one calendar day apart, every one (a daily store, times: all)."""
    steps = np.diff(pd.DatetimeIndex(times).values)
    return len(steps) > 0 and bool(np.all(steps == np.timedelta64(1, "D")))


def daily_rain_rate(info: dict) -> str | None:
    """The units of a precipitation variable (stats.json's entry: one with a trace amount) as a
    rate that xclim reads: its own where they are one ("mm day-1", "kg m-2 s-1"), "mm/d" for an
    amount ("mm": a daily store's values are daily totals); None for any other variable."""
    if info.get("trace") is None or info.get("lower_bound") is None:
        return None
    from xclim.core.units import units2pint

    try:
        dimension = units2pint(info["units"]).dimensionality
    except Exception:  # units pint cannot read: not scored as rain
        dimension = None
    if dimension == units2pint("mm").dimensionality:
        return f"{info['units']}/d"
    if dimension in (units2pint("mm/d").dimensionality, units2pint("kg m-2 s-1").dimensionality):
        return info["units"]
    log.info("units %r are not a precipitation rate or amount: no ETCCDI indices", info["units"])
    return None


def etccdi_indices(series: np.ndarray, times, units: str) -> dict[str, np.ndarray]:
    """The ETCCDI indices of daily precipitation `series` (time, ...) in `units` (a rate) per
    calendar year (xclim): {"rx1day", "sdii", "cdd", "cwd": (years, ...)}, NaN for a cell's year
    with a missing day (a masked cell's zeros would pull the dry and wet spells' means down)."""
    from xclim import indices as xi

    pr = xr.DataArray(series, dims=("time", *(f"d{i}" for i in range(series.ndim - 1))),
                      coords={"time": pd.DatetimeIndex(times)}, attrs={"units": units})
    complete = pr.notnull().resample(time="YS").min().astype(bool)
    with warnings.catch_warnings():  # all-dry cells give SDII's 0 / 0
        warnings.simplefilter("ignore", RuntimeWarning)
        found = {"rx1day": xi.max_1day_precipitation_amount(pr, freq="YS"),
                 "sdii": xi.daily_pr_intensity(pr, thresh=ETCCDI_WET_DAY, freq="YS"),
                 "cdd": xi.maximum_consecutive_dry_days(pr, thresh=ETCCDI_WET_DAY, freq="YS"),
                 "cwd": xi.maximum_consecutive_wet_days(pr, thresh=ETCCDI_WET_DAY, freq="YS")}
    return {k: np.asarray(v.where(complete.values).values, dtype=np.float64) for k, v in found.items()}


def etccdi_errors(truth: np.ndarray, ensemble: np.ndarray, times, units: str) -> dict[str, float]:
    """`etccdi_<index>_rel_error` (module docstring): truth (time, H, W), ensemble (time, member,
    H, W), daily, in `units`."""
    true = etccdi_indices(truth, times, units)
    generated = etccdi_indices(ensemble, times, units)  # (years, member, H, W)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {f"etccdi_{k}_rel_error": _relative(float(np.nanmean(generated[k])), float(np.nanmean(true[k])))
                for k in true}


def verify_downscaled(config: dict, run: str, path: str | Path, store: str | Path,
                      stats_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (model, variable, metric, lead, value, ci_low, ci_high) of one downscaled store, and
    its rank-histogram counts (none for a deterministic baseline)."""
    scores, ranks = forecasts.verify(config, run, path, store, stats_path)
    stats = load_stats(stats_path)
    ds = artifacts.open_zarr(path)
    deterministic = ds.sizes["member"] < 2
    if deterministic:  # two bins (below, above) say nothing of calibration
        scores = scores[scores["metric"] != "rank_flatness"]
        ranks = ranks.iloc[0:0]
    coarsening = Coarsening(stats, int(config["downscaling"]["factor"]))
    position = {t: i for i, t in enumerate(load_split_times(store, "test").values)}
    rows_at = [position[t] for t in ds.init_time.values]
    data = test_fields(store)
    extra = []
    for name in stats["channels"]:
        truth = data[name][rows_at]
        ensemble = ds[name].isel(lead=0).values.astype(np.float64)  # (time, member, H, W)
        # the training split's largest value, as ingestion recorded it (stats.json)
        info = stats["variables"][name]
        found = field_metrics(truth, ensemble, coarsening, name, training_max=float(info["max"]),
                              lower_tail=info.get("tails") == "lower")
        rate = daily_rain_rate(info) if consecutive_days(ds.init_time.values) else None  # xclim only then
        if rate is not None:
            found.update(etccdi_errors(truth, ensemble, ds.init_time.values, rate))
        for metric, value in found.items():
            extra.append({"model": run, "variable": name, "metric": metric, "lead": 0, "value": value,
                          "ci_low": np.nan, "ci_high": np.nan})
        log.info("%s / %s: %s", run, name, ", ".join(f"{r['metric']} {r['value']:.3g}" for r in extra[-4:]))
    return pd.concat([scores, pd.DataFrame(extra)], ignore_index=True), ranks
