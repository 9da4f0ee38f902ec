"""The tail metrics every stage shares: where training stops (`training.steps: auto`), where
training has converged and how an ensemble's tails compare with the data's in the evaluation
all read the same numbers. Generated values `gen` against reference values `data` (flattened
samples); see `evaluation.tails` for the conventions (inverted-CDF quantiles; a set with no
value beyond the tail threshold has tail KS 1)."""

from __future__ import annotations

import numpy as np
from scipy import stats

KEY_METRICS = ("exceedance_ratio_p99", "exceedance_ratio_p999", "quantile_rel_error_0.999", "tail_ks")
# a relative drop of the key tail error larger than this is progress: the stop rule of
# training.steps: auto and the convergence check's "still improving" read the same threshold
IMPROVEMENT = 0.10


def quantile(x: np.ndarray, q):
    return np.quantile(x, q, method="inverted_cdf")


def _tail_ks_one_side(gen_tail: np.ndarray, data_tail: np.ndarray) -> float:
    if gen_tail.size == 0:
        return 1.0
    return float(stats.ks_2samp(gen_tail, data_tail).statistic)


def tail_ks(gen: np.ndarray, data: np.ndarray, p: float = 0.99, tails: str = "upper") -> dict[str, float]:
    """KS statistic between the values beyond the data's p-quantile (and, for two tails, below
    its (1-p)-quantile) in the generated set and in the data: the SHAPE of the tail.

    Returns {"tail_ks": ...} and, for two tails, also "tail_ks_upper" and "tail_ks_lower"."""
    hi = quantile(data, p)
    upper = _tail_ks_one_side(gen[gen > hi], data[data > hi])
    if tails == "upper":
        return {"tail_ks": upper}
    lo = quantile(data, 1 - p)
    lower = _tail_ks_one_side(gen[gen < lo], data[data < lo])
    return {"tail_ks": max(upper, lower), "tail_ks_upper": upper, "tail_ks_lower": lower}


def exceedance_ratio(gen: np.ndarray, data: np.ndarray, p: float, tails: str = "upper") -> float:
    """P_gen(X > q_p) / (1 - p), q_p the data's p-quantile (the MASS in the tail; 1 is perfect).
    Two tails: (P_gen(X > q_p) + P_gen(X < q_(1-p))) / (2 (1 - p))."""
    upper = np.mean(gen > quantile(data, p))
    if tails == "upper":
        return float(upper / (1 - p))
    lower = np.mean(gen < quantile(data, 1 - p))
    return float((upper + lower) / (2 * (1 - p)))


def quantile_rel_error(gen: np.ndarray, data: np.ndarray, q) -> np.ndarray:
    """(Q_gen(q) - Q_data(q)) / |Q_data(q)|: signed, so its sign says over- or under-estimate."""
    q_gen, q_data = quantile(gen, q), quantile(data, q)
    return (q_gen - q_data) / np.abs(q_data)


def ideal(metric: str) -> float | None:
    """The perfect value of a tail or spatial metric (None: a lower-is-better score, judged as
    it is). Areal metrics (`areal_<metric>_<block>`) have their marginal metric's."""
    if metric.startswith("areal_"):
        return ideal(metric.removeprefix("areal_"))
    if metric.startswith(("exceedance_ratio", "object_count_ratio", "fss_")):
        return 1.0
    if metric.startswith(("quantile_rel_error", "tail_ks", "ks", "wet_", "dry_", "psd_", "sal_", "object_")):
        return 0.0
    return None


def error(metric: str, value):
    """Distance from the ideal value; a lower-is-better score as it is."""
    target = ideal(metric)
    return value if target is None else np.abs(np.asarray(value, dtype=float) - target)


def key_metrics(gen: np.ndarray, data: np.ndarray, tails: str, tail_probability: float) -> dict[str, float]:
    """The key tail metrics (KEY_METRICS) of flattened generated values against the data's
    (definitions of `tails`)."""
    return {"exceedance_ratio_p99": exceedance_ratio(gen, data, 0.99, tails),
            "exceedance_ratio_p999": exceedance_ratio(gen, data, 0.999, tails),
            "quantile_rel_error_0.999": float(quantile_rel_error(gen, data, 0.999)),
            "tail_ks": tail_ks(gen, data, tail_probability, tails)["tail_ks"]}


def key_tail_error(gen: np.ndarray, data: np.ndarray, tails: str, tail_probability: float) -> float:
    """The mean distance from the ideal value of the key tail metrics: 0 is perfect."""
    return float(np.mean([error(m, v) for m, v in key_metrics(gen, data, tails, tail_probability).items()]))
