"""Budget curves of training settings: how many steps (and CPU seconds) a model needs to reach
the data's far tail under each setting, replicated over training seeds, scored by the pipeline's
own metrics against the test split, with the true process alongside where it is known.

    python benchmarks/training_study.py --run . --model tflow --steps 4200 --replicates 2 \\
        --setting baseline --setting extremes:training.extremes.fraction=0.25

RUN is a pipeline run directory whose store exists (results/data/store.zarr, stats.json: the
`ingest` rule). Each --setting is NAME or NAME:KEY=VALUE,KEY=VALUE, KEY a dotted config path
(training.lr, training.extremes.fraction, architecture.base_channels, ...), VALUE read as YAML.
Every setting trains `--replicates` trainings of `--model` (replicate K has the pipeline's seed
of replicate K), keeps the EMA weights at `--fractions` of the steps and at the end, samples
`sampling.members` fields from each with the pipeline's sampler and seed, and scores them with
`evaluation.tails.evaluate_ensemble` (no bootstrap).

Writes under --out (default RUN/results/benchmarks/training_study): SETTING/rK/ (the training's
files and ensembles), scores.csv (setting, replicate, step, train_seconds, members, variable,
metric, value; the truth's rows have setting "truth"), budget_curves.png, and prints, per
setting and step, the means over replicates of the rain targets' metrics. A finished training or ensemble is reused when rerun
with the same settings (kept beside it in settings.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from htweather.config import load_config, read_yaml
from htweather.data.store import test_fields
from htweather.evaluation.tails import evaluate_ensemble
from htweather.generation.sample import sample
from htweather.generation.truth import sample_truth
from htweather.training.stopping import Plateau
from htweather.training.train import train

log = logging.getLogger("training_study")

TARGET_METRICS = ["dry_fraction_error", "exceedance_ratio_p999", "quantile_rel_error_0.999",
                  "wet_quantile_rel_error_0.99", "tail_ks"]


def parse_setting(text: str) -> tuple[str, dict]:
    """NAME[:KEY=VALUE,...] -> (NAME, {dotted key: value})."""
    name, _, rest = text.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--setting {text}: {item!r} is not KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def with_overrides(raw: dict, overrides: dict) -> dict:
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def score(config, model, ensemble, store, stats, data, setting, replicate, step, seconds) -> pd.DataFrame:
    frame = evaluate_ensemble(config, model, ensemble, store, stats, data=data)
    return frame.assign(setting=setting, replicate=replicate, step=step, train_seconds=seconds,
                        members=config["sampling"]["members"])[
        ["setting", "replicate", "step", "train_seconds", "members", "variable", "metric", "value"]]


def run_setting(raw: dict, name: str, overrides: dict, args, store: Path, stats: Path, data) -> list[pd.DataFrame]:
    fixed = {"training.steps": args.steps, "training.snapshots": args.fractions}
    if args.members:
        fixed["sampling.members"] = args.members
    config = load_config(with_overrides(raw, {**fixed, **overrides}), check_paths=False)
    config["evaluation"]["bootstrap"] = 0
    frames = []
    for replicate in range(args.replicates):
        folder = args.out / name / f"r{replicate}"
        folder.mkdir(parents=True, exist_ok=True)
        # what the training depends on (the ensembles are named by their member count)
        settings = {"training": config["training"], "architecture": config["architecture"],
                    "model": config["models"][args.model], "replicate": replicate,
                    "sampling": {k: v for k, v in config["sampling"].items() if k != "members"}}
        made = folder / "settings.json"
        if made.exists() and json.loads(made.read_text()) != json.loads(json.dumps(settings, default=str)):
            raise SystemExit(f"{folder}: trained with other settings ({made}); choose another --out or setting name")
        made.write_text(json.dumps(settings, default=str, indent=1))
        if not (folder / "model.pt").exists():
            t0 = time.process_time()
            train(config, args.model, store, stats, folder, threads=args.threads, replicate=replicate)
            log.info("%s r%d: trained in %.0f CPU s", name, replicate, time.process_time() - t0)
        logged = pd.read_csv(folder / "train_log.csv")
        if config["training"]["steps"] == "auto" and "tail_error" in logged:
            stops = replay_stop_rule(logged, args.patience, config["training"]["stop"]["min_steps"])
            log.info("%s r%d: the stop rule (patience %d) would stop at %s", name, replicate, args.patience, stops)
            (folder / "stop_replay.json").write_text(json.dumps(stops))
        files = [folder / f"snapshot_{k}.pt" for k in range(1, len(args.fractions) + 1)] + [folder / "model.pt"]
        for path in files:  # each file's own step (with steps: auto, the check nearest its fraction)
            step = int(torch.load(path, weights_only=True, map_location="cpu")["steps"])
            ensemble = folder / f"ensemble_{step}_{config['sampling']['members']}.zarr"
            if not ensemble.exists():
                sample(config, path, stats, ensemble, threads=args.threads)
            seconds = float(logged.loc[logged["step"] <= step, "elapsed_s"].max())
            frames.append(score(config, args.model, ensemble, store, stats, data, name, replicate, step, seconds))
    return frames


def replay_stop_rule(log: pd.DataFrame, patience: int, min_steps: int = 0) -> dict[str, int | None]:
    """Where `steps: auto`'s rule (`training.stopping.Plateau`) would have stopped a training that
    logged its checks without stopping (a large training.stop.patience): reading the tail error
    of the heavy-tailed variables (tail_error, the rule) and, as before, of every variable (the
    mean of the tail_error_NAME columns). None: it would not have stopped."""
    checks = log[log["tail_error"].notna()]
    per_variable = [c for c in checks.columns if c.startswith("tail_error_")]
    criteria = {"heavy-tailed variables": checks["tail_error"], "every variable": checks[per_variable].mean(axis=1)}
    out = {}
    for name, values in criteria.items():
        rule = Plateau(patience, min_steps=min_steps)
        out[name] = next((int(step) for step, error in zip(checks["step"], values) if rule.update(int(step), error)),
                         None)
    return out


def summary(scores: pd.DataFrame, variable: str) -> pd.DataFrame:
    rows = scores[(scores["variable"] == variable) & scores["metric"].isin(TARGET_METRICS)]
    return rows.pivot_table(index=["setting", "step"], columns="metric", values="value", aggfunc="mean").round(3)


def plot(scores: pd.DataFrame, variable: str, out: Path) -> None:
    """Budget curves: q99.9 error and p999 mass against steps, each training a thin line, the mean
    over trainings a thick one, the truth's value (a sample of the true process as large as each
    ensemble) dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("quantile_rel_error_0.999", "99.9th percentile, relative error", 0.0, 0.15),
              ("exceedance_ratio_p999", "mass beyond the data's 99.9th percentile", 1.0, None)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = scores[scores["variable"] == variable]
    settings = [s for s in dict.fromkeys(rows["setting"]) if s != "truth"]
    settings = sorted(settings, key=lambda s: (s != "baseline", s))  # the baseline first, in blue
    for ax, (metric, title, ideal, band) in zip(axes, panels):
        for k, setting in enumerate(settings):
            here = rows[(rows["setting"] == setting) & (rows["metric"] == metric)]
            colour = f"C{k}"
            for _, line in here.groupby("replicate"):
                line = line.sort_values("step")
                ax.plot(line["step"], line["value"], color=colour, lw=0.8, alpha=0.5)
            mean = here.groupby("step")["value"].mean()
            ax.plot(mean.index, mean.values, color=colour, lw=2.2, marker="o", ms=4, label=setting)
        truth = rows[(rows["setting"] == "truth") & (rows["metric"] == metric)]["value"]
        if len(truth):
            ax.axhline(float(truth.iloc[0]), color="k", ls="--", lw=1, label="truth (same sample size)")
        ax.axhline(ideal, color="grey", lw=0.8)
        if band:
            ax.axhspan(ideal - band, ideal + band, color="grey", alpha=0.12, lw=0)
        ax.set_xscale("log", base=2)
        ticks = sorted(set(rows.loc[rows["setting"] != "truth", "step"]))
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training steps")
        ax.set_title(f"{variable}: {title}", fontsize=10)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a pipeline run directory whose store exists")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--model", default="tflow")
    parser.add_argument("--setting", action="append", default=None, help="NAME[:KEY=VALUE,...], repeatable")
    parser.add_argument("--replicates", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4200)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.125, 0.25, 0.5])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--members", type=int, default=None,
                        help="members per ensemble (default: the config's sampling.members); the first "
                             "members of a larger ensemble are those of a smaller one")
    parser.add_argument("--patience", type=int, default=3, help="the stop rule's patience when replaying it")
    parser.add_argument("--variable", default="tp", help="the variable whose targets are printed")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store, stats = args.run / "results/data/store.zarr", args.run / "results/data/stats.json"
    if not store.exists() or not stats.exists():
        raise SystemExit(f"{args.run}: no results/data/store.zarr and stats.json (run the ingest rule first)")
    args.out = args.out or args.run / "results/benchmarks/training_study"
    args.out.mkdir(parents=True, exist_ok=True)
    raw = read_yaml(args.config)
    if args.model not in raw.get("models", {}):
        raise SystemExit(f"--model {args.model}: not a model of {args.config}")
    data = test_fields(store)
    frames = []
    base = load_config(with_overrides(raw, {"sampling.members": args.members} if args.members else {}),
                       check_paths=False)
    if base["data"]["source"] == "synthetic" and base["data"]["synthetic"]["generator"] == "storms":
        truth = args.out / f"truth_{base['sampling']['members']}.zarr"
        if not truth.exists():
            sample_truth(base, stats, truth)
        base["evaluation"]["bootstrap"] = 0
        frames.append(score(base, "truth", truth, store, stats, data, "truth", 0, 0, 0.0))
    for text in args.setting or ["baseline"]:
        name, overrides = parse_setting(text)
        frames += run_setting(raw, name, overrides, args, store, stats, data)
        scores = pd.concat(frames, ignore_index=True)
        scores.to_csv(args.out / f"scores_{name}_{base['sampling']['members']}.csv", index=False)
    scores = pd.concat(frames, ignore_index=True)
    path = args.out / "scores.csv"
    if path.exists():  # other settings' rows from earlier runs stay
        old = pd.read_csv(path)
        kept = ~(old["setting"].isin(scores["setting"].unique()) & old["members"].isin(scores["members"].unique()))
        scores = pd.concat([old[kept], scores], ignore_index=True)
    scores.to_csv(path, index=False)
    plot(scores[scores["members"] == base["sampling"]["members"]], args.variable, args.out / "budget_curves.png")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(scores, args.variable))


if __name__ == "__main__":
    sys.exit(main())
