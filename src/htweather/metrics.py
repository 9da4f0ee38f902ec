"""Tail and skill metrics on flattened samples (generated `gen` vs reference `data`).

Definitions follow ../shared/REFERENCE.md section 6. Conventions this module fixes:

- kurtosis is Pearson's (normal = 3), so the kurtosis ratio has a denominator >= 1 even for
  light-tailed variables; skewness is the usual moment ratio (scipy.stats.skew).
- ``tails="upper"`` looks at the upper tail only (positive variables such as precipitation),
  ``tails="both"`` at both tails (symmetric variables): `tail_ks` is then the larger of the two
  tails' statistics and the exceedance ratio pools the two tails' mass.
- A generated set with no value beyond the tail threshold has `tail_ks` = 1, the largest
  possible KS distance: it has no tail at all.
- Quantiles are inverted-CDF quantiles (the smallest sample value whose empirical CDF reaches
  p): no interpolation between the sparse values of a far tail.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from . import scores


def _quantile(x: np.ndarray, q):
    return np.quantile(x, q, method="inverted_cdf")


def kurtosis_ratio(gen: np.ndarray, data: np.ndarray) -> float:
    """|K_gen - K_data| / K_data with K the (Pearson) kurtosis."""
    k_gen = stats.kurtosis(gen, fisher=False)
    k_data = stats.kurtosis(data, fisher=False)
    return float(abs(k_gen - k_data) / k_data)


def skewness_ratio(gen: np.ndarray, data: np.ndarray) -> float:
    """|S_gen - S_data| / |S_data|; ill-conditioned for symmetric variables (S_data ~ 0)."""
    s_gen, s_data = stats.skew(gen), stats.skew(data)
    return float(abs(s_gen - s_data) / abs(s_data))


def ks(gen: np.ndarray, data: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic over the whole distribution."""
    return float(stats.ks_2samp(gen, data).statistic)


def _tail_ks_one_side(gen_tail: np.ndarray, data_tail: np.ndarray) -> float:
    if gen_tail.size == 0:
        return 1.0
    return float(stats.ks_2samp(gen_tail, data_tail).statistic)


def tail_ks(gen: np.ndarray, data: np.ndarray, p: float = 0.99, tails: str = "upper") -> dict[str, float]:
    """KS statistic between the values beyond the data's p-quantile (and, for two tails, below
    its (1-p)-quantile) in the generated set and in the data: the SHAPE of the tail.

    Returns {"tail_ks": ...} and, for two tails, also "tail_ks_upper" and "tail_ks_lower"."""
    hi = _quantile(data, p)
    upper = _tail_ks_one_side(gen[gen > hi], data[data > hi])
    if tails == "upper":
        return {"tail_ks": upper}
    lo = _quantile(data, 1 - p)
    lower = _tail_ks_one_side(gen[gen < lo], data[data < lo])
    return {"tail_ks": max(upper, lower), "tail_ks_upper": upper, "tail_ks_lower": lower}


def exceedance_ratio(gen: np.ndarray, data: np.ndarray, p: float, tails: str = "upper") -> float:
    """P_gen(X > q_p) / (1 - p), q_p the data's p-quantile (the MASS in the tail; 1 is perfect).
    Two tails: (P_gen(X > q_p) + P_gen(X < q_(1-p))) / (2 (1 - p))."""
    upper = np.mean(gen > _quantile(data, p))
    if tails == "upper":
        return float(upper / (1 - p))
    lower = np.mean(gen < _quantile(data, 1 - p))
    return float((upper + lower) / (2 * (1 - p)))


def quantile_rel_error(gen: np.ndarray, data: np.ndarray, q) -> np.ndarray:
    """(Q_gen(q) - Q_data(q)) / |Q_data(q)|: signed, so its sign says over- or under-estimate."""
    q_gen, q_data = _quantile(gen, q), _quantile(data, q)
    return (q_gen - q_data) / np.abs(q_data)


def crps_climatology(ensemble: np.ndarray, observations: np.ndarray) -> float:
    """Mean CRPS of an unconditional ensemble used as a climatological forecast of every
    observed field, grid point by grid point.

    ensemble: (members, *grid); observations: (times, *grid). The ensemble at a grid point is the
    same for every time, so it is sorted once and each observation costs a binary search
    (scores.crps_against_sorted), not a pass over the members."""
    members = np.sort(ensemble.reshape(ensemble.shape[0], -1).astype(np.float64), axis=0).T  # (cells, M)
    obs = observations.reshape(observations.shape[0], -1).astype(np.float64)  # (times, cells)
    total = sum(float(scores.crps_against_sorted(obs[:, cell], members[cell]).sum()) for cell in range(obs.shape[1]))
    return total / obs.size


def crps_fast_path() -> bool:
    """Whether properscoring found numba (else crps_ensemble is O(members^2) per point)."""
    from properscoring import _crps

    return getattr(_crps._crps_ensemble_core, "__name__", "") == "_crps_ensemble_gufunc"


# How each metric is judged: "zero" -> best is the smallest |value|; "one" -> best is the
# value closest to 1 in ratio (|log value|); "min" -> best is the smallest value. Metrics not
# listed (return levels, the spread alone, the data's own quantiles) have no "best".
ORIENTATION = {
    "kurtosis_ratio": "zero", "skewness_ratio": "zero", "ks": "zero",
    "tail_ks": "zero", "tail_ks_upper": "zero", "tail_ks_lower": "zero",
    "exceedance_ratio_p99": "one", "exceedance_ratio_p999": "one",
    "crps": "min", "fair_crps": "min", "rmse": "min", "spread_skill": "one", "rank_flatness": "zero",
}


def orientation(metric: str) -> str | None:
    if metric.startswith("quantile_rel_error"):
        return "zero"
    if metric.startswith("brier_"):
        return "min"
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
    if kind == "one":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return abs(np.log(value)) if value > 0 else np.inf
    return value
