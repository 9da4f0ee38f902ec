"""The tail metrics every stage shares: where training stops (`training.steps: auto`), where
training has converged and how an ensemble's tails compare with the data's in the evaluation
all read the same numbers. Generated values `gen` against reference values `data` (flattened
samples); see `evaluation.tails` for the conventions (inverted-CDF quantiles; a set with no
value beyond the tail threshold has tail KS 1)."""

from __future__ import annotations

import numpy as np
from scipy import stats

# The key tail metrics of a variable's upper tail; `key_metric_names` gives them for any tail.
KEY_METRICS = ("exceedance_ratio_p99", "exceedance_ratio_p999", "quantile_rel_error_0.999", "tail_ks")
# The tails each setting of data.variables.NAME.tails looks at: a variable whose extremes are
# negative (ascent in pressure velocity) has its tail of interest below; "both" gives each tail
# its own numbers, never one pooled number.
SIDES = {"upper": ("upper",), "lower": ("lower",), "both": ("upper", "lower")}
# a relative drop of the key tail error larger than this is progress: the stop rule of
# training.steps: auto and the convergence check's "still improving" read the same threshold
IMPROVEMENT = 0.10


def quantile(x: np.ndarray, q):
    return np.quantile(x, q, method="inverted_cdf")


def sides(tails: str) -> tuple[str, ...]:
    """The tails ("upper", "lower") that the setting `tails` looks at."""
    try:
        return SIDES[tails]
    except KeyError:
        raise ValueError(f"tails must be one of {sorted(SIDES)}, got {tails!r}") from None


def side_probability(p: float, side: str) -> float:
    """The probability of the tail quantile that `p` names on a side: p above, 1 - p below
    (the 99.9th percentile's mirror is the 0.1th)."""
    return p if side == "upper" else round(1 - p, 10)


def probability_label(p: float) -> str:
    """The digits of a probability after its decimal point: 0.99 -> "99", 0.001 -> "001"."""
    return f"{p:.10f}".rstrip("0").split(".")[1]


def exceedance_name(p: float, side: str = "upper") -> str:
    """exceedance_ratio_p999 (the mass above the data's 99.9th percentile) or, below,
    exceedance_ratio_p001 (the mass below its 0.1th percentile)."""
    return f"exceedance_ratio_p{probability_label(side_probability(p, side))}"


def tail_ks_name(side: str) -> str:
    return "tail_ks" if side == "upper" else "tail_ks_lower"


def key_metric_names(tails: str) -> list[str]:
    """The key tail metrics of a variable with `tails`: KEY_METRICS on each tail it looks at."""
    return [name for side in sides(tails) for name in (
        exceedance_name(0.99, side), exceedance_name(0.999, side),
        f"quantile_rel_error_{side_probability(0.999, side):g}", tail_ks_name(side))]


def _tail_ks_one_side(gen_tail: np.ndarray, data_tail: np.ndarray) -> float:
    if gen_tail.size == 0:
        return 1.0
    return float(stats.ks_2samp(gen_tail, data_tail).statistic)


def tail_ks(gen: np.ndarray, data: np.ndarray, p: float = 0.99, tails: str = "upper") -> dict[str, float]:
    """KS statistic between the values beyond the data's p-quantile (upper tail: "tail_ks") or
    below its (1-p)-quantile (lower tail: "tail_ks_lower") in the generated set and in the data:
    the SHAPE of each tail that `tails` looks at."""
    out = {}
    for side in sides(tails):
        if side == "upper":
            hi = quantile(data, p)
            out[tail_ks_name(side)] = _tail_ks_one_side(gen[gen > hi], data[data > hi])
        else:
            lo = quantile(data, 1 - p)
            out[tail_ks_name(side)] = _tail_ks_one_side(gen[gen < lo], data[data < lo])
    return out


def exceedance_ratio(gen: np.ndarray, data: np.ndarray, p: float, side: str = "upper") -> float:
    """The MASS in one tail, 1 is perfect: P_gen(X > q_p) / (1 - p) above, q_p the data's
    p-quantile; P_gen(X < q_(1-p)) / (1 - p) below."""
    if side == "upper":
        return float(np.mean(gen > quantile(data, p)) / (1 - p))
    if side == "lower":
        return float(np.mean(gen < quantile(data, 1 - p)) / (1 - p))
    raise ValueError(f"side must be 'upper' or 'lower', got {side!r}")


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
    """The key tail metrics (`key_metric_names`) of flattened generated values against the
    data's, on each tail that `tails` looks at."""
    out = {}
    for side in sides(tails):
        ks = tail_ks(gen, data, tail_probability, side)
        q = side_probability(0.999, side)
        out.update({exceedance_name(0.99, side): exceedance_ratio(gen, data, 0.99, side),
                    exceedance_name(0.999, side): exceedance_ratio(gen, data, 0.999, side),
                    f"quantile_rel_error_{q:g}": float(quantile_rel_error(gen, data, q)),
                    tail_ks_name(side): ks[tail_ks_name(side)]})
    return out


def key_tail_error(gen: np.ndarray, data: np.ndarray, tails: str, tail_probability: float) -> float:
    """The mean distance from the ideal value of the key tail metrics: 0 is perfect."""
    return float(np.mean([error(m, v) for m, v in key_metrics(gen, data, tails, tail_probability).items()]))
