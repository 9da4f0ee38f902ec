"""The metrics table: replicate names split into model and replicate, the replicate means with
their t interval, and the summary the report shows."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from htweather.evaluation import tables


def test_combine_splits_replicates_and_adds_their_means(tmp_path):
    rows = lambda model, value: pd.DataFrame([{"model": model, "variable": "tp", "metric": "tail_ks", "value": value,
                                              "ci_low": np.nan, "ci_high": np.nan}])
    paths = []
    for i, (model, value) in enumerate([("tedm", 0.1), ("tedm.r1", 0.3), ("tedm.r2", 0.2), ("edm", 0.5)]):
        paths.append(tmp_path / f"{i}.csv")
        rows(model, value).to_csv(paths[-1], index=False)
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
