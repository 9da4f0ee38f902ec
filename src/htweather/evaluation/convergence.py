"""Has training converged? The key tail metrics of small ensembles sampled from EMA snapshots
saved part-way through training (training.snapshots) and of the final model, against the test
data: if a model's tail error is still falling at the end, its comparisons may change with more
training, and the report says so.

Cheap by design: no extra training, `evaluation.convergence_members` members per snapshot (the
same initial noise at every snapshot: sampling is seeded by the model and replicate), the final
point from the first members of the model's own ensemble.

Forecast models are judged on their tail scores instead: twCRPS above the data's p99 and p999
(FORECAST_TAIL_SCORES) of lead-1 forecasts from the same start times and with the same members
at every snapshot as the model's own forecasts, whose lead 1 is the final point.

"Not still falling" is not "done": a model whose tail error sits far above what the data allow
at every snapshot has stalled, not converged. So the check also scores a *reference*, an
independent sample of the real process with the same number of fields (the true process's
ensemble where it is known, else that many validation fields spread evenly over the split,
which come from another period and may differ from the test split's climate by more than
noise), whose error is sampling noise only,
and gives each unconditional model and variable one of three states (`states`):

- `still improving`: the tail error fell by more than STILL_FALLING (relative) between the
  last snapshot and the end of training;
- `converged near the data`: it did not, and the final error is within NEAR_FACTOR times the
  reference's error plus NEAR_MARGIN;
- `stalled far from the data`: it did not, and the final error is beyond that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..config import split_replicate
from ..data.store import grid_mask, load_stats, split_fields, test_fields, valid_values
from .comparisons import error
from .forecasts import lead_components
from .tails import exceedance_ratio, quantile_rel_error, tail_ks

COLUMNS = ["model", "replicate", "variable", "metric", "step", "value", "error"]
STILL_FALLING = 0.10  # relative drop of the tail error over the last stretch of training that counts
# near the data: final tail error <= NEAR_FACTOR * the reference's + NEAR_MARGIN. The reference's
# error is the sampling noise of an ensemble of that size; a model's error carries the same noise
# plus its own, hence the factor; the margin keeps a tiny reference error from demanding the
# impossible (0.05 is 5 % of the mass beyond a quantile, or 5 % on the 99.9th percentile)
NEAR_FACTOR, NEAR_MARGIN = 2.0, 0.05
REFERENCE = "reference"  # the model name of the reference sample's rows (step 0)
STATES = ("still improving", "converged near the data", "stalled far from the data")
FORECAST_TAIL_SCORES = ["twcrps_p99", "twcrps_p999"]  # lower is better; lead 1


def key_metrics(gen: np.ndarray, data: np.ndarray, tails: str, tail_probability: float) -> dict[str, float]:
    """The key tail metrics (comparisons.KEY_TAIL_METRICS) of flattened generated values against
    the data's (definitions of `tails`)."""
    return {"exceedance_ratio_p99": exceedance_ratio(gen, data, 0.99, tails),
            "exceedance_ratio_p999": exceedance_ratio(gen, data, 0.999, tails),
            "quantile_rel_error_0.999": float(quantile_rel_error(gen, data, 0.999)),
            "tail_ks": tail_ks(gen, data, tail_probability, tails)["tail_ks"]}


def convergence_table(config: dict, paths: dict[str, dict[int, str | Path]], store: str | Path,
                      stats_path: str | Path, reference: str | Path | None = None) -> pd.DataFrame:
    """paths: {run: {step: ensemble or forecast store}}, the last step being the model's own
    ensemble (its first `convergence_members` members are used) or forecasts (lead 1).
    reference: the true process's ensemble (its first `convergence_members` members), or None
    for the validation split; its rows have model REFERENCE and step 0."""
    opts = config["evaluation"]
    members = opts["convergence_members"]
    stats = load_stats(stats_path)
    mask = grid_mask(stats)
    data = test_fields(store)
    rows = []
    if paths:
        if reference is not None:
            with xr.open_zarr(reference, chunks=None) as ds:
                fields = {v: ds[v].isel(member=slice(0, members)).values for v in stats["channels"]}
        else:  # as many validation fields as the models have members, spread over the split
            fields = split_fields(store, "validation")
            n = len(next(iter(fields.values())))
            pick = np.unique(np.linspace(0, n - 1, min(members, n)).round().astype(int))
            fields = {v: f[pick] for v, f in fields.items()}
        for name in stats["channels"]:
            values = key_metrics(valid_values(np.asarray(fields[name], dtype=np.float64), mask),
                                 valid_values(data[name], mask), stats["variables"][name]["tails"],
                                 opts["tail_probability"])
            rows += [{"model": REFERENCE, "replicate": 0, "variable": name, "metric": m, "step": 0,
                      "value": v, "error": float(error(m, v))} for m, v in values.items()]
    for run, by_step in paths.items():
        model, replicate = split_replicate(run)
        for step, path in sorted(by_step.items()):
            if "init_time" in xr.open_zarr(path, chunks=None).dims:  # a forecast model
                for name, lead, _, _, components in lead_components(config, path, store, stats, data):
                    if lead != 1:
                        continue
                    rows += [{"model": model, "replicate": replicate, "variable": name, "metric": m,
                              "step": int(step), "value": float(np.mean(components[m])),
                              "error": float(np.mean(components[m]))} for m in FORECAST_TAIL_SCORES]
                continue
            ds = xr.open_zarr(path, chunks=None).isel(member=slice(0, members))
            for name in stats["channels"]:
                gen, ref = valid_values(ds[name].values.astype(np.float64), mask), valid_values(data[name], mask)
                values = key_metrics(gen, ref, stats["variables"][name]["tails"],
                                     opts["tail_probability"])
                rows += [{"model": model, "replicate": replicate, "variable": name, "metric": m, "step": int(step),
                          "value": v, "error": float(error(m, v))} for m, v in values.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def tail_error(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model, variable and step: the mean error over the key metrics and the replicates
    (the reference's rows left out)."""
    frame = frame[frame.model != REFERENCE]
    return frame.groupby(["model", "variable", "step"], as_index=False, sort=False)["error"].mean()


def reference_error(frame: pd.DataFrame) -> dict[str, float]:
    """Per variable, the reference sample's mean error over the key metrics (empty when the
    table has no reference)."""
    ref = frame[frame.model == REFERENCE]
    return ref.groupby("variable")["error"].mean().to_dict()


def states(frame: pd.DataFrame) -> list[dict]:
    """Per model and variable, its state (STATES; see the module's docstring) with the numbers
    it rests on. Forecast models (scored on twCRPS, which has no reference) are only told apart
    as still improving or not ("not improving")."""
    reference = reference_error(frame)
    forecast = set(frame[frame.metric.isin(FORECAST_TAIL_SCORES)].model)
    out = []
    for (model, variable), group in tail_error(frame).groupby(["model", "variable"], sort=False):
        group = group.sort_values("step")
        last = float(group.error.iloc[-1])
        before = float(group.error.iloc[-2]) if len(group) >= 2 else float("nan")
        ref = reference.get(variable, float("nan")) if model not in forecast else float("nan")
        if len(group) >= 2 and last < (1 - STILL_FALLING) * before:
            state = STATES[0]
        elif np.isnan(ref):
            state = "not improving"
        elif last <= NEAR_FACTOR * ref + NEAR_MARGIN:
            state = STATES[1]
        else:
            state = STATES[2]
        out.append({"model": model, "variable": variable, "state": state,
                    "step_before": int(group.step.iloc[-2]) if len(group) >= 2 else None,
                    "step": int(group.step.iloc[-1]), "error_before": before, "error": last,
                    "reference_error": ref})
    return out


def still_falling(frame: pd.DataFrame) -> list[dict]:
    """Models whose tail error fell by more than STILL_FALLING (relative) between the last
    snapshot and the end of training, per variable: not converged yet."""
    return [s for s in states(frame) if s["state"] == STATES[0]]
