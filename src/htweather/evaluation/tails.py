"""Do an ensemble's tails match the data's? Tail and distribution metrics of generated values
`gen` against reference values `data` (flattened samples), and the `evaluate` step: one
ensemble against the test split -> tidy rows (model, variable, metric, value, ci_low, ci_high).

Definitions follow ../shared/REFERENCE.md section 6. Conventions this module fixes:

- kurtosis is Pearson's (normal = 3), so the kurtosis ratio has a denominator >= 1 even for
  light-tailed variables; skewness is the usual moment ratio (scipy.stats.skew).
- ``tails`` names the tail of interest, from the physics: ``"upper"`` (precipitation),
  ``"lower"`` (pressure velocity, whose ascent is negative) or ``"both"``. Each tail gets its
  own metrics, named by the probability of its quantile: above, `exceedance_ratio_p999`
  (mass above the data's 99.9th percentile), `quantile_rel_error_0.999` and `tail_ks`; below,
  `exceedance_ratio_p001` (mass below the data's 0.1th percentile), `quantile_rel_error_0.001`
  and `tail_ks_lower`. No metric pools the two tails.
- A generated set with no value beyond the tail threshold has `tail_ks` = 1, the largest
  possible KS distance: it has no tail at all.
- Quantiles are inverted-CDF quantiles (the smallest sample value whose empirical CDF reaches
  p): no interpolation between the sparse values of a far tail.

Intervals (see `bootstrap`) come from resampling generated members whole and the test split in
blocks of consecutive time steps, which respects the data's dependence.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import artifacts
from ..data.store import grid_mask, load_stats, test_fields, valid_values
from ..tail_metrics import exceedance_name, exceedance_ratio, quantile_rel_error, side_probability, sides, tail_ks  # noqa: F401
from ..runtime import derived_seed
from .bootstrap import SortedUnits, bootstrap_intervals, data_opts
from .scores import crps_climatology
from .tables import COLUMNS

log = logging.getLogger(__name__)

# the probabilities of the exceedance ratios, on each tail (tail_metrics.exceedance_name)
EXCEEDANCE = (0.99, 0.999)


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


def quantile_metric_name(q: float) -> str:
    return f"quantile_rel_error_{q:g}"


def tail_probabilities(quantiles: list[float], tails: str) -> list[float]:
    """The probabilities at which quantile errors are reported: the upper quantiles for the
    upper tail, their mirror images (1 - q) for the lower tail, both for two tails."""
    return [side_probability(q, side) for side in sides(tails) for q in quantiles]


def quantile_metrics(gen: SortedUnits, data: SortedUnits, quantiles: list[float], tails: str,
                     gen_counts=None, data_counts=None) -> dict[str, float]:
    """Quantile errors and exceedance ratios (the statistics that get bootstrap intervals) of
    one resample; counts None means the samples as they are."""
    return quantile_metrics_at(gen, data, gen.cumulative(gen_counts), data.cumulative(data_counts), quantiles, tails)


def wet_metrics_at(gen: SortedUnits, data: SortedUnits, cg: np.ndarray, cd: np.ndarray, lower_bound: float,
                   trace: float, wet_quantiles: list[float]) -> dict[str, float]:
    """The precipitation statistics of a zero-inflated variable against the data's, for the
    cumulative resample counts `cg` and `cd` (`SortedUnits.cumulative`):

    - `dry_fraction_error`: P_gen(x <= lower bound) - P_data(x <= lower bound), exactly dry
      (the wet fraction at the trace amount is not reported: with `dry_below` at the trace,
      the default, it is this number's negative, row for row);
    - `wet_quantile_rel_error_P`: relative error of the P-quantile of the wet values alone
      (wet-day percentiles), so the dry mass does not move it;
    - `wet_mean_rel_error`: relative error of the mean wet intensity.

    An ensemble with no wet value at all has wet quantiles and mean at the lower bound (−1 for
    a bound of 0), the worst it can be, rather than an undefined value that would hide it."""
    out = {"dry_fraction_error": (1 - gen.fraction_above(cg, lower_bound)) - (1 - data.fraction_above(cd, lower_bound))}
    q_gen, q_data = gen.quantiles_from(cg, trace, wet_quantiles), data.quantiles_from(cd, trace, wet_quantiles)
    q_gen = np.where(np.isnan(q_gen), lower_bound, q_gen)
    for p, g, d in zip(wet_quantiles, q_gen, q_data):
        out[wet_quantile_metric_name(p)] = float((g - d) / abs(d)) if d else float("nan")
    m_gen, m_data = gen.mean_from(cg, trace), data.mean_from(cd, trace)
    m_gen = lower_bound if np.isnan(m_gen) else m_gen
    out["wet_mean_rel_error"] = float((m_gen - m_data) / abs(m_data)) if m_data else float("nan")
    return out


def physical_quantile_name(p: float) -> str:
    """The p-quantile itself, in the variable's units (of an ensemble, or of the data)."""
    return f"quantile_{p:g}"


def wet_quantile_metric_name(q: float) -> str:
    return f"wet_quantile_rel_error_{q:g}"


def wet_threshold(variable: dict) -> tuple[float, float] | None:
    """(lower bound, trace amount) of a zero-inflated variable; None where it has no trace."""
    if variable.get("lower_bound") is None or variable.get("trace") is None:
        return None
    return float(variable["lower_bound"]), float(variable["trace"])


def evaluate_ensemble(config: dict, model: str, ensemble_path: str | Path, store: str | Path,
                      stats_path: str | Path, data: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Every tail metric of one ensemble against the test split (`data`: its fields, when the
    caller has read them), with bootstrap intervals for the quantile errors and exceedance ratios."""
    stats = load_stats(stats_path)
    opts = data_opts(config, stats)
    data = test_fields(store) if data is None else data
    ensemble = artifacts.open_zarr(ensemble_path)
    rng = np.random.default_rng(derived_seed(config["seed"], "evaluate", model))
    mask = grid_mask(stats)
    rows = []
    for name in stats["channels"]:
        tails = stats["variables"][name]["tails"]
        gen_fields = ensemble[name].values.astype(np.float64)
        data_fields = data[name]
        # real cells and valid times only (a value may be missing at some times)
        g, d = valid_values(gen_fields, mask), valid_values(data_fields, mask)
        if mask is not None:  # (members or times, cells)
            gen_fields, data_fields = gen_fields[:, mask], data_fields[:, mask]
        log.info("%s / %s: %d generated vs %d test values (%s tails)", model, name, g.size, d.size, tails)

        point = {
            "kurtosis_ratio": kurtosis_ratio(g, d),
            "skewness_ratio": skewness_ratio(g, d),
            "ks": ks(g, d),
            **tail_ks(g, d, opts["tail_probability"], tails),
        }
        gen_sorted, data_sorted = SortedUnits(gen_fields), SortedUnits(data_fields)

        wet = wet_threshold(stats["variables"][name])

        def statistic(gen_counts=None, data_counts=None, _tails=tails, _g=gen_sorted, _d=data_sorted, _wet=wet):
            out = quantile_metrics(_g, _d, opts["quantiles"], _tails, gen_counts, data_counts)
            # the ensemble's own tail quantiles, in the variable's units (the data's are the
            # "data" rows of the same names): what the report's first screen shows
            probs = tail_probabilities(opts["quantiles"], _tails)
            out.update({physical_quantile_name(p): float(q)
                        for p, q in zip(probs, _g.quantiles(_g.cumulative(gen_counts), probs))})
            if _wet is not None:
                out.update(wet_metrics_at(_g, _d, _g.cumulative(gen_counts), _d.cumulative(data_counts), *_wet,
                                          opts["wet_quantiles"]))
            return out

        point.update(statistic())
        intervals = bootstrap_intervals(gen_sorted.units, data_sorted.units, statistic, opts["bootstrap"],
                                        opts["block_length"], opts["confidence"], rng)
        point["crps"] = crps_climatology(gen_fields, data_fields)
        for metric, value in point.items():
            low, high = intervals.get(metric, (np.nan, np.nan))
            rows.append({"model": model, "variable": name, "metric": metric, "value": value,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=COLUMNS)


def quantile_metrics_at(gen: SortedUnits, data: SortedUnits, cg: np.ndarray, cd: np.ndarray, quantiles: list[float],
                        tails: str) -> dict[str, float]:
    """`quantile_metrics` for resamples given by their cumulative counts (`SortedUnits.cumulative`),
    so that one data resample serves many ensembles."""
    probs = tail_probabilities(quantiles, tails)
    q_data = data.quantiles(cd, probs)
    q_gen = gen.quantiles(cg, probs)
    out = {quantile_metric_name(q): float((g - d) / abs(d)) for q, g, d in zip(probs, q_gen, q_data)}
    for side in sides(tails):
        for p in EXCEEDANCE:
            threshold = data.quantiles(cd, [side_probability(p, side)])[0]
            mass = gen.fraction_above(cg, threshold) if side == "upper" else gen.fraction_below(cg, threshold)
            out[exceedance_name(p, side)] = mass / (1 - p)
    return out
