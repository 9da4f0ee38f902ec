"""Tail error against sampler budget: each trained model sampled with several solvers and step
counts, compared with a 255-evaluation reference of the same model and with the test data.

    python benchmarks/sampler_budget.py sample --models edm tedm      # one process per core
    python benchmarks/sampler_budget.py sample --models flow tflow
    python benchmarks/sampler_budget.py report                       # the table and a figure, from the cache
    python benchmarks/sampler_budget.py sample --extra dpmpp_2m:10:rho=10   # more settings, SOLVER:STEPS[:KEY=VALUE...]

Reads a finished run (results/models/NAME[.rK]/model.pt, results/data/), so the models are the
ones the run trained. Every setting of one replicate starts from the same initial noise (one
seed per replicate), so what differs between settings is the solver's error, not the draw. Each
setting's ensembles (physical units) are cached as .npz under --cache, so `report` and reruns
cost nothing. The report gives, per model, variable and setting: the network evaluations, the
time per member (measured in this run, and as a ratio to the reference's), the key tail error
against the data (the mean over the replicates), and the paired comparison against the
reference on the key tail metrics (evaluation.comparisons.compare_tails: intervals over the
replicates and the test data; `indistinguishable` on every metric is what a cheaper default
must show).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from htweather.config import load_config, replicate_names
from htweather.data.store import load_stats
from htweather.evaluation.sampler_budget import REFERENCE_LEVELS, budget_table, label, parse_setting, sample_settings
from htweather.report.plots import sampler_budget_figure

# (solver, steps, overrides) per family, beside the reference; the noise levels are EDM's (sigma_max
# 80, rho 7: REFERENCE_LEVELS) unless overridden, as when the cache was first filled
SETTINGS = {
    "edm": ["heun:18", "heun:8", "heun:5", "heun:3", "dpmpp_2m:15", "dpmpp_2m:10", "dpmpp_2m:7", "dpmpp_2m:5",
            "euler:10", "stochastic:18"],
    "flow": ["heun:18", "heun:8", "heun:5", "heun:3", "ab2:15", "ab2:10", "ab2:7", "ab2:5", "euler:10"],
}


def settings(family: str, extra: list[tuple], only: bool) -> list[tuple]:
    base = [] if only else [parse_setting(s) for s in SETTINGS[family]]
    return base + [s for s in extra if s not in base]


def cache_io(cache: Path, run: str, draw: int):
    """load and save for sample_settings: one .npz per run, draw and setting."""
    def path(setting):
        return cache / f"{run}__{f'd{draw}__' if draw else ''}{label(setting)}.npz"

    def load(setting):
        if not path(setting).exists():
            return None
        with np.load(path(setting)) as f:
            return {k: f[k] for k in f.files}

    def save(setting, ensemble):
        tmp = path(setting).with_suffix(".tmp.npz")
        np.savez(tmp, **ensemble)
        tmp.replace(path(setting))

    return load, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["sample", "report"])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--results", default="results", type=Path)
    parser.add_argument("--models", nargs="+", default=["edm", "tedm", "flow", "tflow"])
    parser.add_argument("--members", type=int, default=128)
    parser.add_argument("--cache", default="results/benchmarks/sampler_budget", type=Path)
    parser.add_argument("--extra", nargs="*", default=[], type=parse_setting,
                        help="more settings, SOLVER:STEPS[:KEY=VALUE...] (KEY: sigma_min, sigma_max, rho)")
    parser.add_argument("--only", action="store_true", help="the reference and the --extra settings only")
    parser.add_argument("--draw", type=int, default=0,
                        help="another initial noise (0 = the first): confirms a setting chosen on draw 0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    sampling = json.loads(json.dumps(config["sampling"]))
    for family in ("edm", "flow"):
        sampling[family].update(REFERENCE_LEVELS)
    sampling["batch_size"] = args.members  # one batch per setting, as the cache was filled: the same noise
    stats = load_stats(args.results / "data" / "stats.json")
    args.cache.mkdir(parents=True, exist_ok=True)
    ensembles = {}
    for model in args.models:
        family = config["models"][model]["family"]
        ensembles[model] = {
            run: sample_settings(args.results / "models" / run / "model.pt", stats, sampling,
                                 settings(family, args.extra, args.only), args.members, config["seed"],
                                 *cache_io(args.cache, run, args.draw), log=lambda text: print(text, flush=True),
                                 draw=args.draw)
            for run in replicate_names(config, [model])}
    if args.command == "sample":
        return
    table = budget_table(ensembles, args.results / "data" / "store.zarr", stats, config["evaluation"], config["seed"])
    table.to_csv(args.cache / "table.csv", index=False, float_format="%.5g")
    sampler_budget_figure(table, args.cache / "tail_error_vs_evaluations.png", base_levels="(EDM's levels)")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
