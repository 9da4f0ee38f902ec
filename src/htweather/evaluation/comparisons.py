"""Is a model closer to the data than its baseline, and by how much? Paired comparisons of two
models' errors, with intervals that include the spread between training runs.

A model has R replicates: independent trainings (seeds derived from the master seed and the
replicate index), each sampled and scored. On one metric, a replicate's *error* is its distance
from the ideal value: |ratio - 1| for exceedance ratios, |value| for quantile errors and KS
statistics, the score itself for lower-is-better scores (CRPS, twCRPS). A model's error is the
mean over its replicates, and the comparison is the difference

    d = error(model) - error(baseline)          (negative: the model is closer to the data)

with the interval

    d ± t(1 - alpha/2, nu) * sqrt(s_m^2 / R_m + s_b^2 / R_b + V_data)

- s^2: the variance of a model's errors between its replicates, on the same test data: the
  training-seed variance, ensemble sampling noise included (every replicate has its own ensemble);
- V_data: the variance of d when the test data are resampled (moving blocks of time steps, or
  forecast start times): ONE resample for both models, since both are scored against the same
  data, with every replicate's ensemble held as it is;
- nu: Welch-Satterthwaite's degrees of freedom of the two between-replicate terms (the data
  term counts as known): with 3 replicates each nu is about 4 and t about 2.8, not 1.96.

Assumptions: the replicates are independent and differ only in their seeds; a model's errors
are roughly normal across replicates; test-data and seed noise add. A model with a single
replicate has no between-replicate variance: its term is then the ensemble sampling variance
(its members resampled), and the interval does not cover training-seed variance
(`seed_variance` False).

The p-value is the same t statistic's, d / sqrt(variance) on nu degrees of freedom. A pair's
metrics on one variable are many tests, so they are adjusted together (Benjamini-Hochberg, the
false discovery rate at 1 - confidence) in two families: the key metrics that the report's
headline counts (`key_metrics`; forecast scores over all leads), and the rest.

Verdict: `better` or `worse` (the sign of d) when the adjusted p-value is below 1 - confidence;
otherwise `indistinguishable` when the whole interval lies within plus or minus the metric's
relevant difference (`evaluation.relevant_difference`; comparisons.csv's `relevant`): no
difference that matters, as an equivalence test reads it; else `inconclusive`. The
interval's half-width is its *resolution*, the smallest difference these trainings could tell
from none. The interval itself is not adjusted: a row whose interval just misses 0 can still
read `inconclusive` (or `indistinguishable`, when it also lies within the relevant difference).
An undefined difference (a metric that is NaN or infinite in some replicate) has no p-value and
reads `inconclusive`.

A zero-inflated variable's dry fraction is not compared where every ensemble of both models had
its dry threshold raised to the validation split's dry fraction (`dry_below: auto`): the two are
then equal by construction, and an `indistinguishable` there would say nothing.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import artifacts
from ..data.store import grid_mask, load_stats, test_fields
from ..generation.ensembles import calibrated_dry
from ..runtime import derived_seed
from ..tail_metrics import error, ideal, key_metric_names, sides, tail_ks_name  # noqa: F401  (ideal: part of this module's interface)
from .bootstrap import SortedUnits, block_indices, data_opts
from .forecasts import forecast_tail_scores, lead_components
from .spatial import FieldSummary, spatial_metrics, spatial_spec, summarise
from .tails import quantile_metrics_at, wet_metrics_at, wet_threshold

log = logging.getLogger(__name__)

COLUMNS = ["model", "baseline", "variable", "metric", "lead", "difference", "ci_low", "ci_high", "resolution",
           "relevant", "p_value", "p_adjusted", "verdict", "replicates"]
# the precipitation statistics the report leads with for zero-inflated variables (see tails.wet_metrics_at)
KEY_WET_METRICS = ["dry_fraction_error", "wet_quantile_rel_error_0.99", "wet_mean_rel_error"]
# the spatial structure (see `spatial`): the spectrum, SAL's structure and the number of storms at
# the data's p99, and the tail of the whole field's mean
KEY_SPATIAL_METRICS = ["psd_log_error", "sal_structure_p99", "object_count_ratio_p99",
                       "areal_quantile_rel_error_0.99_field",
                       # their lower-tail names (tails: lower)
                       "sal_structure_p01", "object_count_ratio_p01", "areal_quantile_rel_error_0.01_field"]


# the tail metrics the report's verdict and the convergence check rest on, for a variable's tails
key_tail_metrics = key_metric_names
def forecast_scores(tails: str) -> list[str]:
    """The forecast scores compared on a variable with `tails`: the CRPS and each tail's twCRPS."""
    return ["crps", *forecast_tail_scores(tails)]


# The smallest difference of errors that matters, per metric family (`metric_family`), in the
# metric's own units; for forecast scores, a fraction of the baseline's score. A comparison whose
# interval is wider than this cannot say "no difference" (`inconclusive`). The schema's defaults.
RELEVANT_DIFFERENCE = {"exceedance_ratio": 0.2, "quantile_rel_error": 0.05, "tail_ks": 0.05, "wet": 0.05,
                       "spectrum": 0.1, "storm_objects": 0.2, "areal_quantile": 0.05, "forecast_score": 0.05}


def metric_family(metric: str) -> str:
    """The family a compared metric belongs to (the keys of RELEVANT_DIFFERENCE); a metric of
    none is an error, not a silent default."""
    if metric.startswith("areal_"):
        return "areal_quantile"
    if metric.startswith("exceedance_ratio_"):
        return "exceedance_ratio"
    if metric.startswith("quantile_rel_error_"):
        return "quantile_rel_error"
    if metric.startswith("tail_ks"):
        return "tail_ks"
    if metric in KEY_WET_METRICS or metric.startswith("wet_"):
        return "wet"
    if metric == "psd_log_error":
        return "spectrum"
    if metric.startswith(("sal_", "object_")):
        return "storm_objects"
    if metric in ("crps", "fair_crps") or metric.startswith(("twcrps_", "brier_")):
        return "forecast_score"
    raise ValueError(f"comparison metric {metric!r} has no family for evaluation.relevant_difference")


def relevant_threshold(metric: str, baseline_error: float, relevant: dict[str, float]) -> float:
    """The relevant difference of one comparison in the metric's units: the family's, times the
    baseline's score for forecast scores (NaN where that score is unknown: then nothing can be
    called indistinguishable)."""
    family = metric_family(metric)
    threshold = relevant[family]
    if family == "forecast_score":
        threshold *= abs(baseline_error) if np.isfinite(baseline_error) else np.nan
    return float(threshold)


def dry_calibrated_everywhere(attrs: list[dict], variable: str) -> bool:
    """Whether every ensemble (its attributes) had the dry threshold of `variable` raised to the
    validation split's dry fraction: their dry fractions are then equal by construction, and the
    dry fraction is not compared."""
    return bool(attrs) and all(variable in calibrated_dry(a) for a in attrs)


def key_metrics(tails: str) -> list[str]:
    """The metrics the report's headline for a pair and variable counts: the key tail metrics,
    the precipitation statistics and the forecast scores, on the variable's tails of interest."""
    return key_tail_metrics(tails) + KEY_WET_METRICS + forecast_scores(tails)


def verdict(low: float, high: float) -> str:
    """The unadjusted verdict of one interval (no relevant difference: `indistinguishable`)."""
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "indistinguishable"


def adjusted_verdicts(frame: pd.DataFrame, tails: dict[str, str], confidence: float,
                      relevant: dict[str, float] | None = None) -> pd.DataFrame:
    """comparisons.csv's p_adjusted and verdict (see the module's docstring): Benjamini-Hochberg
    within each family of a pair and variable (its key metrics, over all leads; the rest), then
    better / worse / indistinguishable / inconclusive. `tails`: each variable's tails of interest;
    relevant: RELEVANT_DIFFERENCE's keys overridden."""
    relevant = {**RELEVANT_DIFFERENCE, **(relevant or {})}
    frame = frame.copy()
    if frame.empty:
        frame["p_adjusted"] = pd.Series(dtype=float)
        return frame
    keys = {v: set(key_metrics(tails.get(v, "upper"))) for v in frame.variable.unique()}
    key = np.array([m in keys[v] for v, m in zip(frame.variable, frame.metric)])
    adjusted = np.full(len(frame), np.nan)
    for _, rows in frame.groupby([frame.model, frame.baseline, frame.variable, key], sort=False).groups.items():
        where = frame.index.get_indexer(rows)
        p = frame["p_value"].to_numpy(dtype=float)[where]
        ok = np.isfinite(p)
        if ok.any():
            adjusted[where[ok]] = stats.false_discovery_control(p[ok], method="bh")
    frame["p_adjusted"] = adjusted
    baseline_error = frame["baseline_error"] if "baseline_error" in frame else pd.Series(np.nan, index=frame.index)
    frame["relevant"] = [relevant_threshold(m, float(e), relevant) for m, e in zip(frame.metric, baseline_error)]
    alpha = 1 - confidence
    out = []
    for r, p in zip(frame.itertuples(), adjusted):
        if np.isfinite(p) and p < alpha:
            out.append("better" if r.difference < 0 else "worse")
        else:
            within = max(abs(r.ci_low), abs(r.ci_high)) <= r.relevant  # False for NaN
            out.append("indistinguishable" if within else "inconclusive")
    frame["verdict"] = out
    return frame


def interval(model_errors, baseline_errors, data_differences, confidence: float = 0.95,
             model_within: float | None = None, baseline_within: float | None = None) -> dict:
    """The difference of the mean errors and its interval (see the module's docstring).

    model_errors, baseline_errors: one error per replicate, on the test data as they are;
    data_differences: d under resamples of the test data (shared by both models);
    *_within: the ensemble-sampling variance of the error of a model with one replicate (its
    members resampled), used in place of the between-replicate term it cannot have."""
    a, b = np.asarray(model_errors, dtype=float), np.asarray(baseline_errors, dtype=float)
    d = float(a.mean() - b.mean())
    terms, dfs = [], []
    for errors, within in ((a, model_within), (b, baseline_within)):
        if errors.size >= 2:
            terms.append(float(errors.var(ddof=1)) / errors.size)
            dfs.append(errors.size - 1)
        else:
            terms.append(float(within or 0.0))
            dfs.append(math.inf)
    draws = np.asarray(data_differences, dtype=float)
    draws = draws[np.isfinite(draws)]  # a resample can leave a statistic undefined (no wet value in it)
    v_data = float(draws.var(ddof=1)) if draws.size >= 2 else 0.0
    variance = sum(terms) + v_data
    denominator = sum(t * t / df for t, df in zip(terms, dfs) if math.isfinite(df))
    nu = variance * variance / denominator if denominator > 0 else math.inf
    half = float(stats.t.ppf(0.5 + confidence / 2, nu) if math.isfinite(nu) else stats.norm.ppf(0.5 + confidence / 2))
    half *= math.sqrt(variance)
    low, high = d - half, d + half
    sd = math.sqrt(variance) if variance >= 0 else math.nan
    if not (math.isfinite(d) and math.isfinite(sd)):
        p, half = math.nan, math.nan  # an error undefined in some replicate: no test at all
    elif sd > 0:
        p = float(2 * (stats.t.sf(abs(d) / sd, nu) if math.isfinite(nu) else stats.norm.sf(abs(d) / sd)))
    else:
        p = 1.0 if d == 0 else 0.0
    return {"difference": d, "ci_low": low, "ci_high": high, "resolution": half, "p_value": p, "data_sd": math.sqrt(v_data),
            "verdict": verdict(low, high), "seed_variance": bool(a.size >= 2 and b.size >= 2),
            "baseline_error": float(b.mean())}


# --- tail metrics of unconditional ensembles -----------------------------------------------

def _weighted_ks(gen: np.ndarray, data: np.ndarray, weights: np.ndarray) -> float:
    """KS distance between the sorted values `gen` (equal weights) and the sorted values `data`
    with `weights` (resample counts); 1 when `gen` is empty (no tail at all)."""
    if gen.size == 0:
        return 1.0
    if data.size == 0 or weights.sum() == 0:
        return 1.0
    points = np.concatenate([gen, data])
    f_gen = np.searchsorted(gen, points, side="right") / gen.size
    cum = np.concatenate([[0.0], np.cumsum(weights, dtype=float)])
    f_data = cum[np.searchsorted(data, points, side="right")] / cum[-1]
    return float(np.max(np.abs(f_gen - f_data)))


def tail_metric_values(gen: SortedUnits, data: SortedUnits, cg: np.ndarray, cd: np.ndarray, quantiles: list[float],
                       tail_probability: float, tails: str, wet: tuple | None = None,
                       wet_quantiles: list[float] = ()) -> dict[str, float]:
    """The comparison's tail metrics of one ensemble against the data, for the cumulative
    resample counts `cg` (its members) and `cd` (the data's time steps; `SortedUnits.cumulative`):
    quantile errors and exceedance ratios (as in `tails`) and the tail KS statistic; for a
    zero-inflated variable (`wet`: its lower bound and trace amount) the precipitation statistics."""
    out = quantile_metrics_at(gen, data, cg, cd, quantiles, tails)
    if wet is not None:
        out.update(wet_metrics_at(gen, data, cg, cd, *wet, wet_quantiles))
    for side in sides(tails):
        if side == "upper":
            hi = data.quantiles(cd, [tail_probability])[0]
            g0, d0 = np.searchsorted(gen.values, hi, side="right"), np.searchsorted(data.values, hi, side="right")
            out[tail_ks_name(side)] = _weighted_ks(np.repeat(gen.values[g0:], _counts(cg, g0, cg.size)),
                                                   data.values[d0:], _counts(cd, d0, cd.size))
        else:
            lo = data.quantiles(cd, [1 - tail_probability])[0]
            g1, d1 = np.searchsorted(gen.values, lo, side="left"), np.searchsorted(data.values, lo, side="left")
            # the lower tail mirrored: values below lo, negated, ascending
            out[tail_ks_name(side)] = _weighted_ks(-np.repeat(gen.values[:g1], _counts(cg, 0, g1))[::-1],
                                                   -data.values[:d1][::-1], _counts(cd, 0, d1)[::-1])
    return out


def _counts(cum: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The resample counts of the sorted values start..stop-1, from their cumulative counts."""
    before = cum[start - 1] if start > 0 else 0
    return np.diff(cum[start:stop], prepend=before)


def error_draws(metrics, replicates: dict[str, int], data_units: int, opts: dict,
                rng: np.random.Generator) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every replicate's error on every metric, on the test data as they are and on opts
    ["bootstrap"] moving-block resamples of them, one resample shared by every replicate of every
    side: ({metric: {side: (R,)}}, {metric: {side: (resamples, R)}}). metrics(side, r, data_counts,
    member_counts) -> {metric: value} as in `paired_bootstrap`."""
    def errors(data_counts) -> dict[str, dict[str, np.ndarray]]:
        found = {side: [metrics(side, r, data_counts, None) for r in range(n)] for side, n in replicates.items()}
        names = next(iter(found.values()))[0]
        return {m: {side: np.array([error(m, v[m]) for v in found[side]], dtype=float) for side in found}
                for m in names}

    point = errors(None)
    draws = {m: {side: [] for side in replicates} for m in point}
    for _ in range(opts["bootstrap"]):
        counts = np.bincount(block_indices(data_units, opts["block_length"], rng), minlength=data_units)
        for m, found in errors(counts).items():
            for side, e in found.items():
                draws[m][side].append(e)
    shape = {side: (0, n) for side, n in replicates.items()}
    return point, {m: {side: np.array(v, dtype=float).reshape(-1, replicates[side]) if v else np.empty(shape[side])
                       for side, v in d.items()} for m, d in draws.items()}


def paired_bootstrap(metrics, replicates: dict[str, int], data_units: int, member_units: dict[str, int], opts: dict,
                     rng: np.random.Generator) -> dict[str, dict]:
    """Per metric, the comparison of a model's replicates with a baseline's (`interval`).

    metrics(side, r, data_counts, member_counts) -> {metric: value}: replicate r of side "model"
    or "baseline" for a resample given by a count per data unit (time step) and per generated
    member (None: as they are); replicates: how many each side has; member_units: each side's
    members per replicate (to resample a side with one replicate). The data are resampled in
    moving blocks (one resample for both sides); opts: bootstrap, block_length, confidence."""
    sides = ("model", "baseline")
    point, resampled = error_draws(metrics, replicates, data_units, opts, rng)
    draws = {m: resampled[m]["model"].mean(axis=1) - resampled[m]["baseline"].mean(axis=1) for m in point}
    point = {m: (e["model"], e["baseline"]) for m, e in point.items()}

    within = {side: {} for side in sides}  # one replicate: ensemble-sampling variance, its members resampled
    for side in sides:
        if replicates[side] == 1:
            n = member_units[side]
            samples = [metrics(side, 0, None, np.bincount(rng.integers(0, n, n), minlength=n))
                       for _ in range(opts["bootstrap"])]
            within[side] = {m: float(np.nanvar([error(m, s[m]) for s in samples], ddof=1)) if len(samples) >= 2 else 0.0
                            for m in point}
    return {m: interval(a, b, draws[m], opts["confidence"], within["model"].get(m), within["baseline"].get(m))
            for m, (a, b) in point.items()}


def compare_tails(model: list[np.ndarray], baseline: list[np.ndarray], data: np.ndarray | SortedUnits, tails: str,
                  opts: dict, rng: np.random.Generator, wet: tuple | None = None) -> dict[str, dict]:
    """Per tail metric, the comparison of two models' replicates (each (members, cells): one
    variable's values, real cells only) on the test data (times, cells; or already sorted).

    opts: the evaluation settings quantiles, tail_probability, bootstrap (resamples), block_length
    (time steps per block), confidence and wet_quantiles; wet: (lower bound, trace amount) of a
    zero-inflated variable, whose precipitation statistics are compared too."""
    data_units = data if isinstance(data, SortedUnits) else SortedUnits(data)
    sides = {"model": [SortedUnits(e) for e in model], "baseline": [SortedUnits(e) for e in baseline]}
    return paired_bootstrap(tail_metrics_of(sides, data_units, tails, opts, wet), {s: len(u) for s, u in sides.items()},
                            data_units.units, {s: u[0].units for s, u in sides.items()}, opts, rng)


def tail_metrics_of(sides: dict[str, list[SortedUnits]], data_units: SortedUnits, tails: str, opts: dict,
                    wet: tuple | None = None):
    """metrics(side, r, data_counts, member_counts) -> {metric: value}, as `paired_bootstrap`
    wants it: the tail metrics (`tail_metric_values`) of replicate r of `sides[side]`."""
    last = {"counts": ()}  # the data resample's cumulative counts, computed once for every replicate

    def metrics(side: str, r: int, data_counts, member_counts) -> dict[str, float]:
        if last["counts"] is not data_counts:
            last.update(counts=data_counts, cum=data_units.cumulative(data_counts))
        u = sides[side][r]
        return tail_metric_values(u, data_units, u.cumulative(member_counts), last["cum"], opts["quantiles"],
                                  opts["tail_probability"], tails, wet, opts.get("wet_quantiles", ()))

    return metrics


def compare_structure(model: list[FieldSummary], baseline: list[FieldSummary], data: FieldSummary, tails: str,
                      opts: dict, rng: np.random.Generator) -> dict[str, dict]:
    """Per key spatial metric (KEY_SPATIAL_METRICS, those the variable has), the comparison of two
    models' replicates, each summarised by `spatial.summarise`, on the test data's summary."""
    sides = {"model": model, "baseline": baseline}
    return paired_bootstrap(structure_metrics_of(sides, data, tails, opts), {s: len(v) for s, v in sides.items()},
                            data.units, {s: v[0].units for s, v in sides.items()}, opts, rng)


def structure_metrics_of(sides: dict[str, list[FieldSummary]], data: FieldSummary, tails: str, opts: dict):
    """metrics(side, r, data_counts, member_counts) -> {metric: value}: the key spatial metrics
    (KEY_SPATIAL_METRICS, those the variable has) of replicate r of `sides[side]`."""
    def metrics(side: str, r: int, data_counts, member_counts) -> dict[str, float]:
        found = spatial_metrics(sides[side][r], data, opts["quantiles"], tails, member_counts, data_counts)
        return {m: found[m] for m in KEY_SPATIAL_METRICS if m in found}

    return metrics


# --- forecast scores ------------------------------------------------------------------------

def compare_scores(model: list[np.ndarray], baseline: list[np.ndarray], resamples: int, confidence: float,
                   rng: np.random.Generator) -> dict:
    """Two forecast models' replicates on one lower-is-better score at one lead: per replicate the
    score of each start time (n_starts,), the same start times for every replicate of both
    models. The test data are resampled by start time (one resample for both models)."""
    a, b = np.stack(model), np.stack(baseline)
    n = a.shape[1]
    draws = []
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        draws.append(float((a @ counts).mean() / counts.sum() - (b @ counts).mean() / counts.sum()))
    return interval(a.mean(axis=1), b.mean(axis=1), draws, confidence)


# --- the comparisons step -------------------------------------------------------------------

def comparison_table(config: dict, pairs: list[list[str]], runs: dict[str, list[str]], paths: dict[str, str | Path],
                     store: str | Path, stats_path: str | Path) -> pd.DataFrame:
    """Every [model, baseline] pair on every variable: unconditional models on the tail metrics,
    forecast models on `forecast_scores` by lead. `runs`: each model's replicate names; `paths`:
    each replicate's ensemble (samples) or forecast store."""
    stats = load_stats(stats_path)
    opts = data_opts(config, stats)
    mask = grid_mask(stats)
    rows = []

    def cells(fields: np.ndarray) -> np.ndarray:  # (n, lat, lon) -> (n, real cells)
        return fields[:, mask] if mask is not None else fields.reshape(len(fields), -1)

    def replicates(model: str, baseline: str) -> str:
        return f"{len(runs[model])} vs {len(runs[baseline])}"

    # ensembles of unconditional models have members only; forecast stores have start times too
    unconditional = [pair for pair in pairs
                     if "init_time" not in artifacts.open_zarr(paths[runs[pair[0]][0]]).dims]
    data = test_fields(store) if pairs else {}  # read once, for the tail metrics and the forecast scores
    calibrated = {run: artifacts.open_zarr(paths[run]).attrs for pair in unconditional for m in pair for run in runs[m]}
    if unconditional:
        for name in stats["channels"]:
            data_units = SortedUnits(cells(data[name]))  # sorted once for every pair
            tails = stats["variables"][name]["tails"]
            fields = {}  # each run's ensemble of this variable, read once for every pair
            for model, baseline in unconditional:
                for run in runs[model] + runs[baseline]:
                    if run not in fields:
                        fields[run] = artifacts.open_zarr(paths[run])[name].values.astype(np.float64)
                values = {run: cells(fields[run]) for run in runs[model] + runs[baseline]}
                rng = np.random.default_rng(derived_seed(config["seed"], "compare", model, baseline, name))
                found = compare_tails([values[r] for r in runs[model]], [values[r] for r in runs[baseline]],
                                      data_units, tails, opts, rng, wet_threshold(stats["variables"][name]))
                if dry_calibrated_everywhere([calibrated[r] for r in runs[model] + runs[baseline]], name):
                    found.pop("dry_fraction_error", None)
                    log.info("%s vs %s / %s: dry fraction not compared: every ensemble of both had its dry "
                             "threshold calibrated to the validation split's dry fraction", model, baseline, name)
                for metric, result in found.items():
                    rows.append({"model": model, "baseline": baseline, "variable": name, "metric": metric,
                                 "lead": pd.NA, **_row(result), "replicates": replicates(model, baseline)})
                log.info("%s vs %s / %s (unadjusted): %s", model, baseline, name,
                         ", ".join(f"{m} {r['verdict']}" for m, r in found.items()))
            # the spatial structure: every field summarised once, for every pair
            spec = spatial_spec(stats, name, data[name], opts["spatial"]["block_sizes"])
            summaries = {run: summarise(f, spec) for run, f in fields.items()}
            summaries["data"] = summarise(data[name], spec)
            for model, baseline in unconditional:
                rng = np.random.default_rng(derived_seed(config["seed"], "compare_spatial", model, baseline, name))
                found = compare_structure([summaries[r] for r in runs[model]], [summaries[r] for r in runs[baseline]],
                                          summaries["data"], tails, opts, rng)
                for metric, result in found.items():
                    rows.append({"model": model, "baseline": baseline, "variable": name, "metric": metric,
                                 "lead": pd.NA, **_row(result), "replicates": replicates(model, baseline)})

    components = {}  # forecast runs: {(variable, lead): per-start components}
    for model, baseline in (pair for pair in pairs if pair not in unconditional):
        for run in runs[model] + runs[baseline]:
            if run not in components:
                found = lead_components(config, paths[run], store, stats, data)
                components[run] = {(v, lead): c for v, lead, _, _, c in found}
        for (name, lead) in components[runs[model][0]]:
            rng = np.random.default_rng(derived_seed(config["seed"], "compare", model, baseline, name, str(lead)))
            for score in forecast_scores(stats["variables"][name].get("tails", "upper")):
                result = compare_scores([components[r][(name, lead)][score] for r in runs[model]],
                                        [components[r][(name, lead)][score] for r in runs[baseline]],
                                        opts["bootstrap"], opts["confidence"], rng)
                rows.append({"model": model, "baseline": baseline, "variable": name, "metric": score,
                             "lead": lead, **_row(result), "replicates": replicates(model, baseline)})
    frame = pd.DataFrame(rows, columns=COLUMNS + ["baseline_error"])
    tails = {name: v.get("tails", "upper") for name, v in stats["variables"].items()}
    frame = adjusted_verdicts(frame, tails, opts["confidence"], opts.get("relevant_difference"))
    frame = frame[COLUMNS]
    frame["lead"] = frame["lead"].astype("Int64")
    return frame


def _row(result: dict) -> dict:
    return {k: result[k] for k in ("difference", "ci_low", "ci_high", "resolution", "p_value", "verdict",
                                   "baseline_error")}
