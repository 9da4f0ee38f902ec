"""The tidy metrics table: one row per model, replicate, variable, metric and (for forecast
scores) lead, with its value and interval; per-step tables written atomically and combined into
one, with a row for the mean over the replicates of a replicated model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..config import split_replicate
from .. import artifacts

COLUMNS = ["model", "variable", "metric", "value", "ci_low", "ci_high"]

# metrics.csv: the rows above with the replicate (an index, or "mean") and the lead time (in
# steps) of forecast scores, empty otherwise
TABLE_COLUMNS = ["model", "replicate", "variable", "metric", "lead", "value", "ci_low", "ci_high"]
KEYS = ["model", "variable", "metric", "lead"]

# Where a metric's values can lie, whatever the variable: a t interval over a few replicates is
# symmetric and can cross these bounds (an exceedance ratio of -0.08 is impossible), so it is
# clipped to them. Metrics not listed (quantile errors of two-tailed variables, return levels,
# GEV shapes, skewness ratios) can take any value.
_RANGES = (
    (("exceedance_ratio_", "crps", "fair_crps", "twcrps_", "brier_", "rmse", "spread", "spread_skill"), (0.0, np.inf)),
    (("ks", "tail_ks", "tail_ks_", "rank_flatness", "block_maxima_at_bound", "fields_beyond_training_max"),
     (0.0, 1.0)),
    (("dry_fraction_error",), (-1.0, 1.0)),
    (("seeps", "psd_log_error", "object_count_ratio_", "block_mean_rel_error"), (0.0, np.inf)),
    (("sal_",), (-2.0, 2.0)),
    (("fss_",), (0.0, 1.0)),
    # a ratio of two positive numbers minus 1; relative errors of positive quantities
    (("kurtosis_ratio", "wet_mean_rel_error", "wet_quantile_rel_error_", "object_area_", "object_peak_",
      "cell_quantile_rel_error_"),
     (-1.0, np.inf)),
)


def metric_range(metric: str) -> tuple[float, float]:
    """The values `metric` can take (see _RANGES); (-inf, inf) where it is unbounded. An areal
    metric (`areal_<metric>_<block>`) has its marginal metric's range."""
    metric = metric.removeprefix("areal_")
    for names, bounds in _RANGES:
        if any(metric == n or (n.endswith("_") and metric.startswith(n)) for n in names):
            return bounds
    return (-np.inf, np.inf)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    with artifacts.written(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")


def with_replicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-replicate names (tedm.r2) split into the model and its replicate index."""
    frame = frame.copy()
    parts = [split_replicate(str(m)) for m in frame["model"]]
    frame["model"] = [p[0] for p in parts]
    frame["replicate"] = [str(p[1]) for p in parts]
    return frame


def mean_interval(values, replicate_intervals=None, confidence: float = 0.95) -> tuple[float, float]:
    """The mean of R replicates' values and its interval's half-width, t(nu) * sqrt(s^2/R + V):
    s^2 the variance between the replicates (training seeds and ensemble noise); V the test data's
    sampling variance, which every replicate shares (so it does not shrink with R), taken as the
    mean over the replicates of ((high - low) / (2 z))^2 of their own bootstrap intervals (None,
    or rows of NaN: left out). Those intervals resample the members too, so V also counts the
    ensemble noise once more: the interval errs wide. nu: Welch-Satterthwaite's, V counted as
    known."""
    values = np.asarray(values, dtype=float)
    r = values.size
    seed = float(values.var(ddof=1)) / r
    data = 0.0
    if replicate_intervals is not None:
        bounds = np.asarray(replicate_intervals, dtype=float).reshape(-1, 2)
        width = bounds[:, 1] - bounds[:, 0]
        width = width[np.isfinite(width)]
        if width.size:
            data = float(np.mean((width / (2 * stats.norm.ppf(0.5 + confidence / 2))) ** 2))
    variance = seed + data
    nu = variance**2 / (seed**2 / (r - 1)) if seed > 0 else np.inf
    q = stats.t.ppf(0.5 + confidence / 2, nu) if np.isfinite(nu) else stats.norm.ppf(0.5 + confidence / 2)
    return float(values.mean()), float(q * np.sqrt(variance))


# A model's own tail quantiles in physical units (quantile_0.99, ...; `tails.physical_quantile_name`):
# their per-replicate intervals resample the members only, as the test data do not enter them
OWN_STATISTIC = re.compile(r"^quantile_\d")


def replicate_means(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """For every model with 2 or more replicates, rows with replicate "mean": the mean value over
    the replicates and the interval of that mean (`mean_interval`: the spread between the
    replicates and the test data's sampling noise, from the replicates' own intervals where the
    metric has them and depends on the test data: not a model's own quantiles, OWN_STATISTIC),
    clipped to the metric's range (metric_range). `confidence`: the level of the replicates' own
    intervals, and of this one."""
    rows = []
    for key, group in frame.groupby(KEYS, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=float)
        if len(values) < 2:
            continue
        own = OWN_STATISTIC.match(str(key[2])) is not None
        mean, half = mean_interval(values, None if own else group[["ci_low", "ci_high"]].to_numpy(dtype=float),
                                   confidence)
        low, high = metric_range(str(key[2]))
        rows.append({**dict(zip(KEYS, key)), "replicate": "mean", "value": mean,
                     "ci_low": max(mean - half, low), "ci_high": min(mean + half, high)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def combine(tables: list[str | Path], path: str | Path, confidence: float = 0.95) -> pd.DataFrame:
    """Concatenate per-model (per-replicate) tables into the one tidy metrics table
    (TABLE_COLUMNS), with the replicate means (at `confidence`, the evaluation's)."""
    frame = with_replicates(pd.concat([artifacts.read_csv(t) for t in tables], ignore_index=True))
    frame = frame.reindex(columns=TABLE_COLUMNS)
    frame["lead"] = frame["lead"].astype("Int64")
    means = replicate_means(frame, confidence)
    if not means.empty:
        means["lead"] = means["lead"].astype("Int64")
        frame = pd.concat([frame, means], ignore_index=True)
    write_table(frame, path)
    return frame


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per model, variable, metric and lead: the replicate mean where a model has
    replicates, else its one run (what the report's tables show)."""
    if "replicate" not in frame:
        return frame
    replicate = frame["replicate"].astype(str)
    replicated = set(frame.loc[replicate == "mean", "model"])
    keep = (replicate == "mean") | ((replicate == "0") & ~frame["model"].isin(replicated))
    return frame[keep].drop(columns="replicate").reset_index(drop=True)


def combine_plain(tables: list[str | Path], path: str | Path) -> pd.DataFrame:
    """Concatenate tables of one layout (e.g. rank-histogram counts) into one file; per-replicate
    model names are split into model and replicate as in the metrics table."""
    frame = pd.concat([artifacts.read_csv(t) for t in tables], ignore_index=True) if tables else pd.DataFrame()
    if "model" in frame:
        frame = with_replicates(frame)
        frame = frame[["model", "replicate", *[c for c in frame.columns if c not in ("model", "replicate")]]]
    write_table(frame, path)
    return frame
