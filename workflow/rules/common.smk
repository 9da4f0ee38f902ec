# Shared set-up: make the package importable, load and validate the config, name the outputs.
import os
import re
import sys
from pathlib import Path


ROOT = Path(workflow.main_snakefile).parent
SRC = ROOT / "src"
# Rules call the package in src/; put it on the path here and for every job (conda envs too).
sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)

from htweather.config import comparison_pairs, input_files, load_config, merge_configs, read_yaml  # noqa: E402
from htweather.config import model_training_settings, replicate_names, snapshot_count, split_replicate  # noqa: E402
from htweather.errors import HtweatherError  # noqa: E402
from htweather.data.ingest import check_source  # noqa: E402


# Snakemake deep-merges --configfile into a `configfile:` default, which would graft the default
# variables and models onto a user's config. Instead: the default file only when no config file
# is given (so `--config key=value` still overrides it); schema defaults fill in the rest.
# (A YAML error in a --configfile is Snakemake's to report, before this file runs: without the
# line; `htweather check FILE` gives it.)
try:
    if not workflow.config_settings.configfiles:
        _merged = merge_configs(read_yaml(ROOT / "config" / "config.yaml"), dict(config))
        config.clear()
        config.update(_merged)
    # The config, and what ingestion would reject of its source (`htweather check`: the same
    # function and the same line), fail here, before any job runs. A job that reparses this file
    # on a cluster node skips the source check: the main process has done it, and it opens every
    # input file.
    CFG = load_config(config)
    if workflow.is_main_process:
        check_source(CFG)
except HtweatherError as _error:
    print(f"htweather: config error: {_error}", file=sys.stderr)
    sys.exit(2)  # as `htweather check`

MODELS = list(CFG["models"])
# A downscaling run (the downscaling section; config/downscaling.yaml) trains downscaling models
# only: workflow/rules/downscale.smk replaces the sampling, evaluation and report rules.
DOWNSCALERS = [m for m in MODELS if CFG["models"][m].get("downscale")]
DOWNSCALING = bool(DOWNSCALERS)
# Unconditional generators sample ensembles; forecast models (condition_steps > 0) forecast.
GENERATORS = [m for m in MODELS if CFG["models"][m]["condition_steps"] == 0 and m not in DOWNSCALERS]
FORECASTERS = [m for m in MODELS if CFG["models"][m]["condition_steps"] > 0]
# Every replicate of a model (an independent training, `replicates`) trains, samples and is
# evaluated in jobs of its own: MODEL is the first, MODEL.r1, MODEL.r2, ... the others. The
# report's figures show the first; the tables and comparisons use them all.
RUNS = replicate_names(CFG, MODELS)
GENERATOR_RUNS = replicate_names(CFG, GENERATORS)
REPLICATE_GENERATOR_RUNS = [run for run in GENERATOR_RUNS if run not in GENERATORS]  # MODEL.r1, ...
FORECASTER_RUNS = replicate_names(CFG, FORECASTERS)
SYNTHETIC = CFG["data"]["source"] == "synthetic"
TRUTH = ["truth"] if SYNTHETIC else []
ENSEMBLES = GENERATORS + TRUTH
# Sequences whose block maxima are fitted (GEV): the forecast models' free-running sequences,
# and the true process's where it is known.
SEQUENCES = FORECASTERS + TRUTH
VARIABLES = list(CFG["data"]["variables"])
# nu: select: candidates (one training and one ensemble each) scored on the validation split only
CANDIDATES = list(CFG["nu_candidates"])
SELECTED = sorted({entry["select_for"] for entry in CFG["nu_candidates"].values()})
SELECTIONS = expand("results/selection/{model}.json", model=SELECTED)
# [model, baseline] pairs compared with intervals over their replicates (comparisons.csv)
COMPARISONS = comparison_pairs(CFG)
COMPARED = sorted({m for pair in COMPARISONS for m in pair})


def one_of(names):
    """A wildcard regex matching exactly these names (replicate names hold a dot)."""
    return "|".join(re.escape(n) for n in names) or "^$"


wildcard_constraints:
    model=one_of(RUNS + CANDIDATES),
    generator=one_of(GENERATOR_RUNS + CANDIDATES),
    selected=one_of(SELECTED),
    forecaster=one_of(FORECASTER_RUNS),
    ensemble=one_of(GENERATOR_RUNS + TRUTH),
    source=one_of(["data"] + FORECASTER_RUNS + TRUTH),


def runs_of(models):
    return {m: replicate_names(CFG, [m]) for m in models}


# Convergence: small ensembles (lead-1 forecasts for forecast models) from EMA snapshots part-way
# through training, and the final ensemble (forecasts)
# (snapshot K: the K-th of training.snapshots; its step is in the file, known at the end of training
# with steps: auto)
SNAPSHOTS = list(range(1, snapshot_count(CFG["training"]) + 1))
CONVERGENCE = {run: [*(f"results/snapshots/{run}/snapshot_{k}.zarr" for k in SNAPSHOTS),
                     f"results/{'samples' if run in GENERATOR_RUNS else 'forecasts'}/{run}.zarr"]
               for run in (GENERATOR_RUNS + FORECASTER_RUNS if SNAPSHOTS else [])}

# what the comparisons read: each compared run's ensemble or forecasts
COMPARED_RUNS = {run: f"results/{'samples' if m in GENERATORS else 'forecasts'}/{run}.zarr"
                 for m, runs in runs_of(COMPARED).items() for run in runs}


def section(*keys):
    """The config restricted to dotted `keys`: passed as a rule's params, so a rule reruns only
    when a setting it uses changes."""
    out = {}
    for key in keys:
        src, dst = CFG, out
        *parents, leaf = key.split(".")
        for part in parents:
            src = src[part]
            dst = dst.setdefault(part, {})
        dst[leaf] = src[leaf]
    return out


def model_section(wildcards):
    model, _ = split_replicate(wildcards.model)
    entry = CFG["models"].get(model) or CFG["nu_candidates"][model]
    # steps: auto samples from the EMA weights during training (training.stop)
    stop_rule = section("sampling", "evaluation.tail_probability") if CFG["training"]["steps"] == "auto" else {}
    # a downscaling model trains on the coarse fields of its factor
    coarse = {"downscaling": {"factor": CFG["downscaling"]["factor"]}} if entry.get("downscale") else {}
    params = {**section("seed", "architecture", "training", "data.variables"), **stop_rule, **coarse,
              "models": {model: entry}}
    # what decides what this model learns (config.model_training_settings)
    params["training"] = model_training_settings(params["training"], entry.get("family"), bool(entry.get("residual")))
    return params


def candidates_of(model):
    return [c for c, entry in CFG["nu_candidates"].items() if entry["select_for"] == model]


def nu_selection(wildcards):
    """A model with nu: select trains with the value chosen on the validation split."""
    model, _ = split_replicate(wildcards.model)
    return [f"results/selection/{model}.json"] if model in SELECTED else []


def selection_section(wildcards):
    return {**section("evaluation"), "models": {wildcards.selected: CFG["models"][wildcards.selected]},
            "nu_candidates": {c: CFG["nu_candidates"][c] for c in candidates_of(wildcards.selected)}}


def source_sequences(wildcards):
    """The sequences whose block maxima a return_levels job fits: none for the test data itself."""
    return [] if wildcards.source == "data" else [f"results/sequences/{wildcards.source}.zarr"]


def forecaster_section(wildcards):
    model, _ = split_replicate(wildcards.forecaster)
    return {**section("seed", "sampling", "forecast", "training.device"), "models": {model: CFG["models"][model]}}


FIGURES = {
    "histograms": "results/figures/tail_histograms.png",
    "qq": "results/figures/qq.png",
    "loss": "results/figures/loss_curves.png",
    **{f"quantile_maps_{v}": f"results/figures/quantile_maps_{v}.png" for v in VARIABLES},
    **{f"maps_{v}": f"results/figures/maps_{v}.png" for v in VARIABLES},
}
if GENERATORS:
    FIGURES["spatial"] = "results/figures/spatial_structure.png"
if CFG["nu_sweep"]:
    FIGURES["nu_sweep"] = "results/figures/nu_sweep.png"
if CONVERGENCE:
    FIGURES["convergence"] = "results/figures/convergence.png"
SAMPLER_BUDGET = CFG["evaluation"]["sampler_budget"]["enabled"] and bool(GENERATORS)  # unconditional models
SAMPLER_BUDGET_TABLE = ["results/evaluation/sampler_budget.csv"] if SAMPLER_BUDGET else []
# the A/A check (aa_check): every split of a model's trainings compared with itself
AA_MODELS = (CFG["aa_check"] or {}).get("models", [])
AA_CHECK_TABLES = [f"results/evaluation/aa_{name}.csv" for name in ("check", "rates", "power")] if AA_MODELS else []
if SAMPLER_BUDGET:
    FIGURES["sampler_budget"] = "results/figures/sampler_budget.png"
if FORECASTERS:
    FIGURES.update({
        "forecast_skill": "results/figures/forecast_skill.png",
        "rank_histograms": "results/figures/rank_histograms.png",
        "return_levels": "results/figures/return_levels.png",
    })


