"""The convergence check: snapshot steps from fractions, and which models count as still improving."""

import pandas as pd

from htweather.config import snapshot_steps
from htweather.evaluation.convergence import (REFERENCE, reference_error, states, still_falling, tail_error,
                                              tail_error_table)


def test_snapshot_steps_are_fractions_of_the_steps_before_the_end():
    assert snapshot_steps({"steps": 700, "snapshots": [0.25, 0.5]}) == [175, 350]
    assert snapshot_steps({"steps": 3, "snapshots": [0.1, 0.5, 0.99]}) == [1, 2]
    assert snapshot_steps({"steps": 100, "snapshots": []}) == []


def test_a_tail_error_still_falling_at_the_end_is_flagged():
    rows = []
    for model, errors in {"falling": [0.9, 0.6, 0.4], "flat": [0.9, 0.41, 0.40], "rising": [0.5, 0.3, 0.35]}.items():
        for replicate in (0, 1):
            for step, e in zip((100, 200, 400), errors):
                rows += [{"model": model, "replicate": replicate, "variable": "tp", "metric": m, "step": step,
                          "value": e, "error": e} for m in ("tail_ks", "exceedance_ratio_p999")]
    flagged = still_falling(pd.DataFrame(rows))
    assert [(w["model"], w["step_before"], w["step"]) for w in flagged] == [("falling", 200, 400)]


def _table(curves: dict, reference: float | None) -> pd.DataFrame:
    rows = []
    for model, errors in curves.items():
        for step, e in zip((100, 200, 400), errors):
            rows += [{"model": model, "replicate": 0, "variable": "tp", "metric": m, "step": step,
                      "value": e, "error": e} for m in ("tail_ks", "exceedance_ratio_p999")]
    if reference is not None:
        rows += [{"model": REFERENCE, "replicate": 0, "variable": "tp", "metric": m, "step": 0,
                  "value": reference, "error": reference} for m in ("tail_ks", "exceedance_ratio_p999")]
    return pd.DataFrame(rows)


def test_three_states_improving_converged_near_and_stalled_far():
    """A flat tail error far above the reference's is stalled, not converged: the failure the
    check used to call done (p999 mass 0 at every snapshot: error 1)."""
    curves = {"falling": [0.9, 0.6, 0.4], "near": [0.5, 0.12, 0.12], "no_tail": [1.0, 1.0, 1.0],
              "rising": [0.5, 0.3, 0.35]}
    found = {s["model"]: s for s in states(_table(curves, reference=0.05))}
    assert found["falling"]["state"] == "still improving"
    assert found["near"]["state"] == "converged near the data"  # 0.12 <= 2 x 0.05 + 0.05
    assert found["no_tail"]["state"] == "stalled far from the data"
    assert found["rising"]["state"] == "stalled far from the data"
    assert found["no_tail"]["reference_error"] == 0.05
    assert "reference" not in found  # the reference is not a model
    assert [w["model"] for w in still_falling(_table(curves, 0.05))] == ["falling"]


def test_the_composite_tail_error_table_has_one_row_per_model_with_its_state_and_limit():
    curves = {"falling": [0.9, 0.6, 0.4], "near": [0.5, 0.12, 0.12]}
    table = tail_error_table(_table(curves, reference=0.05)).set_index("model")
    assert list(table.index) == ["falling", "near"]
    assert table.loc["near", "final_error"] == 0.12 and table.loc["near", "near_limit"] == 2 * 0.05 + 0.05
    assert table.loc["near", "state"] == "converged near the data" and table.loc["falling", "error_before"] == 0.6


def test_without_a_reference_a_flat_curve_is_only_not_improving():
    found = {s["model"]: s["state"] for s in states(_table({"flat": [1.0, 1.0, 1.0]}, reference=None))}
    assert found == {"flat": "not improving"}


def test_where_a_model_ends_is_read_from_its_whole_ensemble():
    """A small sample can read no mass beyond q99.9 (error 1) where the whole ensemble has half
    the data's: the trend is read at the snapshots' size, the state at the whole ensemble's,
    beside a reference of as many fields."""
    rows = []
    for model, (trend, whole) in {"resolved_near": ([1.0, 1.0, 1.0], 0.1), "far": ([1.0, 1.0, 1.0], 0.9)}.items():
        for step, e in zip((100, 200, 400), trend):
            rows += [{"model": model, "replicate": 0, "variable": "tp", "metric": "exceedance_ratio_p999",
                      "step": step, "members": 64, "value": 0.0, "error": e}]
        rows += [{"model": model, "replicate": 0, "variable": "tp", "metric": "exceedance_ratio_p999",
                  "step": 400, "members": 256, "value": 1 - whole, "error": whole}]
    rows += [{"model": REFERENCE, "replicate": 0, "variable": "tp", "metric": "exceedance_ratio_p999",
              "step": 0, "members": n, "value": 1 - e, "error": e} for n, e in ((64, 0.4), (256, 0.04))]
    table = pd.DataFrame(rows)
    found = {s["model"]: s for s in states(table)}
    assert found["resolved_near"]["state"] == "converged near the data"  # 0.1 <= 2 x 0.04 + 0.05
    assert found["far"]["state"] == "stalled far from the data"
    assert found["far"]["final_error"] == 0.9 and found["far"]["reference_error"] == 0.04
    assert found["far"]["error"] == 1.0  # the trend's last point, of 64 members
    trend = tail_error(table)
    assert len(trend) == 6 and set(trend.error) == {1.0}
    assert reference_error(table) == {"tp": 0.4} and reference_error(table, whole=True) == {"tp": 0.04}
