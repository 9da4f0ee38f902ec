"""The metrics table: replicate names split into model and replicate, the replicate means with
their t interval, and the summary the report shows."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from htweather.evaluation import tables
from htweather.evaluation.tables import write_table


def test_combine_splits_replicates_and_adds_their_means(tmp_path):
    rows = lambda model, value: pd.DataFrame([{"model": model, "variable": "tp", "metric": "skewness_ratio", "value": value,
                                              "ci_low": np.nan, "ci_high": np.nan}])
    paths = []
    for i, (model, value) in enumerate([("tedm", 0.1), ("tedm.r1", 0.3), ("tedm.r2", 0.2), ("edm", 0.5)]):
        paths.append(tmp_path / f"{i}.csv")
        write_table(rows(model, value), paths[-1])
    frame = tables.combine(paths, tmp_path / "metrics.csv")
    assert list(frame.columns) == tables.TABLE_COLUMNS
    assert list(zip(frame.model, frame.replicate)) == [("tedm", "0"), ("tedm", "1"), ("tedm", "2"), ("edm", "0"),
                                                       ("tedm", "mean")]
    mean = frame[frame.replicate == "mean"].iloc[0]
    half = stats.t.ppf(0.975, 2) * np.std([0.1, 0.3, 0.2], ddof=1) / np.sqrt(3)
    assert mean.value == pytest.approx(0.2) and (mean.ci_low, mean.ci_high) == pytest.approx((0.2 - half, 0.2 + half))
    summary = tables.summary(pd.read_csv(tmp_path / "metrics.csv"))
    assert "replicate" not in summary and dict(zip(summary.model, summary.value)) == pytest.approx({"tedm": 0.2,
                                                                                                    "edm": 0.5})


def test_replicate_intervals_are_clipped_to_what_the_metric_can_be(tmp_path):
    """Three replicates of an exceedance ratio near 0 give a t interval reaching below 0, which
    no ratio can; a KS statistic cannot pass 1. Quantile errors of a two-tailed variable are
    unbounded and stay as they are."""
    values = {"exceedance_ratio_p999": [0.0, 0.02, 0.055], "tail_ks": [0.9, 0.99, 0.7],
              "quantile_rel_error_0.999": [-0.9, -0.5, -0.95]}
    paths = []
    for i, name in enumerate(["edm", "edm.r1", "edm.r2"]):
        paths.append(tmp_path / f"{i}.csv")
        pd.DataFrame([{"model": name, "variable": "tp", "metric": m, "value": v[i], "ci_low": np.nan,
                       "ci_high": np.nan} for m, v in values.items()]).pipe(write_table, paths[-1])
    means = tables.combine(paths, tmp_path / "metrics.csv").query("replicate == 'mean'").set_index("metric")
    t = stats.t.ppf(0.975, 2) / np.sqrt(3)
    ratio, ks, q = (values[m] for m in values)
    assert means.loc["exceedance_ratio_p999", "ci_low"] == 0.0
    assert means.loc["exceedance_ratio_p999", "ci_high"] == pytest.approx(np.mean(ratio) + t * np.std(ratio, ddof=1))
    assert means.loc["tail_ks", "ci_high"] == 1.0
    assert means.loc["quantile_rel_error_0.999", "ci_low"] == pytest.approx(np.mean(q) - t * np.std(q, ddof=1))
    assert means.loc["quantile_rel_error_0.999", "ci_low"] < -1
    assert tables.metric_range("exceedance_ratio_p99") == (0.0, np.inf)
    assert tables.metric_range("quantile_rel_error_0.999") == (-np.inf, np.inf)
    assert tables.metric_range("twcrps_p999") == (0.0, np.inf) and tables.metric_range("ks") == (0.0, 1.0)
