"""The tidy metrics table: one row per model, variable, metric and (for forecast scores) lead,
with its value and interval; per-step tables written atomically and combined into one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..runtime import atomic_path

COLUMNS = ["model", "variable", "metric", "value", "ci_low", "ci_high"]

# metrics.csv: the rows above, plus the lead time (in steps) of forecast scores, empty otherwise
TABLE_COLUMNS = ["model", "variable", "metric", "lead", "value", "ci_low", "ci_high"]


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")


def combine(tables: list[str | Path], path: str | Path) -> pd.DataFrame:
    """Concatenate per-model tables into the one tidy metrics table (TABLE_COLUMNS)."""
    frame = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
    frame = frame.reindex(columns=TABLE_COLUMNS)
    frame["lead"] = frame["lead"].astype("Int64")
    write_table(frame, path)
    return frame


def combine_plain(tables: list[str | Path], path: str | Path) -> pd.DataFrame:
    """Concatenate tables of one layout (e.g. rank-histogram counts) into one file."""
    frame = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True) if tables else pd.DataFrame()
    write_table(frame, path)
    return frame
