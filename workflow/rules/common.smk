# Shared set-up: make the package importable, load and validate the config, name the outputs.
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(workflow.main_snakefile).parent
SRC = ROOT / "src"
# Rules call the package in src/; put it on the path here and for every job (conda envs too).
sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)

from htweather.config import input_files, load_config, merge_configs  # noqa: E402
from htweather.errors import HtweatherError  # noqa: E402
from htweather.data.ingest import check_first_file  # noqa: E402


# Snakemake deep-merges --configfile into a `configfile:` default, which would graft the default
# variables and models onto a user's config. Instead: the default file only when no config file
# is given (so `--config key=value` still overrides it); schema defaults fill in the rest.
if not workflow.config_settings.configfiles:
    _defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    _merged = merge_configs(_defaults, dict(config))
    config.clear()
    config.update(_merged)

try:
    CFG = load_config(config)
    if CFG["data"]["source"] != "synthetic":
        check_first_file(CFG)
except HtweatherError as _error:
    sys.exit(f"htweather: config error: {_error}")

MODELS = list(CFG["models"])
# Unconditional generators sample ensembles; forecast models (condition_steps > 0) forecast.
GENERATORS = [m for m in MODELS if CFG["models"][m]["condition_steps"] == 0]
FORECASTERS = [m for m in MODELS if CFG["models"][m]["condition_steps"] > 0]
SYNTHETIC = CFG["data"]["source"] == "synthetic"
ENSEMBLES = GENERATORS + (["truth"] if SYNTHETIC else [])
# Sequences whose block maxima are fitted (GEV): the forecast models' free-running sequences,
# and the true process's where it is known.
SEQUENCES = FORECASTERS + (["truth"] if SYNTHETIC else [])
VARIABLES = list(CFG["data"]["variables"])

wildcard_constraints:
    model="|".join(MODELS),
    generator="|".join(GENERATORS) or "^$",
    forecaster="|".join(FORECASTERS) or "^$",
    ensemble="|".join(ENSEMBLES),
    source="|".join(["data"] + SEQUENCES),


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
    return {**section("seed", "architecture", "training", "data.variables"),
            "models": {wildcards.model: CFG["models"][wildcards.model]}}


def source_sequences(wildcards):
    """The sequences whose block maxima a return_levels job fits: none for the test data itself."""
    return [] if wildcards.source == "data" else [f"results/sequences/{wildcards.source}.zarr"]


def forecaster_section(wildcards):
    return {**section("seed", "sampling", "forecast", "training.device"),
            "models": {wildcards.forecaster: CFG["models"][wildcards.forecaster]}}


FIGURES = {
    "histograms": "results/figures/tail_histograms.png",
    "qq": "results/figures/qq.png",
    "loss": "results/figures/loss_curves.png",
    "quantile_maps": "results/figures/quantile_maps.png",
    **{f"maps_{v}": f"results/figures/maps_{v}.png" for v in VARIABLES},
}
if CFG["nu_sweep"]:
    FIGURES["nu_sweep"] = "results/figures/nu_sweep.png"
if FORECASTERS:
    FIGURES.update({
        "forecast_skill": "results/figures/forecast_skill.png",
        "rank_histograms": "results/figures/rank_histograms.png",
        "return_levels": "results/figures/return_levels.png",
    })


