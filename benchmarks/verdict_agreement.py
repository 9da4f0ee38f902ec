"""Do the verdicts reproduce? Two runs of one config with different master seeds (every training,
ensemble and resample drawn anew), their comparisons.csv compared verdict by verdict.

    snakemake --cores all --directory run-a --config seed=20250101
    snakemake --cores all --directory run-b --config seed=20250102
    python benchmarks/verdict_agreement.py run-a/results/evaluation/comparisons.csv \\
        run-b/results/evaluation/comparisons.csv

Prints, for the main pairs' key verdicts (--pairs, the key metrics of comparisons.key_metrics)
and for every row: how many verdicts agree, how many changed sign (better in one run, worse in
the other), and each disagreement with both intervals.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from htweather.evaluation.comparisons import key_metrics

KEYS = ["model", "baseline", "variable", "metric", "lead"]


def paired(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The rows both runs have, side by side (suffixes _a and _b)."""
    for f in (a, b):
        f["lead"] = f["lead"].astype("Int64")
    return a.merge(b, on=KEYS, suffixes=("_a", "_b"))


def agreement(rows: pd.DataFrame) -> dict:
    same = rows.verdict_a == rows.verdict_b
    flips = ((rows.verdict_a == "better") & (rows.verdict_b == "worse")) | (
        (rows.verdict_a == "worse") & (rows.verdict_b == "better"))
    flagged = lambda v: int(v.isin(["better", "worse"]).sum())  # noqa: E731
    return {"verdicts": len(rows), "agree": int(same.sum()), "share": float(same.mean()) if len(rows) else float("nan"),
            "sign_changes": int(flips.sum()), "flagged_a": flagged(rows.verdict_a), "flagged_b": flagged(rows.verdict_b)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--pairs", default="tedm:edm,tflow:flow", help="the main pairs, model:baseline,...")
    args = parser.parse_args(argv)
    rows = paired(pd.read_csv(args.first), pd.read_csv(args.second))
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    in_pairs = np.array([(m, b) in pairs for m, b in zip(rows.model, rows.baseline)], dtype=bool)
    main_rows = rows[in_pairs & rows.metric.isin(key_metrics("both")).to_numpy()]
    for name, subset in (("main pairs, key metrics", main_rows), ("every row", rows)):
        found = agreement(subset)
        print(f"{name}: {found['agree']} of {found['verdicts']} verdicts agree ({found['share']:.2f}); "
              f"sign changes {found['sign_changes']}; better/worse {found['flagged_a']} and {found['flagged_b']}")
    print("\ndisagreements among the main pairs' key verdicts:")
    differ = main_rows[main_rows.verdict_a != main_rows.verdict_b]
    for r in differ.itertuples():
        print(f"  {r.model} vs {r.baseline} {r.variable} {r.metric}: {r.verdict_a} [{r.ci_low_a:.3g}, {r.ci_high_a:.3g}]"
              f" / {r.verdict_b} [{r.ci_low_b:.3g}, {r.ci_high_b:.3g}]")
    counts = pd.crosstab(main_rows.verdict_a, main_rows.verdict_b)
    print("\nverdicts, first run (rows) against second (columns):\n" + counts.to_string())


if __name__ == "__main__":
    main()
