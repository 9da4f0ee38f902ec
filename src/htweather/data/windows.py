"""Windows of consecutive time steps: where a history of states and the steps after it are all
present at the series' regular step (training examples of a forecast model, forecast start
times). A gap in the record or a split's edge breaks a window."""

from __future__ import annotations

import numpy as np
import pandas as pd


def time_step(times: pd.DatetimeIndex) -> pd.Timedelta:
    """The series' regular step: the most common spacing."""
    diffs = pd.Series(np.diff(times.values))
    return pd.Timedelta(diffs.mode().iloc[0])


def regular_windows(times: pd.DatetimeIndex, before: int, after: int) -> np.ndarray:
    """Indices t whose window t-before .. t+after lies inside the series with every step equal
    to the regular step (a gap or the split's edge breaks a window)."""
    n = len(times)
    if n < before + after + 1:
        return np.zeros(0, dtype=np.int64)
    regular = np.diff(times.values) == time_step(times).to_timedelta64()  # step i -> i+1 regular
    width = before + after
    ok = np.ones(n - width, dtype=bool)  # window starting at s = t - before
    for j in range(width):
        ok &= regular[j:j + n - width]
    return np.flatnonzero(ok).astype(np.int64) + before


def consecutive_runs(times: pd.DatetimeIndex) -> list[slice]:
    """The series cut at its gaps: slices of runs whose steps all equal the regular step (one
    run for a series without gaps, one per block for interleaved splits)."""
    if len(times) < 2:
        return [slice(0, len(times))]
    breaks = np.flatnonzero(np.diff(times.values) != time_step(times).to_timedelta64()) + 1
    edges = [0, *breaks.tolist(), len(times)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]
