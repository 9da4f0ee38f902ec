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
files and ensembles), scores.csv (setting, replicate, step, train_seconds, variable, metric,
value; the truth's rows have setting "truth") and prints, per setting and step, the means over
replicates of the rain targets' metrics. A finished training or ensemble is reused when rerun
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
import yaml

from htweather.config import load_config, read_yaml
from htweather.data.store import test_fields
from htweather.evaluation.tails import evaluate_ensemble
from htweather.generation.sample import sample
from htweather.generation.truth import sample_truth
from htweather.training.train import train

log = logging.getLogger("training_study")

TARGET_METRICS = ["dry_fraction_error", "exceedance_ratio_0.999", "quantile_rel_error_0.999",
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
    return frame.assign(setting=setting, replicate=replicate, step=step, train_seconds=seconds)[
        ["setting", "replicate", "step", "train_seconds", "variable", "metric", "value"]]


def run_setting(raw: dict, name: str, overrides: dict, args, store: Path, stats: Path, data) -> list[pd.DataFrame]:
    config = load_config(with_overrides(raw, {**overrides, "training.steps": args.steps,
                                              "training.snapshots": args.fractions}), check_paths=False)
    config["evaluation"]["bootstrap"] = 0
    frames = []
    for replicate in range(args.replicates):
        folder = args.out / name / f"r{replicate}"
        folder.mkdir(parents=True, exist_ok=True)
        settings = {"training": config["training"], "architecture": config["architecture"],
                    "model": config["models"][args.model], "sampling": config["sampling"], "replicate": replicate}
        made = folder / "settings.json"
        if made.exists() and json.loads(made.read_text()) != json.loads(json.dumps(settings, default=str)):
            raise SystemExit(f"{folder}: trained with other settings ({made}); choose another --out or setting name")
        made.write_text(json.dumps(settings, default=str, indent=1))
        if not (folder / "model.pt").exists():
            t0 = time.process_time()
            train(config, args.model, store, stats, folder, threads=args.threads, replicate=replicate)
            log.info("%s r%d: trained in %.0f CPU s", name, replicate, time.process_time() - t0)
        logged = pd.read_csv(folder / "train_log.csv")
        steps = [max(1, round(f * args.steps)) for f in sorted(args.fractions)] + [args.steps]
        files = [folder / f"snapshot_{k}.pt" for k in range(1, len(args.fractions) + 1)] + [folder / "model.pt"]
        for step, path in zip(steps, files):
            ensemble = folder / f"ensemble_{step}.zarr"
            if not ensemble.exists():
                sample(config, path, stats, ensemble, threads=args.threads)
            seconds = float(logged.loc[logged["step"] <= step, "elapsed_s"].max())
            frames.append(score(config, args.model, ensemble, store, stats, data, name, replicate, step, seconds))
    return frames


def summary(scores: pd.DataFrame, variable: str) -> pd.DataFrame:
    rows = scores[(scores["variable"] == variable) & scores["metric"].isin(TARGET_METRICS)]
    return rows.pivot_table(index=["setting", "step"], columns="metric", values="value", aggfunc="mean").round(3)


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
    base = load_config(raw, check_paths=False)
    if base["data"]["source"] == "synthetic" and base["data"]["synthetic"]["generator"] == "storms":
        truth = args.out / "truth.zarr"
        if not truth.exists():
            sample_truth(base, stats, truth)
        base["evaluation"]["bootstrap"] = 0
        frames.append(score(base, "truth", truth, store, stats, data, "truth", 0, 0, 0.0))
    for text in args.setting or ["baseline"]:
        name, overrides = parse_setting(text)
        frames += run_setting(raw, name, overrides, args, store, stats, data)
        scores = pd.concat(frames, ignore_index=True)
        scores.to_csv(args.out / f"scores_{name}.csv", index=False)
    scores = pd.concat(frames, ignore_index=True)
    path = args.out / "scores.csv"
    if path.exists():  # other settings' rows from earlier runs stay
        old = pd.read_csv(path)
        scores = pd.concat([old[~old["setting"].isin(scores["setting"].unique())], scores], ignore_index=True)
    scores.to_csv(path, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(scores, args.variable))


if __name__ == "__main__":
    sys.exit(main())
