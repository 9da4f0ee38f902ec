"""Is a model's spatial structure error the sampler's or the training's? Two checks on a finished
run, with the metrics of `htweather.evaluation.spatial` against the run's test split:

    python benchmarks/structure_checks.py steps --run . --out steps.csv
        every unconditional training's EMA snapshots and final ensemble, the first --members
        members of each (the snapshots' ensembles are that small), by training step;
    python benchmarks/structure_checks.py sampler --run . --cache results/benchmarks/sampler_budget --out sampler.csv
        the ensembles that benchmarks/sampler_budget.py cached for each sampler setting (one
        initial noise per training for every setting).

docs/results/structure.md's tables "Not the sampler" and "Not converged" are means of these
files' rows over each model's trainings (docs/results/tables/structure_vs_*.csv).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from htweather.config import split_replicate
from htweather.data.store import load_stats, test_fields
from htweather.evaluation import spatial

METRICS = ["psd_log_ratio_small", "psd_log_error", "object_area_rel_error_p99", "sal_structure_p99"]
SETTINGS = {"heun-128": "Heun 128 (255 evaluations, reference)", "heun-18": "Heun 18 (35, EDM's)",
            "dpmpp_2m-10-rho10-sigma_max20": "dpmpp_2m 10 (10, default)"}


def scored(stats: dict, data: dict, sets: list[tuple[dict, dict[str, np.ndarray]]],
           block_sizes: list[int]) -> pd.DataFrame:
    """One row per set and variable: the set's key columns and the METRICS of its fields (by
    variable) against the data."""
    rows = []
    for name in stats["channels"]:
        spec = spatial.spatial_spec(stats, name, data[name], block_sizes)
        reference = spatial.summarise(data[name], spec)
        for key, fields in sets:
            found = spatial.spatial_metrics(spatial.summarise(fields[name], spec), reference, [0.99],
                                            stats["variables"][name]["tails"])
            rows.append({**key, "variable": name, **{m: found.get(m, np.nan) for m in METRICS}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=["steps", "sampler"])
    parser.add_argument("--run", type=Path, default=Path("."), help="the run's directory (holding results/)")
    parser.add_argument("--cache", type=Path, help="sampler: benchmarks/sampler_budget.py's cache")
    parser.add_argument("--members", type=int, default=64, help="steps: members per ensemble")
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = args.run / "results"
    stats = load_stats(results / "data" / "stats.json")
    data = test_fields(results / "data" / "store.zarr")
    sets = []
    if args.check == "steps":
        for final in sorted((results / "samples").glob("*.zarr")):
            run = final.stem
            if not (results / "snapshots" / run).exists():  # the truth, models without snapshots
                continue
            for path in sorted((results / "snapshots" / run).glob("snapshot_*.zarr")) + [final]:
                ds = xr.open_zarr(path, chunks=None)
                sets.append(({"model": split_replicate(run)[0], "run": run, "step": ds.attrs.get("training_steps")},
                             {v: ds[v].values[:args.members].astype(np.float64) for v in stats["channels"]}))
    else:
        for path in sorted(args.cache.glob("*__*.npz")):
            run, setting = path.stem.split("__", 1)
            if setting in SETTINGS:
                z = np.load(path)
                sets.append(({"model": split_replicate(run)[0], "run": run, "sampler": SETTINGS[setting]},
                             {v: z[v] for v in stats["channels"]}))
    frame = scored(stats, data, sets, args.block_sizes)
    frame.to_csv(args.out, index=False, float_format="%.4g")
    group = ["variable", "model", "step" if args.check == "steps" else "sampler"]
    print(frame.groupby(group, sort=False)[METRICS].mean().round(2).to_string())


if __name__ == "__main__":
    main()
