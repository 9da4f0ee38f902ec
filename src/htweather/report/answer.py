"""The report's first screen: the answer to "does Student-t noise get the extremes right here,
and by how much?", per variable, heaviest tail first.

The order is the question's own. First, how far each model is from the data on the key tail
metrics (and, for precipitation, the dry fraction and wet intensities), beside what a perfect
model's sample of the same size gives: a comparison between two models that both miss the tail
says little. Then the paired verdicts that matter (each Student-t model against its Gaussian
twin), with their intervals. Then what many comparisons give by chance alone. Everything here is
read from metrics.csv, comparisons.csv and the convergence table; nothing is computed anew.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..config import is_twin
from ..data.ingest import PRESSURE_VELOCITY_UNITS
from ..data.transforms import canonical_units
from ..evaluation.comparisons import KEY_WET_METRICS, key_metrics, key_tail_metrics
from ..evaluation.convergence import STATES, near_limit
from ..evaluation.forecasts import twcrps_name
from ..evaluation.tails import physical_quantile_name
from ..tail_metrics import error, exceedance_name, ideal, side_probability, sides
from .text import fixed, fmt, lead_hours, percentile

HEAVY_KURTOSIS = 1.0  # excess kurtosis above which a variable is called heavy-tailed (a normal has 0)
HEADLINE = exceedance_name(0.999)  # the far tail's mass, upper tail (`headline_metric` for any tail)

# The ranking rule of every table on the first screen, stated above them: by the number shown
RANKING_RULE = ("One rule for every table here, on the numbers as shown. Percentiles: bold is the model nearest "
                "the true value where the truth is known, else nearest the data's; green is a value inside the "
                "interval a perfect model's sample of the models' size gives around the true value, else inside "
                "the data's interval. Key metrics: bold is nearest the ideal value; green is inside a perfect "
                "model's sample's interval, else a model interval that holds the ideal value. Hover over a cell "
                "for each training run's value.")


def short_name(metric: str) -> str:
    """Column headings: what each key metric measures, on which tail."""
    for side in ("upper", "lower"):
        for p in (0.99, 0.999):
            if metric == exceedance_name(p, side):
                where = "above" if side == "upper" else "below"
                return f"mass {where} data's {percentile(side_probability(p, side)).replace(' percentile', ' pct.')}"
    if metric.startswith("quantile_rel_error_"):
        return f"{percentile(float(metric.rsplit('_', 1)[1])).replace(' percentile', ' pct.')} rel. error"
    return {"tail_ks": "tail KS (upper)", "tail_ks_lower": "tail KS (lower)",
            "dry_fraction_error": "dry fraction error", "wet_quantile_rel_error_0.99": "wet q99 rel. error",
            "wet_mean_rel_error": "wet mean rel. error", "crps": "CRPS", "twcrps_p99": "twCRPS above data's q99",
            "twcrps_p999": "twCRPS above data's q99.9", "twcrps_p01": "twCRPS below data's q1",
            "twcrps_p001": "twCRPS below data's q0.1"}.get(metric, metric)


def headline_metric(side: str) -> str:
    """The far tail's mass on one tail: the metric the first screen leads with."""
    return exceedance_name(0.999, side)


def tail_words(side: str, units: str | None) -> str:
    """"upper tail", "lower tail (ascent)" for pressure velocity."""
    if side == "lower" and units and canonical_units(units) in {canonical_units(u) for u in PRESSURE_VELOCITY_UNITS}:
        return "lower tail (ascent)"
    return f"{side} tail"


def shown(value) -> float:
    """A value as the first screen prints it (3 significant digits): what its ranking reads."""
    text = fmt(None if value is None else float(value), 3)
    return float(text) if text else math.nan


def quantile_decimals(value: float, low: float, high: float) -> int:
    """Digits after the point that resolve the data's own interval (its width to 2 significant
    digits): 12.0 mm [9.8, 14.6], 295.4 K [295.0, 295.9], -1.59 Pa s-1 [-1.71, -1.50]."""
    width = high - low if np.isfinite(high - low) and high > low else 0.01 * abs(value)
    if not width > 0:
        return 3
    return int(min(6, max(0, 1 - math.floor(math.log10(width)))))


def _label(labels: dict | None, model: str) -> str:
    return (labels or {}).get(model, model)


def interval_kind(replicates: int) -> str:
    """What a model's interval in metrics.csv is: a t interval over its replicates with the runs'
    own bootstrap noise added (tables.mean_interval; clipped to the metric's range), or a
    bootstrap interval of its one run."""
    return f"{replicates} runs: t + bootstrap" if replicates > 1 else "1 run: bootstrap"


def _band(row) -> tuple[float, float]:
    if row is None:
        return (math.nan, math.nan)
    low, high = row.ci_low, row.ci_high
    return (row.value, row.value) if pd.isna(low) else (float(low), float(high))


def runs_of(metrics: pd.DataFrame) -> dict[tuple[str, str, str], list[float]]:
    """Per (model, variable, metric) without a lead: each training run's value, from the tidy
    metrics table with its `replicate` column (the replicate means left out)."""
    if "replicate" not in metrics:
        return {}
    rows = metrics[(metrics["replicate"].astype(str) != "mean") & metrics["lead"].isna()]
    return {key: group.value.astype(float).tolist() for key, group in rows.groupby(["model", "variable", "metric"])}


def _closest(sub: pd.DataFrame, models: list[str], metric: str, target: float | None = None,
             show=shown) -> set[str]:
    """The models whose value, as shown (`show`), is nearest `target` (default: the metric's
    ideal value) on `metric` (RANKING_RULE); `sub`: one row per model (replicate means) of one variable."""
    rows = sub[(sub.metric == metric) & sub.model.isin(models)]
    target = ideal(metric) if target is None else target
    distance = {r.model: abs(show(r.value) - target) if target is not None else float(error(metric, show(r.value)))
                for r in rows.itertuples() if np.isfinite(show(r.value))}
    if not distance:
        return set()
    nearest = min(distance.values())
    return {m for m, d in distance.items() if d == nearest}


def distance_table(frame: pd.DataFrame, variable: str, models: list[str], replicates: dict[str, int],
                   truth: bool, runs: dict | None = None, states: list[dict] = (), tails: str = "upper",
                   labels: dict | None = None) -> dict:
    """Each model's key metrics on `variable` (on the tails it looks at) with their intervals,
    and where it ends (its whole ensemble's tail error and state, from `states`).

    `closest` and `within` follow RANKING_RULE, on the value shown (the mean over runs): closest
    is nearest the ideal value; within is inside the truth ensemble's interval (no farther from
    the ideal than the truth where that has no interval), or, without a truth, a model interval
    that holds the ideal value. Each run's own value is listed beside it."""
    runs = runs or {}
    sub = frame[(frame.variable == variable) & frame["lead"].isna()]
    metrics = [m for m in key_tail_metrics(tails) + KEY_WET_METRICS if (sub.metric == m).any()]
    value = {(r.model, r.metric): r for r in sub.itertuples()}
    closest = {m: _closest(sub, models, m) for m in metrics}
    ends = {s["model"]: s for s in states if s["variable"] == variable}
    limit = _near_limit(ends)
    rows = []
    for model in models + (["truth"] if truth else []):
        cells = []
        for m in metrics:
            r = value.get((model, m))
            if r is None:
                cells.append({"text": "", "ci": "", "within": False, "closest": False, "runs": ""})
                continue
            each = runs.get((model, variable, m), [r.value])
            if truth:
                reference = value.get(("truth", m))
                band = _band(reference)
                if reference is not None and pd.isna(reference.ci_low):
                    spread = float(error(m, reference.value))
                    band = (ideal(m) - spread, ideal(m) + spread)
                within = band[0] <= shown(r.value) <= band[1]
            else:
                low, high = _band(r)
                within = low <= ideal(m) <= high
            cells.append({"text": fmt(r.value, 3), "ci": "" if pd.isna(r.ci_low) else
                          f"[{fmt(r.ci_low, 2)}, {fmt(r.ci_high, 2)}]", "within": bool(within and model != "truth"),
                          "closest": model in closest.get(m, ()),
                          "runs": "runs: " + ", ".join(fmt(v, 3) for v in each) if len(each) > 1 else ""})
        end = ends.get(model)
        if model == "truth" and limit is not None:  # the reference sample: what sampling noise alone gives
            end = {"final_error": _reference(ends), "state": "reference sample"}
        rows.append({"model": _label(labels, model),
                     "kind": "bootstrap" if model == "truth" else interval_kind(replicates.get(model, 1)),
                     "truth": model == "truth", "cells": cells,
                     "tail_error": fmt(end["final_error"], 3) if end else "",
                     "state": _STATE_WORDS.get(end["state"], end["state"]) if end else "",
                     "there": bool(end and model != "truth" and limit is not None and end["final_error"] <= limit)})
    return {"metrics": [{"name": m, "short": short_name(m), "ideal": fmt(ideal(m))} for m in metrics],
            "rows": rows, "limit": fmt(limit, 3) if limit is not None else ""}


_STATE_WORDS = {STATES[0]: "still improving", STATES[1]: "converged, near", STATES[2]: "stalled, far"}


def _reference(ends: dict[str, dict]) -> float | None:
    """The reference sample's tail error (what sampling noise alone gives); None without one."""
    refs = [s["reference_error"] for s in ends.values() if not math.isnan(s.get("reference_error", math.nan))]
    return refs[0] if refs else None


def _near_limit(ends: dict[str, dict]) -> float | None:
    reference = _reference(ends)
    return None if reference is None else near_limit(reference)


def headline(frame: pd.DataFrame, variable: str, models: list[str], states: list[dict], truth: bool,
             labels: dict | None = None, tails: str = "upper") -> str:
    """Whether the models get there on `variable` (from where each ends: its whole ensemble's
    tail error, the composite of the key tail metrics, against a reference sample of as many
    fields), then the far tail's mass in words, on each tail that `tails` looks at."""
    sub = frame[(frame.variable == variable) & frame["lead"].isna()]
    name = lambda m: _label(labels, m)  # noqa: E731
    text = ""
    ends = {s["model"]: s for s in states if s["variable"] == variable and s["model"] in models
            and not math.isnan(s.get("reference_error", math.nan))}
    if ends:
        ref, limit = _reference(ends), _near_limit(ends)
        near = [m for m, s in ends.items() if s["final_error"] <= limit]
        far = [m for m in ends if m not in near]
        if not near:
            text = f"No model gets there on {variable}."
        elif not far:
            text = f"Every model gets there on {variable}."
        else:
            text = (f"{_join([name(m) for m in near])} {'gets' if len(near) == 1 else 'get'} there on {variable}; "
                    f"{_join([name(m) for m in far])} {'does' if len(far) == 1 else 'do'} not.")
        best = min(ends, key=lambda m: ends[m]["final_error"])
        text += (f" Tail error (the composite: mean distance from the ideal of the key tail metrics below): from "
                 f"{fmt(ends[best]['final_error'], 3)} ({name(best)}) to {fmt(max(s['final_error'] for s in ends.values()), 3)}, "
                 f"against {fmt(ref, 3)} for a sample of the {'true process' if truth else 'validation split'} "
                 f"of as many fields; within {fmt(limit, 3)} counts as there.")
        still = [m for m, s in ends.items() if s["state"] == STATES[0]]
        if still:
            text += f" Still improving at the end of training: {_join([name(m) for m in still])}."
    for side in sides(tails):
        metric = headline_metric(side)
        best = sorted(_closest(sub, models, metric))
        if not best:
            continue
        value = float(sub[(sub.metric == metric) & (sub.model == best[0])].value.iloc[0])
        reference = sub[(sub.metric == metric) & (sub.model == "truth")]
        perfect = (f"; a perfect model's sample of this size: {fmt(float(reference.value.iloc[0]), 2)}"
                   if len(reference) else "")
        where = "Above the data's 99.9th" if side == "upper" else "Below the data's 0.1th"
        text += (f" {where} percentile the closest, {_join([name(m) for m in best])}, "
                 f"{'puts' if len(best) == 1 else 'put'} {fmt(value, 2)} of the data's mass there (1 is right{perfect}).")
    return text.strip()


def _decimals(value: dict, name: str) -> int:
    """The decimals of one quantile's column: those that resolve the data's interval."""
    d = value.get(("data", name))
    return 3 if d is None else quantile_decimals(float(d.value), float(d.ci_low), float(d.ci_high))


def _interval(r, decimals: int, lower_bound: float | None) -> str:
    """A row's interval as shown, clipped at the variable's lower bound (a t interval over a
    few runs is symmetric and can reach below 0 mm of rain, which no quantile can)."""
    if pd.isna(r.ci_low):
        return ""
    low = r.ci_low if lower_bound is None else max(r.ci_low, lower_bound)
    return f"[{fixed(low, decimals)}, {fixed(r.ci_high, decimals)}]"


def _quantile_reference(value: dict, name: str, true_value: float | None):
    """The reference a model's quantile is judged against (RANKING_RULE): the true value, with
    the interval a perfect model's sample of the models' size gives (the true process's sample's
    bootstrap interval, moved onto the true value), where the truth is known; else the data's
    estimate with its interval. Returns (value, low, high, whose) or None."""
    sample, data = value.get(("truth", name)), value.get(("data", name))
    if true_value is not None and np.isfinite(true_value):
        if sample is not None and pd.notna(sample.ci_low):
            low, high = true_value - (sample.value - sample.ci_low), true_value + (sample.ci_high - sample.value)
        else:
            low = high = math.nan
        return true_value, low, high, "the true process's"
    if data is not None:
        return float(data.value), float(data.ci_low), float(data.ci_high), "the data's"
    return None


def _runs_text(runs: dict | None, model: str, variable: str, metric: str, decimals: int) -> str:
    each = (runs or {}).get((model, variable, metric), [])
    return "runs: " + ", ".join(fixed(v, decimals) for v in each) if len(each) > 1 else ""


def quantile_table(frame: pd.DataFrame, variable: str, side: str, quantiles: list[float], models: list[str],
                   replicates: dict[str, int], truth: bool, labels: dict | None = None,
                   lower_bound: float | None = None, true_values: dict[str, float] | None = None,
                   runs: dict | None = None) -> dict:
    """The first screen's table for one tail of `variable`: the data's tail quantiles in the
    variable's units (test split, moving-block bootstrap interval), the true value where known
    (`true_values`, by metric name, with the interval a perfect model's sample of the models'
    size gives), and each model's (the mean over its runs, t interval clipped at `lower_bound`;
    each run's value on hover), ranked by RANKING_RULE. Each column has the decimals that
    resolve the data's interval."""
    probs = [side_probability(q, side) for q in quantiles]
    names = [physical_quantile_name(p) for p in probs]
    sub = frame[(frame.variable == variable) & frame["lead"].isna() & frame.metric.isin(names)]
    value = {(r.model, r.metric): r for r in sub.itertuples()}
    true_values = true_values or {}
    decimals = {n: _decimals(value, n) for n in names}
    reference = {n: _quantile_reference(value, n, true_values.get(n) if truth else None) for n in names}
    closest = {n: _closest(sub, models, n, round(reference[n][0], decimals[n]),
                           show=lambda v, k=decimals[n]: round(float(v), k))
               if reference[n] is not None else set() for n in names}
    rows = []
    for source in ["data"] + (["truth"] if truth else []) + models:
        cells = []
        for n in names:
            k, ref = decimals[n], reference[n]
            if source == "truth" and ref is not None and ref[3] == "the true process's":
                ci = "" if math.isnan(ref[1]) else f"[{fixed(ref[1], k)}, {fixed(ref[2], k)}]"
                cells.append({"text": fixed(ref[0], k), "ci": ci, "within": False, "closest": False, "runs": ""})
                continue
            r = value.get((source, n))
            if r is None:
                cells.append({"text": "", "ci": "", "within": False, "closest": False, "runs": ""})
                continue
            within = (source in models and ref is not None and np.isfinite(ref[1])
                      and ref[1] <= round(float(r.value), k) <= ref[2])
            cells.append({"text": fixed(r.value, k), "ci": _interval(r, k, lower_bound), "within": bool(within),
                          "closest": source in closest[n], "runs": _runs_text(runs, source, variable, n, k)})
        if any(c["text"] for c in cells):
            kind = ("test split: block bootstrap" if source == "data"
                    else "true value; a perfect model's sample" if source == "truth" and true_values
                    else "bootstrap" if source == "truth" else interval_kind(replicates.get(source, 1)))
            rows.append({"model": _label(labels, source), "kind": kind, "truth": source in ("data", "truth"),
                         "cells": cells})
    whose = {ref[3] for ref in reference.values() if ref is not None}
    return {"columns": [percentile(p) for p in probs], "rows": rows,
            "reference": whose.pop() if len(whose) == 1 else "the reference"}


def quantile_headline(frame: pd.DataFrame, variable: str, side: str, units: str, models: list[str], truth: bool,
                      labels: dict | None = None, p: float = 0.999, lower_bound: float | None = None,
                      true_value: float | None = None, runs: dict | None = None,
                      twins: list[tuple[str, str]] = ()) -> str:
    """The far tail in the variable's units: the data's quantile and the true value (where
    known), the closest and the farthest model, how many lie inside the reference interval,
    the models whose runs disagree by more than that interval, and each Student-t model
    against its Gaussian twin."""
    q = side_probability(p, side)
    metric = physical_quantile_name(q)
    sub = frame[(frame.variable == variable) & frame["lead"].isna() & (frame.metric == metric)]
    row = {r.model: r for r in sub.itertuples()}
    data = row.get("data")
    if data is None:
        return ""
    name = lambda m: _label(labels, m)  # noqa: E731
    k = quantile_decimals(float(data.value), float(data.ci_low), float(data.ci_high))
    show = lambda v: round(float(v), k)  # noqa: E731

    def amount(r) -> str:
        ci = _interval(r, k, lower_bound)
        return f"{fixed(r.value, k)} {units}" + (f" {ci}" if ci else "")

    ref = _quantile_reference({(m, metric): r for m, r in row.items()}, metric, true_value if truth else None)
    text = f"The data's {percentile(q)} is {amount(data)}"
    if ref[3] == "the true process's":
        text += f"; the true process's is {fixed(ref[0], k)} {units}"
        if np.isfinite(ref[1]):
            text += f" (a perfect model's sample of the models' size: [{fixed(ref[1], k)}, {fixed(ref[2], k)}])"
    text += "."
    found = [m for m in models if m in row and np.isfinite(show(row[m].value))]
    if found:
        target = show(ref[0])
        order = sorted(found, key=lambda m: abs(show(row[m].value) - target))
        text += f" Closest to {ref[3]} value: {name(order[0])}, {amount(row[order[0]])}"
        if len(order) > 1:
            text += f"; farthest: {name(order[-1])}, {amount(row[order[-1]])}"
        inside = [m for m in found if np.isfinite(ref[1]) and ref[1] <= show(row[m].value) <= ref[2]]
        text += (f". {len(inside)} of {len(found)} models inside {ref[3]} interval"
                 + (f" ({_join([name(m) for m in inside])})." if inside else "."))
        width = ref[2] - ref[1] if np.isfinite(ref[2] - ref[1]) else math.inf
        for m in found:
            each = (runs or {}).get((m, variable, metric), [])
            if len(each) > 1 and max(each) - min(each) > width:
                text += (f" {name(m)}'s {len(each)} runs disagree by more than that interval: "
                         f"{', '.join(fixed(v, k) for v in each)} {units}; its mean is not a fit.")
    for model, baseline in twins:
        if model in row and baseline in row:
            d_m, d_b = (abs(show(row[x].value) - show(data.value)) for x in (model, baseline))
            text += (f" {name(model)} against {name(baseline)}: {fixed(row[model].value, k)} against "
                     f"{fixed(row[baseline].value, k)} {units}, {fixed(d_m, k)} from the data's value instead "
                     f"of {fixed(d_b, k)}.")
    return text


def _percent(confidence: float) -> str:
    return f"{confidence * 100:.0f} %"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def pair_sentences(comparisons: pd.DataFrame, variable: str, twins: list[tuple[str, str]],
                   states: list[dict], confidence: float, tails: str = "upper", labels: dict | None = None,
                   step_hours: float | None = None) -> list[str]:
    """One line per Student-t model against its Gaussian twin on `variable`: how many of the
    key metrics (or forecast scores, over leads) say better / worse / indistinguishable, and the
    far tail's difference (on each tail of interest) with its interval."""
    out = []
    keep = comparisons[(comparisons.variable == variable)
                       & comparisons.metric.isin(key_metrics(tails))]
    state = {(s["model"], s["variable"]): s["state"] for s in states}
    name = lambda m: _label(labels, m)  # noqa: E731
    heads = [m for side in sides(tails) for m in (headline_metric(side), twcrps_name(0.999, side))]
    for model, baseline in twins:
        pair = keep[(keep.model == model) & (keep.baseline == baseline)]
        if pair.empty:
            continue
        counts = pair.verdict.value_counts()
        forecast = pair["lead"].notna().any()
        what = "scores over all leads" if forecast else "metrics in the table"
        text = (f"{name(model)} against {name(baseline)} ({pair.replicates.iloc[0]} runs): {verdict_counts(counts)} "
                f"of {len(pair)} {what}.")
        lead_one = pair[pair["lead"] == pair["lead"].min()] if forecast else pair
        for r in lead_one[lead_one.metric.isin(heads)].itertuples():
            at = f", lead {lead_hours(int(r.lead), step_hours)}" if forecast else ""
            text += (f" Far tail ({short_name(r.metric)}{at}): difference of errors {fmt(r.difference, 2)}, "
                     f"{_percent(confidence)} interval [{fmt(r.ci_low, 2)}, {fmt(r.ci_high, 2)}]: {r.verdict}"
                     f"{resolution_words(r)} (negative: {name(model)} is closer).{unadjusted_words(r)}")
        ends = [state.get((m, variable)) for m in (model, baseline)]
        if all(e == STATES[2] for e in ends):
            text += " Both are stalled far from the data: this says little about the extremes."
        elif STATES[0] in ends:
            text += " Not converged: may change with more training."
        out.append(text)
    return out


def verdict_counts(counts) -> str:
    """"better on 1, worse on 0, indistinguishable on 2, inconclusive on 5" (inconclusive only
    where there is one)."""
    text = (f"better on {counts.get('better', 0)}, worse on {counts.get('worse', 0)}, indistinguishable on "
            f"{counts.get('indistinguishable', 0)}")
    return text + (f", inconclusive on {counts.get('inconclusive')}" if counts.get("inconclusive", 0) else "")


def resolution_words(row) -> str:
    """What a "no difference" could have missed: the interval's half-width (its resolution) and
    the relevant difference it is judged against, in the metric's units."""
    resolution = getattr(row, "resolution", math.nan)
    if row.verdict not in ("indistinguishable", "inconclusive") or not np.isfinite(resolution):
        return ""
    relevant = getattr(row, "relevant", math.nan)
    matters = f"±{fmt(relevant, 2)}" if np.isfinite(relevant) else "the relevant difference"
    if row.verdict == "indistinguishable":
        return f", no difference that matters: the whole interval lies within {matters} (resolution ±{fmt(resolution, 2)})"
    if np.isfinite(relevant) and resolution <= relevant:
        return f", the interval reaches beyond the {matters} that matters (resolution ±{fmt(resolution, 2)})"
    return (f", too coarse to say no difference: these runs resolve only differences beyond ±{fmt(resolution, 2)}, "
            f"and {matters} is what matters")


def unadjusted_words(row) -> str:
    """Said of a row that is not `better`/`worse` although its interval leaves out 0."""
    if row.verdict in ("better", "worse") or not (row.ci_high < 0 or row.ci_low > 0):
        return ""
    return " Its interval leaves out 0, but not after the adjustment for the pair's other metrics."


def baseline_summary(comparisons: pd.DataFrame, variable: str, twins: list[tuple[str, str]], tails: str = "upper",
                     labels: dict | None = None) -> str:
    """The Student-t models against the other Gaussian baselines (INC, softlog, PCP), counted."""
    pairs = set(map(tuple, comparisons[["model", "baseline"]].drop_duplicates().to_numpy())) - set(twins)
    rest = comparisons[(comparisons.variable == variable)
                       & comparisons.metric.isin(key_tail_metrics(tails) + KEY_WET_METRICS)
                       & np.array([p in pairs for p in zip(comparisons.model, comparisons.baseline)], dtype=bool)]
    if rest.empty:
        return ""
    counts = rest.verdict.value_counts()
    baselines = sorted(_label(labels, b) for b in set(rest.baseline))
    return (f"Against the other Gaussian baselines ({', '.join(baselines)}): {verdict_counts(counts)} "
            f"of {len(rest)} comparisons on the key metrics.")


def multiplicity(comparisons: pd.DataFrame, confidence: float) -> str:
    """The verdicts' rule, stated once: the multiplicity adjustment and what "no difference" needs;
    then how many of comparisons.csv's rows say what."""
    n = len(comparisons)
    if not n:
        return ""
    alpha = 1 - confidence
    counts = comparisons.verdict.value_counts()
    unadjusted = int(((comparisons.ci_high < 0) | (comparisons.ci_low > 0)).sum())
    return (f"How a verdict is reached: a pair's key metrics on one variable (forecast scores: over all leads) are "
            f"tested together, and so are its other metrics, with the Benjamini-Hochberg adjustment at a false "
            f"discovery rate of {fmt(alpha * 100, 2)} % (comparisons.csv: p_value, p_adjusted); better or worse needs "
            f"an adjusted p-value below {fmt(alpha, 2)}. Otherwise, indistinguishable needs the whole interval to lie "
            f"within the difference that matters for the metric (evaluation.relevant_difference; comparisons.csv: "
            f"relevant), and inconclusive says it does not. Of the {n} comparisons, "
            f"{verdict_counts(counts)}; {unadjusted} intervals leave out 0 before the adjustment. The intervals "
            f"shown are not adjusted.")


def same_noise(variable: str, twins: list[tuple[str, str]], nu: dict[str, dict], labels: dict | None = None) -> str:
    """Where nu: auto chose the same noise for both models of twin pairs on `variable` (e.g.
    Gaussian on a cube root with no heavy tail left): said once per variable."""
    def noise(model: str) -> str | None:
        value = nu.get(model, {}).get(variable)
        return None if value is None else str(value)

    same = [_label(labels, model) for model, baseline in twins
            if noise(model) is not None and noise(model) == noise(baseline)]
    if not same:
        return ""
    return (f"On {variable}, {_join(same)} trained with the same noise as {'its' if len(same) == 1 else 'their'} "
            f"Gaussian twin (nu: auto found no heavy tail in {variable} as the model sees it): "
            f"{'its comparison there is' if len(same) == 1 else 'their comparisons there are'} two trainings of "
            f"one method, not Student-t against Gaussian noise.")


def trained_once(comparisons: pd.DataFrame, replicates: dict[str, int], labels: dict | None = None) -> str:
    """The models compared with a single training run, said once."""
    once = [_label(labels, m) for m in dict.fromkeys(list(comparisons.model) + list(comparisons.baseline))
            if replicates.get(m, 1) == 1]
    if not once:
        return ""
    return (f"{_join(once)} {'was' if len(once) == 1 else 'were'} trained once: the intervals of "
            f"{'its' if len(once) == 1 else 'their'} comparisons cover ensemble sampling and test-data noise but not the "
            f"spread between training runs, so they are too narrow to settle the question (set replicates: 3 or more).")


def dry_note(variable: dict, raised: dict[str, float] | None = None, labels: dict | None = None) -> str:
    """What the dry fraction error means under `dry_below: auto`, for a zero-inflated variable,
    where the threshold was raised for some model (`raised`: model -> threshold, from the first
    training's ensemble); empty where nothing was raised."""
    target = variable.get("validation_dry_fraction")
    if variable.get("dry_below_rule") != "calibrated" or target is None or not raised:
        return ""
    units = variable.get("units", "")
    which = _join([f"{_label(labels, m)} ({(fmt(t, 3) + ' ' + units).strip()})" for m, t in raised.items()])
    return (f"Dry fraction: an ensemble wetter than the validation split (dry fraction {fmt(target, 3)}) has its "
            f"dry threshold raised until it is as dry (dry_below: auto); here the first training of {which}. "
            "For those, the dry fraction error measures how the test split differs from the validation split, not "
            "the model, and the wet mean and low wet percentiles are partly the calibration's (it removes the "
            "model's small amounts, the data keep theirs); where every training of both models of a pair was "
            "raised, their dry fractions are not compared. The percentiles and masses of all values do not "
            "depend on it.")


def twin_pairs(config: dict, comparisons: pd.DataFrame) -> list[tuple[str, str]]:
    """The compared pairs that differ only in their noise (and replicates): the paired verdicts
    that answer the question."""
    models = config["models"]
    out = []
    for model, baseline in comparisons[["model", "baseline"]].drop_duplicates().itertuples(index=False):
        if model in models and baseline in models and is_twin(models[model], models[baseline]):
            out.append((model, baseline))
    return out


def variable_order(kurtosis: dict[str, float]) -> list[str]:
    """Heaviest tail first (the data's excess kurtosis)."""
    return sorted(kurtosis, key=lambda v: -np.nan_to_num(kurtosis[v], nan=-np.inf))


def answer(config: dict, frame: pd.DataFrame, comparisons: pd.DataFrame, models: list[str],
           replicates: dict[str, int], kurtosis: dict[str, float], states: list[dict],
           nu: dict[str, dict], truth: bool, runs: dict | None = None, stats: dict | None = None,
           labels: dict | None = None, side_order: dict[str, list[str]] | None = None,
           step_hours: float | None = None, true_quantiles: dict[str, dict[str, float]] | None = None,
           dry_raised: dict[str, dict[str, float]] | None = None) -> dict:
    """Everything the first screen shows, per variable in variable_order: per tail of interest
    (heaviest first, `side_order`), the quantiles in the variable's units; then the verdicts in
    words; then the composite (where the models end, and the key tail metrics). frame: one row
    per model, variable and metric (replicate means); runs: each run's values (runs_of);
    dry_raised: variable -> {model: the dry threshold its first training's ensemble was raised to}."""
    confidence = config["evaluation"]["confidence"]
    quantiles = config["evaluation"]["quantiles"]
    twins = twin_pairs(config, comparisons)
    info = (stats or {}).get("variables", {})
    out = []
    for variable in variable_order(kurtosis):
        tails = info.get(variable, {}).get("tails", "upper")
        units = info.get(variable, {}).get("units", "")
        bound = info.get(variable, {}).get("lower_bound")
        true = (true_quantiles or {}).get(variable, {})
        order = (side_order or {}).get(variable) or list(sides(tails))
        out.append({"variable": variable, "kurtosis": fmt(kurtosis[variable], 2),
                    "heavy": bool(kurtosis[variable] > HEAVY_KURTOSIS), "tails": tails, "units": units,
                    "sides": [{"side": side, "words": tail_words(side, units),
                               "headline": quantile_headline(
                                   frame, variable, side, units, models, truth, labels, lower_bound=bound,
                                   true_value=true.get(physical_quantile_name(side_probability(0.999, side))),
                                   runs=runs, twins=[t for t in twins if t[0] in models and t[1] in models]),
                               "table": quantile_table(frame, variable, side, quantiles, models, replicates, truth,
                                                       labels, bound, true, runs)} for side in order],
                    "headline": headline(frame, variable, models, states, truth, labels, tails),
                    "table": distance_table(frame, variable, models, replicates, truth, runs, states, tails, labels),
                    "pairs": pair_sentences(comparisons, variable, twins, states, confidence, tails, labels, step_hours),
                    "baselines": baseline_summary(comparisons, variable, twins, tails, labels),
                    "same_noise": same_noise(variable, twins, nu, labels),
                    "dry_note": dry_note(info.get(variable, {}), (dry_raised or {}).get(variable), labels)})
    return {"variables": out, "multiplicity": multiplicity(comparisons, confidence),
            "trained_once": trained_once(comparisons, replicates, labels), "ranking_rule": RANKING_RULE}
