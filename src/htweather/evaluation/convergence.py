"""Has training converged? The key tail metrics of small ensembles sampled from EMA snapshots
saved part-way through training (training.snapshots) and of the final model, against the test
data: if a model's tail error is still falling at the end, its comparisons may change with more
training, and the report says so.

Cheap by design: no extra training, `evaluation.convergence_members` members per snapshot (the
same initial noise at every snapshot: sampling is seeded by the model and replicate), the final
point from the first members of the model's own ensemble: the trend is read between samples of
one size and one noise. The far tail needs more: 64 fields of 16 x 16 cells hold about 16 values
beyond the data's 99.9th percentile, so where the model stands at the end (near the data or far
from it) is read from its whole ensemble, beside a reference of as many fields (rows with
`members` = the whole ensemble's size).

Forecast models are judged on their tail scores instead: twCRPS above the data's p99 and p999
(`forecasts.forecast_tail_scores`: each tail of interest's) of lead-1 forecasts from the same start times and with the same members
at every snapshot as the model's own forecasts, whose lead 1 is the final point. Downscaling
models likewise, on their fine fields from the same coarse test fields and with the same
members at every snapshot as their own.

"Not still falling" is not "done": a model whose tail error sits far above what the data allow
at every snapshot has stalled, not converged. So the check also scores a *reference*, an
independent sample of the real process with the same number of fields (the true process's
ensemble where it is known, else that many validation fields spread evenly over the split,
which come from another period and may differ from the test split's climate by more than
noise), whose error is sampling noise only,
and gives each unconditional model and variable one of three states (`states`):

- `still improving`: the tail error (of `convergence_members` members) fell by more than
  STILL_FALLING (relative) between the last snapshot and the end of training;
- `converged near the data`: it did not, and the final error of the whole ensemble is within
  NEAR_FACTOR times the error of a reference of as many fields plus NEAR_MARGIN;
- `stalled far from the data`: it did not, and the final error is beyond that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import artifacts
from ..config import split_replicate
from ..data.store import grid_mask, load_stats, split_fields, test_fields, valid_values
from ..tail_metrics import IMPROVEMENT, error, key_metrics
from .forecasts import forecast_tail_scores, lead_components

COLUMNS = ["model", "replicate", "variable", "metric", "step", "members", "value", "error"]
STILL_FALLING = IMPROVEMENT  # relative drop of the tail error over the last stretch of training that counts
# near the data: final tail error <= NEAR_FACTOR * the reference's + NEAR_MARGIN. The reference's
# error is the sampling noise of an ensemble of that size; a model's error carries the same noise
# plus its own, hence the factor; the margin keeps a tiny reference error from demanding the
# impossible (0.05 is 5 % of the mass beyond a quantile, or 5 % on the 99.9th percentile)
NEAR_FACTOR, NEAR_MARGIN = 2.0, 0.05
REFERENCE = "reference"  # the model name of the reference sample's rows (step 0)
STATES = ("still improving", "converged near the data", "stalled far from the data")
# every tail's threshold-weighted CRPS (lower is better; lead 1), whichever tail a variable looks at
ALL_FORECAST_TAIL_SCORES = forecast_tail_scores("both")


def near_limit(reference: float) -> float:
    """The tail error within which a model counts as near the data, given the error of a
    reference sample of as many fields."""
    return NEAR_FACTOR * reference + NEAR_MARGIN


def convergence_table(config: dict, paths: dict[str, list[str | Path]], store: str | Path,
                      stats_path: str | Path, reference: str | Path | None = None) -> pd.DataFrame:
    """paths: {run: [ensemble or forecast store, ...]}, from the snapshots' to the model's own
    ensemble or forecasts (lead 1); each one's step is its `training_steps` attribute (a snapshot
    that shares its step with a later one is read once). Every step is scored on `convergence_members` members (the
    trend); a model's own ensemble also on all its members (where it stands at the end).
    reference: the true process's ensemble, or None for the validation split; its rows have
    model REFERENCE and step 0, at both sizes."""
    opts = config["evaluation"]
    members = opts["convergence_members"]
    stats = load_stats(stats_path)
    mask = grid_mask(stats)
    data = test_fields(store)
    data_values = {name: valid_values(data[name], mask) for name in stats["channels"]}

    def scored(fields, n):
        """{variable: key metrics} of the first n members (fields along the first axis)."""
        return {name: key_metrics(valid_values(np.asarray(fields[name][:n], dtype=np.float64), mask),
                                  data_values[name], stats["variables"][name]["tails"], opts["tail_probability"])
                for name in stats["channels"]}

    def rows_of(model, replicate, step, n, by_variable):
        return [{"model": model, "replicate": replicate, "variable": name, "metric": m, "step": int(step),
                 "members": n, "value": v, "error": float(error(m, v))}
                for name, values in by_variable.items() for m, v in values.items()]

    rows, whole = [], 0  # whole: the largest ensemble, the size of the reference's second sample
    for run, run_paths in paths.items():
        model, replicate = split_replicate(run)
        by_step = {}  # step: (path, its member count if it holds forecasts)
        for path in reversed(run_paths):  # the model's own ensemble first: it keeps its step
            with artifacts.open_zarr(path) as ds:
                by_step.setdefault(int(ds.attrs["training_steps"]),
                                   (path, ds.sizes["member"] if "init_time" in ds.dims else None))
        last = max(by_step)
        for step, (path, forecast_members) in sorted(by_step.items()):
            if forecast_members:  # a forecast model (lead 1), or a downscaling one (lead 0: its only lead)
                first = None
                for name, lead, _, _, components in lead_components(config, path, store, stats, data):
                    first = lead if first is None else first
                    if lead != first:
                        continue
                    rows += [{"model": model, "replicate": replicate, "variable": name, "metric": m,
                              "step": int(step), "members": forecast_members,
                              "value": float(np.mean(components[m])),
                              "error": float(np.mean(components[m]))}
                             for m in forecast_tail_scores(stats["variables"][name].get("tails", "upper"))]
                continue
            with artifacts.open_zarr(path) as ds:
                sizes = [min(members, ds.sizes["member"])] + ([ds.sizes["member"]] if step == last else [])
                fields = {v: ds[v].isel(member=slice(0, max(sizes))).values for v in stats["channels"]}
            for n in dict.fromkeys(sizes):
                rows += rows_of(model, replicate, step, n, scored(fields, n))
            whole = max(whole, sizes[-1])
    if rows:
        whole = whole or members  # forecast models only: the reference is not read by them
        if reference is not None:
            with artifacts.open_zarr(reference) as ds:
                fields = {v: ds[v].values for v in stats["channels"]}
        else:  # as many validation fields as the models have members, spread over the split
            fields = split_fields(store, "validation")
        available = len(next(iter(fields.values())))
        for n in dict.fromkeys(min(n, available) for n in (min(members, whole), whole)):
            if reference is None:
                pick = np.unique(np.linspace(0, available - 1, n).round().astype(int))
                sample = {v: f[pick] for v, f in fields.items()}
            else:
                sample = fields
            rows = rows_of(REFERENCE, 0, 0, n, scored(sample, n)) + rows
    return pd.DataFrame(rows, columns=COLUMNS)


def _rows_of_size(frame: pd.DataFrame, which: str) -> pd.DataFrame:
    """Per model, the rows of its smallest ("min") or largest ("max") sample; tables without a
    members column are all one size."""
    if "members" not in frame or frame.members.isna().all():
        return frame
    return frame[frame.members.fillna(-1) == frame.groupby("model").members.transform(which).fillna(-1)]


def trend_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The trend's rows: per model its smallest sample (the snapshots' and the first members of
    its final ensemble)."""
    return _rows_of_size(frame, "min")


def whole_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model, its largest sample (the whole final ensemble; the reference of as many fields)."""
    return _rows_of_size(frame, "max")


def tail_error(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model, variable and step: the mean error over the key metrics and the replicates,
    of the trend's sample size (the reference's rows left out)."""
    frame = trend_rows(frame[frame.model != REFERENCE])
    return frame.groupby(["model", "variable", "step"], as_index=False, sort=False)["error"].mean()


def reference_error(frame: pd.DataFrame, whole: bool = False) -> dict[str, float]:
    """Per variable, the reference sample's mean error over the key metrics, at the trend's
    sample size or (whole) at the whole ensemble's; empty when the table has no reference."""
    ref = frame[frame.model == REFERENCE]
    ref = whole_rows(ref) if whole else trend_rows(ref)
    return ref.groupby("variable")["error"].mean().to_dict()


def final_error(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (model, variable), the mean error over the key metrics and the replicates of the whole
    final ensembles."""
    frame = frame[frame.model != REFERENCE]
    # each replicate's own last step (with steps: auto, replicates stop at different steps)
    frame = whole_rows(frame[frame.step == frame.groupby(["model", "replicate"]).step.transform("max")])
    return frame.groupby(["model", "variable"])["error"].mean().to_dict()


def states(frame: pd.DataFrame) -> list[dict]:
    """Per model and variable, its state (STATES; see the module's docstring) with the numbers
    it rests on. Forecast models (scored on twCRPS, which has no reference) are only told apart
    as still improving or not ("not improving")."""
    reference = reference_error(frame, whole=True)
    final = final_error(frame)
    forecast = set(frame[frame.metric.isin(ALL_FORECAST_TAIL_SCORES)].model)
    out = []
    # the trend per replicate, its last two points (with steps: auto, replicates stop at
    # different steps), then the mean over replicates
    trend = trend_rows(frame[frame.model != REFERENCE]).groupby(
        ["model", "replicate", "variable", "step"], as_index=False, sort=False)["error"].mean()
    for (model, variable), group in trend.groupby(["model", "variable"], sort=False):
        ends = [g.sort_values("step").tail(2) for _, g in group.groupby("replicate")]
        last = float(np.mean([g.error.iloc[-1] for g in ends]))
        paired = all(len(g) == 2 for g in ends)
        before = float(np.mean([g.error.iloc[0] for g in ends])) if paired else float("nan")
        ref = reference.get(variable, float("nan")) if model not in forecast else float("nan")
        end = final.get((model, variable), last)  # the whole ensemble's
        if paired and last < (1 - STILL_FALLING) * before:
            state = STATES[0]
        elif np.isnan(ref):
            state = "not improving"
        elif end <= near_limit(ref):
            state = STATES[1]
        else:
            state = STATES[2]
        out.append({"model": model, "variable": variable, "state": state,
                    "step_before": int(max(g.step.iloc[0] for g in ends)) if paired else None,
                    "step": int(max(g.step.iloc[-1] for g in ends)), "error_before": before, "error": last,
                    "final_error": end, "reference_error": ref})
    return out


# results/evaluation/tail_error.csv: the composite tail error, where each model ends
TAIL_ERROR_COLUMNS = ["model", "variable", "state", "final_error", "reference_error", "near_limit", "step",
                      "error", "step_before", "error_before"]


def tail_error_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The composite tail error of each model and variable (`states`), one row each: the mean
    distance from the ideal value of the key tail metrics (`tail_metrics.key_metric_names`, on
    the variable's tails of interest) over the model's runs; `final_error` of its whole final
    ensembles, `reference_error` of the reference sample of as many fields, `near_limit` the
    error within which it counts as near (`near_limit`), `error` and `error_before` of the trend's
    sample at the last two steps."""
    rows = [{**s, "near_limit": near_limit(s["reference_error"]) if np.isfinite(s["reference_error"]) else np.nan}
            for s in states(frame)]
    return pd.DataFrame(rows, columns=TAIL_ERROR_COLUMNS)


def still_falling(frame: pd.DataFrame) -> list[dict]:
    """Models whose tail error fell by more than STILL_FALLING (relative) between the last
    snapshot and the end of training, per variable: not converged yet."""
    return [s for s in states(frame) if s["state"] == STATES[0]]
