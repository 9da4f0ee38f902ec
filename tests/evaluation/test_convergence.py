"""The convergence check: snapshot steps from fractions, and which models count as still improving."""

import pandas as pd

from htweather.config import snapshot_steps
from htweather.evaluation.convergence import still_falling


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
