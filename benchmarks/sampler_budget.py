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
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from htweather.config import load_config, replicate_names
from htweather.data.store import denormalise, grid_mask, grid_shape, load_stats, test_fields
from htweather.evaluation.bootstrap import SortedUnits
from htweather.evaluation.comparisons import KEY_TAIL_METRICS, compare_tails
from htweather.evaluation.tails import wet_threshold
from htweather.models import assemble
from htweather.models.diffusion.samplers import EDM_SOLVERS, FLOW_SOLVERS, network_evaluations
from htweather.runtime import derived_seed, replicate_seed
from htweather.tail_metrics import key_tail_error

REFERENCE = ("heun", 128, ())  # 255 network evaluations
SETTINGS = {  # (solver, steps, overrides of sampling.FAMILY) per family, beside the reference
    "edm": [("heun", 18, ()), ("heun", 8, ()), ("heun", 5, ()), ("heun", 3, ()), ("dpmpp_2m", 15, ()),
            ("dpmpp_2m", 10, ()), ("dpmpp_2m", 7, ()), ("dpmpp_2m", 5, ()), ("euler", 10, ()),
            ("stochastic", 18, ())],
    "flow": [("heun", 18, ()), ("heun", 8, ()), ("heun", 5, ()), ("heun", 3, ()), ("ab2", 15, ()), ("ab2", 10, ()),
             ("ab2", 7, ()), ("ab2", 5, ()), ("euler", 10, ())],
}


# the multistep solvers of the two families share a colour: each is its family's cheap second-order solver
SOLVER_COLORS = {"dpmpp_2m": "tab:blue", "ab2": "tab:blue", "euler": "tab:orange", "heun": "tab:green",
                 "stochastic": "tab:red"}
SOLVER_LABELS = {"dpmpp_2m": "DPM-Solver++(2M) (EDM)", "ab2": "Adams-Bashforth 2 (flow)",
                 "stochastic": "stochastic, Student-t churn"}


def label(solver: str, steps: int, overrides: tuple = ()) -> str:
    return f"{solver}-{steps}" + "".join(f"-{key}{value:g}" for key, value in overrides)


def parse_setting(text: str) -> tuple:
    """SOLVER:STEPS[:KEY=VALUE...], e.g. dpmpp_2m:10:rho=10 -> ("dpmpp_2m", 10, (("rho", 10.0),))."""
    solver, steps, *rest = text.split(":")
    return solver, int(steps), tuple((key, float(value)) for key, value in (item.split("=") for item in rest))


def settings(family: str, extra: list[tuple], only: bool = False) -> list[tuple]:
    """The reference, the family's settings (unless `only`) and the --extra ones whose solver the
    family has."""
    solvers = EDM_SOLVERS if family == "edm" else FLOW_SOLVERS
    base = [] if only else SETTINGS[family]
    return [REFERENCE] + base + [s for s in extra if s[0] in solvers and s not in base]


def sample_run(config: dict, run: str, results: Path, cache: Path, members: int, extra: list[tuple],
               only: bool = False, draw: int = 0) -> None:
    stats = load_stats(results / "data" / "stats.json")
    device = torch.device("cpu")
    model, spec, ckpt = assemble.load_model(results / "models" / run / "model.pt", device)
    seed = replicate_seed(config["seed"], "sampler-budget", spec.name, int(ckpt.get("replicate", 0)))
    if draw:  # a fresh initial noise, to confirm a setting chosen on draw 0
        seed = derived_seed(seed, f"draw-{draw}")
    shape = grid_shape(stats)
    for solver, steps, overrides in settings(spec.family, extra, only):
        out = cache / f"{run}__{label(solver, steps, overrides)}.npz"
        if out.exists():
            continue
        sampling = json.loads(json.dumps(config["sampling"]))
        sampling[spec.family].update(solver=solver, steps=steps, **dict(overrides))
        torch.manual_seed(derived_seed(seed, "noise"))  # the same initial noise for every setting
        t0 = time.perf_counter()
        with torch.no_grad():
            fields = assemble.generate(model, spec, members, shape, sampling, device).numpy()
        seconds = time.perf_counter() - t0
        if ckpt["input_map"] is not None:
            fields = ckpt["input_map"].inverse(fields)
        physical = denormalise(fields, stats)
        np.savez(out, seconds=seconds, evaluations=network_evaluations(spec.family, steps, solver), **physical)
        print(f"{run} {label(solver, steps, overrides)}: {seconds:.1f} s", flush=True)


def report(config: dict, models: list[str], results: Path, cache: Path, extra: list[tuple],
           only: bool = False) -> pd.DataFrame:
    stats = load_stats(results / "data" / "stats.json")
    mask = grid_mask(stats)

    def cells(fields: np.ndarray) -> np.ndarray:  # (n, lat, lon) -> (n, real cells), as the comparisons
        return fields[:, mask] if mask is not None else fields.reshape(len(fields), -1)

    data = test_fields(results / "data" / "store.zarr")
    opts = config["evaluation"]
    rows = []
    for model in models:
        runs = replicate_names(config, [model])
        family = config["models"][model]["family"]
        loaded = {(run, s): np.load(cache / f"{run}__{label(*s)}.npz") for run in runs
                  for s in settings(family, extra, only)}
        reference_seconds = np.mean([float(loaded[run, REFERENCE]["seconds"]) for run in runs])
        for variable in stats["channels"]:
            data_values = cells(data[variable])
            units = SortedUnits(data_values)
            tails = stats["variables"][variable]["tails"]
            reference = [cells(loaded[run, REFERENCE][variable]) for run in runs]
            for setting in settings(family, extra, only):
                ensembles = [cells(loaded[run, setting][variable]) for run in runs]
                rng = np.random.default_rng(derived_seed(config["seed"], "sampler-budget", model, variable))
                found = ({} if setting == REFERENCE else
                         compare_tails(ensembles, reference, units, tails, {**opts, "bootstrap": 100}, rng,
                                       wet_threshold(stats["variables"][variable])))
                key = {m: r for m, r in found.items() if m in KEY_TAIL_METRICS}
                seconds = np.mean([float(loaded[run, setting]["seconds"]) for run in runs])
                rows.append({
                    "model": model, "variable": variable, "solver": setting[0], "steps": setting[1],
                    "options": " ".join(f"{key}={value:g}" for key, value in setting[2]),
                    "evaluations": int(loaded[runs[0], setting]["evaluations"]),
                    "s_per_member": seconds / len(ensembles[0]), "time_ratio": seconds / reference_seconds,
                    "tail_error": float(np.mean([key_tail_error(e.ravel(), data_values.ravel(), tails,
                                                                opts["tail_probability"]) for e in ensembles])),
                    "vs_reference": ("reference" if setting == REFERENCE else
                                     f"{sum(r['verdict'] == 'indistinguishable' for r in key.values())} of {len(key)} "
                                     "indistinguishable"),
                    "worst": "" if setting == REFERENCE else max(
                        key, key=lambda m: abs(key[m]["difference"]) / max(key[m]["ci_high"] - key[m]["ci_low"], 1e-12)),
                })
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame, out: Path) -> None:
    """Tail error against the data per network evaluations: a panel per model and variable, a
    line per solver, the reference's error dashed. Points that leave the axis (Heun at very few
    steps diverges) are clipped at 3 times the reference's range."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, variables = list(dict.fromkeys(table.model)), list(dict.fromkeys(table.variable))
    fig, axes = plt.subplots(len(variables), len(models), figsize=(3.2 * len(models), 2.6 * len(variables)),
                             squeeze=False, sharex=True)
    for row, variable in zip(axes, variables):
        for ax, model in zip(row, models):
            sub = table[(table.model == model) & (table.variable == variable)]
            reference = sub[(sub.solver == REFERENCE[0]) & (sub.steps == REFERENCE[1])].tail_error.iloc[0]
            others = sub[~((sub.solver == REFERENCE[0]) & (sub.steps == REFERENCE[1]))]
            for (solver, options), line in others.fillna({"options": ""}).groupby(["solver", "options"]):
                line = line.sort_values("evaluations")
                ax.plot(line.evaluations, line.tail_error, marker="o", ms=3, lw=1.2, color=SOLVER_COLORS[solver],
                        ls="-" if not options else ":",
                        label=" ".join([SOLVER_LABELS.get(solver, solver), options]).strip())
            ax.axhline(reference, color="0.3", ls="--", lw=1, label=f"reference ({2 * REFERENCE[1] - 1})")
            ax.set_xscale("log")
            ax.set_xticks([5, 10, 15, 35], ["5", "10", "15", "35"])
            ax.minorticks_off()
            ax.set_ylim(0, max(3 * reference, 0.1))
            ax.set_title(f"{model}: {variable}", fontsize=9)
        row[0].set_ylabel("tail error vs data", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("network evaluations per member", fontsize=8)
    handles = {}
    for ax in axes.ravel():
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(out, dpi=90)
    plt.close(fig)


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
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.command == "sample":
        for model in args.models:
            for run in replicate_names(config, [model]):
                sample_run(config, run, args.results, args.cache, args.members, args.extra, args.only, args.draw)
        return
    table = report(config, args.models, args.results, args.cache, args.extra, args.only)
    table.to_csv(args.cache / "table.csv", index=False, float_format="%.5g")
    figure(table, args.cache / "tail_error_vs_evaluations.png")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))


if __name__ == "__main__":
    main()
