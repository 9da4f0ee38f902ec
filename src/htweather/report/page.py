"""The report: one self-contained HTML page (results/report.html), organised by the questions a
scientist asks, with the figures embedded, the metrics tables (best model flagged), the
Student-t against Gaussian comparison, checks against the truth where it is known, and the
provenance."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml
from scipy import stats as sstats

from .. import artifacts
from ..config import display_names, replicates
from ..data import synthetic
from ..data.store import grid_shape, load_stats, test_fields
from ..evaluation.comparisons import KEY_SPATIAL_METRICS, KEY_WET_METRICS, forecast_scores
from ..tail_metrics import key_metric_names, sides
from ..evaluation.spatial import is_spatial
from ..evaluation.tails import physical_quantile_name, tail_probabilities
from ..evaluation.convergence import NEAR_FACTOR, NEAR_MARGIN, REFERENCE, STATES, STILL_FALLING
from ..evaluation.convergence import states as convergence_states
from ..evaluation.ranking import best_models
from ..evaluation.tables import summary
from ..generation.ensembles import calibrated_dry
from ..runtime import atomic_path
from . import plots
from .answer import answer, interval_kind, runs_of
from .text import fmt, lead_hours
from .figures import SWEEP_METRICS, SWEEP_METRICS_LOWER, closed_form_marginals, load_ensembles, nu_sweep_points
from .figures import step_hours



def _image(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def metrics_table(frame: pd.DataFrame, model_order: list[str], by_lead: bool = False,
                  reference_rows: bool = False, step_hours: float | None = None) -> list[dict]:
    """Rows (variable, metric[, lead]) with one cell per model, the generative model closest to
    perfect flagged (`best`; the least wrong, not necessarily right). Rows that no generative
    model fills (the data's or the truth's own statistics) are left out unless reference_rows."""
    if frame.empty:
        return []
    keys = ["variable", "metric"] + (["lead"] if by_lead else [])
    best = {tuple(r[:-1]): r[-1] for r in best_models(frame, tuple(keys)).itertuples(index=False)}
    sources = [m for m in model_order if m not in ("truth", "data")]
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        variable, metric = key[0], key[1]
        by_model = {r.model: r for r in group.itertuples()}
        if not reference_rows and not any(m in by_model for m in sources):
            continue
        cells = []
        for model in model_order:
            r = by_model.get(model)
            if r is None:
                cells.append({"text": "", "ci": "", "best": False, "truth": model == "truth"})
                continue
            ci = f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]" if pd.notna(r.ci_low) else ""
            cells.append({"text": fmt(r.value), "ci": ci, "best": best.get(key) == model,
                          "truth": model == "truth"})
        rows.append({"variable": variable, "metric": metric,
                     "lead": lead_hours(int(key[2]), step_hours) if by_lead and pd.notna(key[2]) else "",
                     "cells": cells})
    return rows


def verdicts(comparisons: pd.DataFrame, frame: pd.DataFrame, order: list[str] | None = None,
             metrics: list[str] = key_metric_names("both") + KEY_WET_METRICS + forecast_scores("both"),
             step_hours: float | None = None) -> list[dict]:
    """Per variable (in `order`, else as they come): every comparison on `metrics` (by default
    the key tail metrics and forecast scores by lead), with both models' values, the difference
    of their errors, its interval and the verdict: the tables behind the first screen's sentences."""
    out = []
    keep = comparisons[comparisons.metric.isin(metrics)]
    for variable, by_variable in keep.groupby("variable", sort=False):
        rows = []
        for r in by_variable.itertuples():
            lead = None if pd.isna(r.lead) else int(r.lead)
            value = {m: _value(frame, m, variable, r.metric, lead) for m in (r.model, r.baseline)}
            rows.append({"model": r.model, "baseline": r.baseline, "metric": r.metric,
                         "lead": "" if lead is None else lead_hours(lead, step_hours),
                         "model_value": fmt(value[r.model]), "baseline_value": fmt(value[r.baseline]),
                         "difference": fmt(r.difference), "ci": f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
                         "resolution": fmt(getattr(r, "resolution", np.nan)),
                         "p_adjusted": fmt(getattr(r, "p_adjusted", np.nan), 2),
                         "verdict": r.verdict, "replicates": r.replicates})
        out.append({"variable": variable, "rows": rows})
    if order:
        out.sort(key=lambda v: order.index(v["variable"]) if v["variable"] in order else len(order))
    return out


def _row(frame: pd.DataFrame, model: str, variable: str | None, metric: str, lead=None):
    """The row of `model`'s `metric` on `variable` (any variable: None) at `lead` (none: None)."""
    sub = frame[(frame.model == model) & (frame.metric == metric)]
    if variable is not None:
        sub = sub[sub.variable == variable]
    sub = sub[sub["lead"].isna()] if lead is None else sub[sub["lead"] == lead]
    return next(sub.itertuples(), None)


def _value(frame: pd.DataFrame, model: str, variable: str, metric: str, lead) -> float:
    row = _row(frame, model, variable, metric, lead)
    return math.nan if row is None else float(row.value)


# the spatial metrics the report's structure table shows (all are in metrics.csv)
STRUCTURE_METRICS = ["psd_log_error", "psd_log_ratio_large", "psd_log_ratio_small",
                     *(f"{m}_{t}" for t in ("p99", "p01") for m in ("object_count_ratio", "object_area_rel_error",
                                                                     "object_peak_rel_error", "sal_structure")),
                     "object_count_ratio_wet", "object_area_rel_error_wet", "sal_structure_wet", "sal_amplitude",
                     "areal_quantile_rel_error_0.99_field", "areal_quantile_rel_error_0.999_field",
                     "areal_quantile_rel_error_0.01_field", "areal_quantile_rel_error_0.001_field"]
# storms in words: metric (without its threshold), ideal, the words for below and above it, how
# the value reads; the objects above the data's 99th percentile (p99) or, for a lower tail,
# below its 1st (p01, of the negated field: a peak is the ascent's strength)
STORM_TRAITS = (("object_count_ratio", 1.0, ("too few", "too many"), "{} × the data's count"),
                ("object_area_rel_error", 0.0, ("too small", "too wide"), "mean area {}"),
                ("object_peak_rel_error", 0.0, ("too weak", "too strong"), "mean peak {}"))
STORM_THRESHOLDS = {"p99": "objects above the data's 99th percentile", "p01": "objects below the data's 1st percentile"}


def _percent(value: float) -> str:
    """A signed percentage, whole below 100 % unless that would round a nonzero value to 0."""
    return f"{value:+.1%}" if 0 < abs(value) < 0.005 else f"{value:+.0%}"


def storm_findings(frame: pd.DataFrame, sources: list[str]) -> list[dict]:
    """Per variable with storm objects, per source (models, the truth): are its storms (objects
    beyond the data's p99, or below its p1 for a lower tail) too many or too few, too small or
    too wide, too weak or too strong? A word only where the 95 % interval excludes the data's
    value; else "right"."""
    found = [(threshold, variable) for threshold in STORM_THRESHOLDS
             for variable in frame[frame.metric == f"{STORM_TRAITS[0][0]}_{threshold}"].variable.unique()]
    out = []
    for threshold, variable in found:
        rows = []
        for source in sources:
            traits = []
            for metric, ideal, (below, above), text in STORM_TRAITS:
                r = _row(frame, source, variable, f"{metric}_{threshold}")
                if r is None:
                    continue
                if pd.notna(r.ci_low) and r.ci_low > ideal:
                    word = above
                elif pd.notna(r.ci_high) and r.ci_high < ideal:
                    word = below
                else:
                    word = "right" if pd.notna(r.ci_low) else "no interval"
                number = (lambda v: f"{v:.2f}") if ideal == 1.0 else _percent
                ci = f" [{number(r.ci_low)}, {number(r.ci_high)}]" if pd.notna(r.ci_low) else ""
                traits.append({"word": word, "detail": text.format(number(r.value)) + ci,
                               "off": word not in ("right", "no interval")})
            if traits:
                rows.append({"source": source, "traits": traits})
        out.append({"variable": variable, "which": STORM_THRESHOLDS[threshold], "rows": rows})
    return out


GLANCE_PROBABILITIES = (0.99, 0.999, 0.9999)


def _glance_probabilities(tails: str) -> list[float]:
    """The quantiles the at-a-glance tables show: those of each tail of interest, lowest first."""
    return sorted(tail_probabilities(list(GLANCE_PROBABILITIES), tails))


def describe(values: np.ndarray, tails: str = "upper") -> dict:
    v = plots.finite(values)
    probs = _glance_probabilities(tails)
    q = np.quantile(v, probs)
    out = {"mean": v.mean(), "std": v.std(), "skewness": sstats.skew(v), "excess kurtosis": sstats.kurtosis(v)}
    if tails != "upper":
        out["min"] = v.min()
    out.update({f"q{p:g}": x for p, x in zip(probs, q)})
    if tails != "lower":
        out["max"] = v.max()
    return out


def describe_closed_form(dist, tails: str = "upper") -> dict:
    if isinstance(dist, synthetic.ZeroInflatedGPD):
        m = dist.moment_summary()
        mean, std, skew, kurt = m["mean"], math.sqrt(m["var"]), m["skewness"], m["kurtosis"] - 3
    else:
        mean, var, skew, kurt = (float(x) for x in dist.stats(moments="mvsk"))
        std = math.sqrt(var)
    probs = _glance_probabilities(tails)
    out = {"mean": mean, "std": std, "skewness": skew, "excess kurtosis": kurt}
    if tails != "upper":
        out["min"] = float("nan")
    out.update({f"q{p:g}": float(x) for p, x in zip(probs, dist.ppf(probs))})
    if tails != "lower":
        out["max"] = float("nan")
    return out

FORECAST_METRICS = ["crps", "fair_crps", *forecast_scores("both")[1:], "spread_skill", "rmse", "spread", "rank_flatness"]


def return_level_table(frame: pd.DataFrame, sources: list[str], periods: list[int]) -> dict:
    """Return levels per variable and period, GEV and empirical side by side for each source
    (data, truth, forecast models), the period in the block's real length, and per variable a
    sentence on where the forecast models' longest-period level stands against the data's."""
    block_days = _row(frame, "data", None, "block_days")
    unit, per_block = plots.return_period_unit(None if block_days is None else float(block_days.value))
    rows, findings = [], []
    for variable in dict.fromkeys(frame[frame.metric.str.startswith("return_level_")].variable):
        for period in periods:
            cells = []
            for source in sources:
                for kind in ("return_level_", "empirical_return_level_"):
                    r = _row(frame, source, variable, f"{kind}{period}")
                    cells.append({"text": fmt(r.value, 3) if r is not None else "",
                                  "ci": f"[{fmt(r.ci_low, 3)}, {fmt(r.ci_high, 3)}]"
                                  if r is not None and pd.notna(r.ci_low) else ""})
            rows.append({"variable": variable, "period": f"{fmt(period * per_block, 3)} {unit}", "cells": cells})
        longest, data = max(periods), _row(frame, "data", variable, f"return_level_{max(periods)}")
        models = [s for s in sources if s not in ("data", "truth")]
        if data is not None and pd.notna(data.ci_low) and models:
            words = []
            for m in models:
                r = _row(frame, m, variable, f"return_level_{longest}")
                if r is not None:
                    where = ("below" if r.value < data.ci_low else "above" if r.value > data.ci_high else "within")
                    words.append(f"{m} {fmt(r.value, 3)} ({where} the data's interval)")
            if words:
                findings.append(f"{variable}, {fmt(longest * per_block, 3)}-{unit[:-1]} level (GEV): data "
                                f"{fmt(data.value, 3)} [{fmt(data.ci_low, 3)}, {fmt(data.ci_high, 3)}]; "
                                + ", ".join(words) + ".")
    return {"rows": rows, "findings": findings, "unit": unit}


def dry_raised(attrs_by_model: dict[str, dict], models: list[str]) -> dict[str, dict[str, float]]:
    """Per variable, the models whose (first training's) ensemble had its dry threshold raised
    (`dry_below: auto`), with the threshold."""
    out: dict[str, dict[str, float]] = {}
    for m in models:
        for variable, threshold in calibrated_dry(attrs_by_model.get(m, {})).items():
            out.setdefault(variable, {})[m] = threshold
    return out


def truth_checks(frame: pd.DataFrame, config: dict, stats: dict, truth: dict | None) -> list[dict]:
    """Synthetic data only: the data's estimates (tail quantiles, return levels) with their 95 %
    intervals beside the true values (quantiles in closed form or from a long simulation; return
    levels of the true process' long simulation), and whether each interval covers the truth."""
    if truth is None:
        return []
    rows = []
    data = frame[frame.model == "data"]
    for r in data.itertuples():
        if r.metric.startswith("quantile_"):
            p = float(r.metric.split("_")[1])
            true, kind = float(truth[r.variable].ppf(p)), getattr(truth[r.variable], "kind", "closed form")
        elif r.metric.startswith(("return_level_", "empirical_return_level_")):
            period = r.metric.rsplit("_", 1)[1]
            match = frame[(frame.model == "truth") & (frame.variable == r.variable)
                          & (frame.metric == f"empirical_return_level_{period}")]
            if match.empty:
                continue
            true, kind = float(match.value.iloc[0]), "true process, long simulation (empirical)"
        else:
            continue
        covered = bool(r.ci_low <= true <= r.ci_high) if pd.notna(r.ci_low) else None
        rows.append({"variable": r.variable, "statistic": r.metric, "estimate": fmt(r.value),
                     "ci": f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]", "true": fmt(true), "kind": kind,
                     "covered": "yes" if covered else ("no" if covered is not None else "")})
    return rows


def _coverage_summary(checks: list[dict]) -> str:
    """"n of m covered" per kind of statistic, for the caption."""
    groups = {"tail quantiles": [c for c in checks if c["statistic"].startswith("quantile_")],
              "GEV return levels": [c for c in checks if c["statistic"].startswith("return_level_")],
              "empirical return levels": [c for c in checks if c["statistic"].startswith("empirical_")]}
    parts = [f"{sum(c['covered'] == 'yes' for c in rows)} of {len(rows)} {name}"
             for name, rows in groups.items() if rows]
    if not parts:
        return ""
    judged = [c for c in checks if c["covered"]]
    covered = sum(c["covered"] == "yes" for c in judged)
    text = "Covered: " + ", ".join(parts) + "."
    # how short of 95 % is more than chance: below the binomial's 2.5 % point
    if judged and covered < sstats.binom.ppf(0.025, len(judged), 0.95):
        text += (f" {covered} of {len(judged)} is fewer than 95 % intervals give by chance: these intervals of the "
                 "test data's own estimates are too narrow here. They are not the comparisons' intervals, which add "
                 "the spread between trainings to the data's noise; how often those err is measured over whole "
                 "trainings by the A/A check (aa_check).")
    return text


def tail_index_rows(attrs: dict[str, dict]) -> list[dict]:
    """What nu: auto chose: per model and variable, the exceedances against a normal's, the
    fitted nu, Hill's estimate for the record, and nu."""
    rows = []
    for model, a in attrs.items():
        for variable, t in json.loads(a.get("tail_index", "{}") or "{}").items():
            if t.get("method") != "exceedance":  # a model file from before the exceedance fit
                continue
            ratios = ", ".join(f"{k:g}: {p / g:.3g}×" for k, p, g in
                               zip(t["levels"], t["exceedance"], t["gaussian_exceedance"])) or "none"
            rows.append({"model": model, "variable": variable, "ratios": ratios, "nu_fit": fmt(t["nu_fit"]),
                         "hill": "n/a" if t.get("hill_alpha") is None else fmt(t["hill_alpha"]), "n": t["n"],
                         "heavy": "yes" if t["heavy"] else "no",
                         "nu": "inf" if math.isinf(t["nu"]) else fmt(t["nu"])})
    return rows


def selection_tables(paths: list[str | Path]) -> list[dict]:
    """The nu: select choices (evaluation.selection JSON files) as table rows."""
    out = []
    for path in paths:
        s = json.loads(Path(path).read_text())
        # each variable's own key metrics (a lower tail's are named by its lower probabilities)
        columns = [(v, m) for v in s["variables"] for m in s["candidates"][0]["metrics"][v]]
        rows = [{"candidate": r["candidate"], "nu": r["nu"] if r["nu"] == "inf" else fmt(r["nu"]),
                 "tail_error": fmt(r["tail_error"]), "chosen": r["nu"] == s["chosen"],
                 "scores": [fmt(r["metrics"][v][m]) for v, m in columns]}
                for r in s["candidates"]]
        out.append({"model": s["model"], "variables": s["variables"], "columns": columns, "rows": rows,
                    "chosen": s["chosen"] if s["chosen"] == "inf" else fmt(s["chosen"]),
                    "margin": fmt(s["margin"]), "validation_times": s["validation_times"]})
    return out


def sampler_budget_rows(table: pd.DataFrame, sampling: dict) -> dict:
    """The sampler-budget table per setting: evaluations, seconds per member and, per model, the
    key tail comparisons indistinguishable from the reference over all variables ("12 of 12");
    the configured sampler's rows flagged."""
    table = table.assign(options=table.options.astype(object).fillna(""))
    models = list(dict.fromkeys(table.model))
    rows = []
    for (solver, steps, options), group in table.groupby(["solver", "steps", "options"], sort=False):
        cells = {}
        for model, sub in group.groupby("model"):
            cells[model] = ("reference" if sub.compared.sum() == 0 else
                            f"{int(sub.indistinguishable.sum())} of {int(sub.compared.sum())}")
        overrides = dict(item.split("=") for item in options.split()) if options else {}
        # flow's heun, euler and ab2 step uniformly in t: the noise levels do not apply to them
        configured = any(solver == sampling[f]["solver"] and steps == sampling[f]["steps"]
                         and (f == "flow" and solver != "dpmpp_2m"
                              or all(float(v) == sampling[f][k] for k, v in overrides.items()))
                         for f in ("edm", "flow"))
        rows.append({"setting": " ".join([f"{solver}, {steps} steps", options]).strip(),
                     "evaluations": int(group.evaluations.iloc[0]), "s_per_member": fmt(group.s_per_member.mean(), 2),
                     "cells": [cells.get(m, "") for m in models], "configured": configured})
    return {"models": models, "rows": sorted(rows, key=lambda r: -r["evaluations"])}


def aa_rates_rows(rates: pd.DataFrame, confidence: float = 0.95) -> list[dict]:
    """The A/A check's false-verdict rate per model and variable (all metric families), with its
    interval over trainings, the rate before the adjustment, the share of the adjustment's
    families with any false verdict, and how often the comparisons were inconclusive
    (aa_rates.csv's "all" rows). `above`: the whole interval above 1 - confidence."""
    alpha = 1 - confidence
    pct = lambda v, lo, hi: f"{100 * v:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"  # noqa: E731
    rows = []
    for r in rates[rates.family == "all"].itertuples():
        rows.append({"model": r.model, "variable": r.variable, "comparisons": int(r.comparisons),
                     "splits": int(r.splits), "trainings": int(r.trainings),
                     "rate": pct(r.false_rate, r.false_low, r.false_high),
                     "unadjusted": f"{100 * r.false_rate_unadjusted:.1f} %",
                     "any": pct(r.any_false_rate, r.any_false_low, r.any_false_high),
                     "inconclusive": f"{100 * r.inconclusive_rate:.0f} %", "above": bool(r.false_low > alpha),
                     "any_above": bool(r.any_false_low > alpha)})
    return rows


def render(config: dict, metrics_csv: str | Path, comparisons_csv: str | Path, figures: dict[str, str | Path],
           provenance_json: str | Path,
           store: str | Path, stats_path: str | Path, ensembles: dict[str, str | Path],
           train_logs: dict[str, str | Path], out: str | Path, forecasts: dict[str, str | Path] | None = None,
           convergence_csv: str | Path | None = None, selections: list[str | Path] = (),
           sampler_budget_csv: str | Path | None = None, aa_rates_csv: str | Path | None = None) -> None:
    forecasts = forecasts or {}
    tidy = artifacts.read_csv(metrics_csv)
    frame = summary(tidy)
    stats = load_stats(stats_path)
    prov = json.loads(Path(provenance_json).read_text())
    generators = [m for m in config["models"] if m not in forecasts]
    model_order = generators + (["truth"] if "truth" in ensembles else [])
    forecasters = list(forecasts)

    data = test_fields(store)
    fields = load_ensembles(ensembles, stats["channels"])
    truth = closed_form_marginals(config, stats)
    model_meta, attrs_by_model = {}, {}
    for m, path in {**ensembles, **forecasts}.items():
        ds = artifacts.open_zarr(path)
        attrs = attrs_by_model[m] = dict(ds.attrs)
        log = artifacts.read_csv(train_logs[m]) if m in train_logs else None
        entry = config["models"].get(m, {})
        nu = attrs.get("nu_by_variable")
        model_meta[m] = {"family": attrs.get("family", ""),
                         "replicates": replicates(config, m) if m in config["models"] else "",
                         "nu": ", ".join(str(fmt(x) if not isinstance(x, str) else x)
                                         for x in json.loads(nu).values()) if nu else "",
                         "variant": _variant(entry),
                         "steps": attrs.get("training_steps", ""),
                         "train_s": fmt(float(log.elapsed_s.iloc[-1])) if log is not None else "",
                         "final_val_loss": fmt(float(log.val_loss.dropna().iloc[-1])) if log is not None else "",
                         "nfe": attrs.get("network_evaluations_per_member",
                                          attrs.get("network_evaluations_per_field", "")),
                         "members": ds.sizes.get("member", ""),
                         "sample_s": attrs.get("sampling_seconds", "")}
    summaries, kurtosis = [], {}
    labels = display_names(config, list(config["models"]) + ["truth", "data"])
    for v in stats["channels"]:
        tails = stats["variables"][v]["tails"]
        rows = [{"source": "data (test)", **describe(data[v], tails)}]
        kurtosis[v] = float(rows[0]["excess kurtosis"])
        if truth:
            kind = getattr(truth[v], "kind", "closed form")
            rows.append({"source": f"true distribution ({kind})", **describe_closed_form(truth[v], tails)})
        rows += [{"source": labels.get(m, m), **describe(fields[m][v], tails)} for m in fields]
        summaries.append({"variable": v, "units": stats["variables"][v]["units"],
                          "rows": [{k: (fmt(x) if not isinstance(x, str) else x) for k, x in r.items()} for r in rows]})

    unconditional = frame[frame.model.isin(model_order) & frame["lead"].isna()]
    spatial_rows = unconditional[unconditional.metric.map(is_spatial)]
    unconditional = unconditional[~unconditional.metric.map(is_spatial)]
    forecast_rows = frame[frame.model.isin(forecasters) & frame.metric.isin(
        FORECAST_METRICS + [m for m in frame.metric.unique() if m.startswith(("brier_", "fss_", "seeps"))])]
    level_sources = ["data"] + (["truth"] if "truth" in set(frame.model) else []) + forecasters
    levels = frame[frame.metric.str.startswith(("return_level_", "empirical_return_level_", "gev_shape",
                                                "block_maxima_at_bound")) & frame.model.isin(level_sources)]
    levels_all = frame[frame.model.isin(level_sources)]
    sweep = nu_sweep_points(config, {m: json.loads(a["nu_by_variable"]) for m, a in attrs_by_model.items()
                                     if "nu_by_variable" in a})
    sweep_frame = frame[frame.model.isin(list(sweep)) & frame.metric.isin(SWEEP_METRICS + SWEEP_METRICS_LOWER)]

    not_converged, convergence_steps, state_groups, found = [], [], [], []
    if convergence_csv is not None:
        table = artifacts.read_csv(convergence_csv)
        convergence_steps = sorted(set(table[table.model != REFERENCE].step))
        # with training.steps: auto each replicate stops at its own step: list them all
        used = table[table.model != REFERENCE].groupby(["model", "replicate"]).step.max()
        for m, steps in used.groupby(level="model"):
            if m in model_meta and steps.nunique() > 1:
                model_meta[m]["steps"] = ", ".join(str(int(v)) for v in steps)
        found = convergence_states(table)
        not_converged = [{**w, "error_before": fmt(w["error_before"]), "error": fmt(w["error"])}
                         for w in found if w["state"] == STATES[0]]
        state_groups = [{"state": state, "entries": [{**w, "final_error": fmt(w["final_error"], 2),
                                                      "reference_error": fmt(w["reference_error"], 2)}
                                                     for w in found if w["state"] == state]}
                        for state in (STATES[2], STATES[0], "not improving", STATES[1])]
        state_groups = [g for g in state_groups if g["entries"]]
    checks = truth_checks(frame, config, stats, truth)
    comparisons = artifacts.read_csv(comparisons_csv)
    run_counts = {m: replicates(config, m) for m in config["models"]}
    nu_by_model = {m: json.loads(a["nu_by_variable"]) for m, a in attrs_by_model.items() if "nu_by_variable" in a}
    first_screen = answer(config, frame, comparisons, generators, run_counts, kurtosis, found, nu_by_model,
                          truth="truth" in model_order, runs=runs_of(tidy), stats=stats, labels=labels,
                          side_order={v: heavier_tail_first(data[v], stats["variables"][v]["tails"])
                                      for v in stats["channels"]}, step_hours=step_hours(store),
                          true_quantiles=true_quantiles(truth, stats, config["evaluation"]["quantiles"]),
                          dry_raised=dry_raised(attrs_by_model, generators))
    env = jinja2.Environment(loader=jinja2.PackageLoader("htweather.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["label"] = lambda m: labels.get(m, m)
    page = env.get_template("report.html.j2").render(
        title="Heavy-tailed weather generation: report",
        created=prov["created"], commit=prov.get("git_commit"), dirty=prov.get("git_dirty"),
        config=config, stats=stats, models=model_order, forecasters=forecasters,
        all_models=list(config["models"]) + (["truth"] if "truth" in ensembles else []), model_meta=model_meta,
        answer=first_screen, interval_kinds={m: interval_kind(n) for m, n in run_counts.items()},
        table=metrics_table(unconditional, model_order),
        verdicts=verdicts(comparisons, frame, [v["variable"] for v in first_screen["variables"]],
                          step_hours=step_hours(store)),
        structure_table=metrics_table(spatial_rows[spatial_rows.metric.isin(STRUCTURE_METRICS)], model_order),
        structure_all=metrics_table(spatial_rows, model_order),
        storms=storm_findings(spatial_rows, model_order),
        structure_verdicts=verdicts(comparisons, frame, [v["variable"] for v in first_screen["variables"]],
                                    KEY_SPATIAL_METRICS),
        not_converged=not_converged, convergence_steps=convergence_steps, still_falling=int(STILL_FALLING * 100),
        state_groups=state_groups, near=(NEAR_FACTOR, NEAR_MARGIN),
        forecast_table=metrics_table(forecast_rows, forecasters, by_lead=True, step_hours=step_hours(store)),
        level_table=metrics_table(levels[~levels.metric.str.contains("return_level_")], level_sources,
                                  reference_rows=True), level_sources=level_sources,
        return_levels=return_level_table(levels_all, level_sources, config["evaluation"]["return_periods"]),
        short_test=stats["splits"]["test"]["n_times"] < config["evaluation"]["block_steps"],
        grid_shape=grid_shape(stats),
        truth_checks=checks, truth_summary=_coverage_summary(checks),
        truth_kind=("in closed form" if not truth else
                    "from a long simulation of the true process, "
                    f"{config['data']['synthetic']['storms']['truth_steps']} time steps"
                    if config["data"]["synthetic"].get("generator") == "storms" else "in closed form"),
        tail_index=tail_index_rows(attrs_by_model), sweep=sweep, selections=selection_tables(selections),
        sweep_table=metrics_table(sweep_frame, list(sweep)),
        summaries=summaries, figures={k: _image(p) for k, p in figures.items()},
        sampler_budget=(sampler_budget_rows(artifacts.read_csv(sampler_budget_csv), config["sampling"])
                        if sampler_budget_csv else None),
        aa_rates=(aa_rates_rows(artifacts.read_csv(aa_rates_csv), config["evaluation"]["confidence"])
                  if aa_rates_csv else None),
        figure_keys=sorted(figures), prov=prov,
        config_yaml=yaml.safe_dump(config, sort_keys=False),
    )
    with atomic_path(out) as tmp:
        tmp.write_text(page)


def true_quantiles(truth: dict | None, stats: dict, quantiles: list[float]) -> dict[str, dict[str, float]]:
    """The true tail quantiles of each variable (closed form, or the long simulation of the true
    process), by metric name, at the probabilities of its tails of interest; {} without a truth."""
    if not truth:
        return {}
    out = {}
    for v in stats["channels"]:
        probs = tail_probabilities(quantiles, stats["variables"][v]["tails"])
        out[v] = {physical_quantile_name(p): float(truth[v].ppf(p)) for p in probs}
    return out


def heavier_tail_first(values: np.ndarray, tails: str) -> list[str]:
    """The tails `tails` looks at, the one reaching farther from the median (at the 99.9th and
    0.1th percentiles) first."""
    found = list(sides(tails))
    if len(found) < 2:
        return found
    low, median, high = np.quantile(plots.finite(values), [0.001, 0.5, 0.999])
    return ["upper", "lower"] if high - median >= median - low else ["lower", "upper"]


def _variant(entry: dict) -> str:
    """The entry's departures from a plain unconditional model, in words."""
    parts = []
    if entry.get("normalisation") == "inc":
        parts.append("INC (inverse-CDF normalisation)")
    if entry.get("normalisation") == "softlog":
        parts.append("softlog (sign(z) log(1 + |z|) of the standardised data)")
    if entry.get("sigma_data") == "per_channel":
        parts.append("PCP (per-channel sigma_data)")
    if entry.get("condition_steps"):
        parts.append(f"forecast from {entry['condition_steps']} previous state(s)")
    return ", ".join(parts)
