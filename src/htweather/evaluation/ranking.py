"""Which model is closest to perfect on a metric: each metric's orientation (best at 0, at 1,
or smallest) and a distance from perfect that ranks models on it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

# How each metric is judged: "zero" -> best is the smallest |value|; "one" -> best is the
# value closest to 1 in ratio (|log value|); "min" -> best is the smallest value; "max_one" ->
# best is the largest, at most 1 (skill scores). Metrics not
# listed (return levels, the spread alone, the data's own quantiles) have no "best".
ORIENTATION = {
    "kurtosis_ratio": "zero", "skewness_ratio": "zero", "ks": "zero",
    "tail_ks": "zero", "tail_ks_upper": "zero", "tail_ks_lower": "zero",
    "exceedance_ratio_p99": "one", "exceedance_ratio_p999": "one",
    "crps": "min", "fair_crps": "min", "rmse": "min", "spread_skill": "one", "rank_flatness": "zero",
}


def orientation(metric: str) -> str | None:
    if metric.startswith("areal_"):  # a marginal metric of block means
        return orientation(metric.removeprefix("areal_"))
    if metric.startswith("object_count_ratio"):
        return "one"
    # signed errors and differences; the spatial metrics (evaluation.spatial) are 0 when right
    if metric.startswith(("quantile_rel_error", "wet_", "dry_", "psd_", "sal_", "object_", "cell_quantile_",
                          "block_mean_", "fields_beyond_", "field_max_return_level_", "etccdi_")):
        return "zero"
    if metric.startswith(("brier_", "twcrps_", "seeps")):
        return "min"
    if metric.startswith("fss_"):  # 1 is perfect; only worse below
        return "max_one"
    return ORIENTATION.get(metric)


def distance_from_perfect(metric: str, value: float) -> float:
    """A non-negative score, smaller is better, for ranking models on one metric (NaN for a
    metric with no notion of best)."""
    kind = orientation(metric)
    if kind is None:
        return np.nan
    if not np.isfinite(value):
        return np.inf
    if kind == "zero":
        return abs(value)
    if kind == "max_one":
        return 1.0 - value
    if kind == "one":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return abs(np.log(value)) if value > 0 else np.inf
    return value


def best_models(frame: pd.DataFrame, keys: tuple[str, ...] = ("variable", "metric")) -> pd.DataFrame:
    """For each group of `keys` (e.g. variable, metric), the best generative model (truth and the
    data excluded; metrics with no notion of best, such as return levels, skipped)."""
    candidates = frame[~frame.model.isin(["truth", "data"])].copy()
    candidates["distance"] = [distance_from_perfect(m, v) for m, v in zip(candidates.metric, candidates.value)]
    candidates = candidates[np.isfinite(candidates.distance)]
    if candidates.empty:
        return pd.DataFrame(columns=[*keys, "model"])
    idx = candidates.groupby(list(keys))["distance"].idxmin()
    return candidates.loc[idx.dropna(), [*keys, "model"]]
