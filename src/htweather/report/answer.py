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
from scipy import stats

from ..config import is_twin
from ..evaluation.comparisons import FORECAST_SCORES, KEY_TAIL_METRICS, KEY_WET_METRICS
from ..evaluation.convergence import STATES, near_limit
from ..tail_metrics import error, ideal
from .text import fmt

HEAVY_KURTOSIS = 1.0  # excess kurtosis above which a variable is called heavy-tailed (a normal has 0)
HEADLINE = "exceedance_ratio_p999"

# column headings: what each key metric measures, and its perfect value
SHORT_NAMES = {"exceedance_ratio_p99": "mass beyond data's q99", "exceedance_ratio_p999": "mass beyond data's q99.9",
               "quantile_rel_error_0.999": "q99.9 rel. error", "tail_ks": "tail KS",
               "dry_fraction_error": "dry fraction error", "wet_quantile_rel_error_0.99": "wet q99 rel. error",
               "wet_mean_rel_error": "wet mean rel. error", "crps": "CRPS", "twcrps_p99": "twCRPS above data's q99",
               "twcrps_p999": "twCRPS above data's q99.9"}


def interval_kind(replicates: int) -> str:
    """What a model's interval in metrics.csv is: a t interval over its replicates (clipped to
    the metric's range), or a bootstrap interval of its one run."""
    return f"{replicates} runs: t interval" if replicates > 1 else "1 run: bootstrap"


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


def _closest(sub: pd.DataFrame, models: list[str], runs: dict, variable: str, metric: str) -> str | None:
    """The model whose runs are nearest the ideal on `metric` on average (the error the
    comparisons use); `sub`: one row per model (replicate means) of one variable."""
    rows = sub[(sub.metric == metric) & sub.model.isin(models)]
    errors = {r.model: float(np.mean([error(metric, v) for v in runs.get((r.model, variable, metric), [r.value])]))
              for r in rows.itertuples()}
    return min(errors, key=errors.get) if errors else None


def distance_table(frame: pd.DataFrame, variable: str, models: list[str], replicates: dict[str, int],
                   truth: bool, runs: dict | None = None, states: list[dict] = ()) -> dict:
    """Each model's key metrics on `variable` with their intervals, and where it ends (its
    whole ensemble's tail error and state, from `states`).

    `closest`: the model whose runs are nearest the ideal value on average (the error the
    comparisons use: the mean of three runs that scatter around the ideal is not close). A
    cell is `within` where the model could be right on that metric alone: where the true
    process is known, every run's value is one that a perfect model's sample of the same size
    gives (inside the truth ensemble's interval, or no farther from the ideal than the truth is
    where that has no interval); else its interval covers the ideal value."""
    runs = runs or {}
    sub = frame[(frame.variable == variable) & frame["lead"].isna()]
    metrics = [m for m in KEY_TAIL_METRICS + KEY_WET_METRICS if (sub.metric == m).any()]
    value = {(r.model, r.metric): r for r in sub.itertuples()}
    closest = {m: _closest(sub, models, runs, variable, m) for m in metrics}
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
                within = all(band[0] <= v <= band[1] for v in each)
            else:
                low, high = _band(r)
                within = low <= ideal(m) <= high
            cells.append({"text": fmt(r.value, 3), "ci": "" if pd.isna(r.ci_low) else
                          f"[{fmt(r.ci_low, 2)}, {fmt(r.ci_high, 2)}]", "within": bool(within and model != "truth"),
                          "closest": closest.get(m) == model,
                          "runs": "runs: " + ", ".join(fmt(v, 3) for v in each) if len(each) > 1 else ""})
        end = ends.get(model)
        if model == "truth" and limit is not None:  # the reference sample: what sampling noise alone gives
            end = {"final_error": _reference(ends), "state": "reference sample"}
        rows.append({"model": model, "kind": "bootstrap" if model == "truth" else interval_kind(replicates.get(model, 1)),
                     "truth": model == "truth", "cells": cells,
                     "tail_error": fmt(end["final_error"], 2) if end else "",
                     "state": _STATE_WORDS.get(end["state"], end["state"]) if end else "",
                     "there": bool(end and model != "truth" and limit is not None and end["final_error"] <= limit)})
    return {"metrics": [{"name": m, "short": SHORT_NAMES.get(m, m), "ideal": fmt(ideal(m))} for m in metrics],
            "rows": rows, "limit": fmt(limit, 2) if limit is not None else ""}


_STATE_WORDS = {STATES[0]: "still improving", STATES[1]: "converged, near", STATES[2]: "stalled, far"}


def _reference(ends: dict[str, dict]) -> float | None:
    """The reference sample's tail error (what sampling noise alone gives); None without one."""
    refs = [s["reference_error"] for s in ends.values() if not math.isnan(s.get("reference_error", math.nan))]
    return refs[0] if refs else None


def _near_limit(ends: dict[str, dict]) -> float | None:
    reference = _reference(ends)
    return None if reference is None else near_limit(reference)


def headline(frame: pd.DataFrame, variable: str, models: list[str], states: list[dict], truth: bool,
             runs: dict | None = None) -> str:
    """Whether the models get there on `variable` (from where each ends: its whole ensemble's
    tail error against a reference sample of as many fields), then the far tail in words."""
    runs = runs or {}
    sub = frame[(frame.variable == variable) & frame["lead"].isna()]
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
            text = f"{_join(near)} {'gets' if len(near) == 1 else 'get'} there on {variable}; {_join(far)} {'does' if len(far) == 1 else 'do'} not."
        best = min(ends, key=lambda m: ends[m]["final_error"])
        text += (f" Tail error (mean distance from the ideal over the four key tail metrics): from "
                 f"{fmt(ends[best]['final_error'], 2)} ({best}) to {fmt(max(s['final_error'] for s in ends.values()), 2)}, "
                 f"against {fmt(ref, 2)} for a sample of the {'true process' if truth else 'validation split'} "
                 f"of as many fields; within {fmt(limit, 2)} counts as there.")
        still = [m for m, s in ends.items() if s["state"] == STATES[0]]
        if still:
            text += f" Still improving at the end of training: {_join(still)}."
    best = _closest(sub, models, runs, variable, HEADLINE)
    if best is not None:
        value = float(sub[(sub.metric == HEADLINE) & (sub.model == best)].value.iloc[0])
        reference = sub[(sub.metric == HEADLINE) & (sub.model == "truth")]
        perfect = (f"; a perfect model's sample of this size: {fmt(float(reference.value.iloc[0]), 2)}"
                   if len(reference) else "")
        text += (f" Beyond the data's 99.9th percentile the closest, {best}, puts {fmt(value, 2)} of the data's mass "
                 f"there (1 is right{perfect}).")
    return text.strip()


def _percent(confidence: float) -> str:
    return f"{confidence * 100:.0f} %"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def pair_sentences(comparisons: pd.DataFrame, variable: str, twins: list[tuple[str, str]],
                   states: list[dict], confidence: float) -> list[str]:
    """One line per Student-t model against its Gaussian twin on `variable`: how many of the
    key metrics (or forecast scores, over leads) say better / worse / indistinguishable, and the
    far tail's difference with its interval."""
    out = []
    keep = comparisons[(comparisons.variable == variable)
                       & comparisons.metric.isin(KEY_TAIL_METRICS + KEY_WET_METRICS + FORECAST_SCORES)]
    state = {(s["model"], s["variable"]): s["state"] for s in states}
    for model, baseline in twins:
        pair = keep[(keep.model == model) & (keep.baseline == baseline)]
        if pair.empty:
            continue
        counts = pair.verdict.value_counts()
        forecast = pair["lead"].notna().any()
        what = "scores over all leads" if forecast else "metrics in the table"
        text = (f"{model} against {baseline} ({pair.replicates.iloc[0]} runs): better on {counts.get('better', 0)}, "
                f"worse on {counts.get('worse', 0)}, indistinguishable on {counts.get('indistinguishable', 0)} "
                f"of {len(pair)} {what}.")
        lead_one = pair[pair["lead"] == pair["lead"].min()] if forecast else pair
        head = lead_one[lead_one.metric.isin([HEADLINE, "twcrps_p999"])]
        if len(head):
            r = head.iloc[0]
            at = f", lead {int(r['lead'])}" if forecast else ""
            text += (f" Far tail ({SHORT_NAMES.get(r.metric, r.metric)}{at}): difference of errors {fmt(r.difference, 2)}, "
                     f"{_percent(confidence)} interval [{fmt(r.ci_low, 2)}, {fmt(r.ci_high, 2)}]: {r.verdict} "
                     f"(negative: {model} is closer).")
        ends = [state.get((m, variable)) for m in (model, baseline)]
        if all(e == STATES[2] for e in ends):
            text += " Both are stalled far from the data: this says little about the extremes."
        elif STATES[0] in ends:
            text += " Not converged: may change with more training."
        out.append(text)
    return out


def baseline_summary(comparisons: pd.DataFrame, variable: str, twins: list[tuple[str, str]]) -> str:
    """The Student-t models against the other Gaussian baselines (INC, softlog, PCP), counted."""
    pairs = set(map(tuple, comparisons[["model", "baseline"]].drop_duplicates().to_numpy())) - set(twins)
    rest = comparisons[(comparisons.variable == variable)
                       & comparisons.metric.isin(KEY_TAIL_METRICS + KEY_WET_METRICS)
                       & np.array([p in pairs for p in zip(comparisons.model, comparisons.baseline)], dtype=bool)]
    if rest.empty:
        return ""
    counts = rest.verdict.value_counts()
    baselines = sorted(set(rest.baseline))
    return (f"Against the other Gaussian baselines ({', '.join(baselines)}): better on {counts.get('better', 0)}, "
            f"worse on {counts.get('worse', 0)}, indistinguishable on {counts.get('indistinguishable', 0)} "
            f"of {len(rest)} comparisons on the key metrics.")


def multiplicity(comparisons: pd.DataFrame, confidence: float) -> str:
    """How many `better` / `worse` verdicts chance alone gives among N comparisons."""
    n = len(comparisons)
    if not n:
        return ""
    found = int(comparisons.verdict.isin(["better", "worse"]).sum())
    alpha = 1 - confidence
    low, high = (int(x) for x in stats.binom.ppf([0.025, 0.975], n, alpha))
    return (f"Many comparisons: of the {n} in comparisons.csv (every pair, variable, metric and lead), {found} say "
            f"better or worse at {_percent(confidence)}. If no model differed from its baseline, about {fmt(alpha * n, 2)} "
            f"would by chance alone ({low} to {high} in 95 % of cases if the comparisons were independent; the "
            f"metrics of one pair move together, so the spread is wider). A single verdict among many is weak "
            f"evidence; a pattern across metrics and variables is stronger.")


def same_noise(variable: str, twins: list[tuple[str, str]], nu: dict[str, dict]) -> str:
    """Where nu: auto chose the same noise for both models of twin pairs on `variable` (e.g.
    Gaussian on a cube root with no heavy tail left): said once per variable."""
    def noise(model: str) -> str | None:
        value = nu.get(model, {}).get(variable)
        return None if value is None else str(value)

    same = [model for model, baseline in twins if noise(model) is not None and noise(model) == noise(baseline)]
    if not same:
        return ""
    return (f"On {variable}, {_join(same)} trained with the same noise as {'its' if len(same) == 1 else 'their'} "
            f"Gaussian twin (nu: auto found no heavy tail in {variable} as the model sees it): "
            f"{'its comparison there is' if len(same) == 1 else 'their comparisons there are'} two trainings of "
            f"one method, not Student-t against Gaussian noise.")


def trained_once(comparisons: pd.DataFrame, replicates: dict[str, int]) -> str:
    """The models compared with a single training run, said once."""
    once = [m for m in dict.fromkeys(list(comparisons.model) + list(comparisons.baseline)) if replicates.get(m, 1) == 1]
    if not once:
        return ""
    return (f"{_join(once)} {'was' if len(once) == 1 else 'were'} trained once: the intervals of "
            f"{'its' if len(once) == 1 else 'their'} comparisons cover ensemble sampling and test-data noise but not the "
            f"spread between training runs, so they are too narrow to settle the question (set replicates: 3 or more).")


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
           nu: dict[str, dict], truth: bool, runs: dict | None = None) -> dict:
    """Everything the first screen shows, per variable in variable_order. frame: one row per
    model, variable and metric (replicate means); runs: each run's values (runs_of)."""
    confidence = config["evaluation"]["confidence"]
    twins = twin_pairs(config, comparisons)
    out = []
    for variable in variable_order(kurtosis):
        out.append({"variable": variable, "kurtosis": fmt(kurtosis[variable], 2),
                    "heavy": bool(kurtosis[variable] > HEAVY_KURTOSIS),
                    "headline": headline(frame, variable, models, states, truth, runs),
                    "table": distance_table(frame, variable, models, replicates, truth, runs, states),
                    "pairs": pair_sentences(comparisons, variable, twins, states, confidence),
                    "baselines": baseline_summary(comparisons, variable, twins),
                    "same_noise": same_noise(variable, twins, nu)})
    return {"variables": out, "multiplicity": multiplicity(comparisons, confidence),
            "trained_once": trained_once(comparisons, replicates)}
