"""Configuration: JSON-schema validation with defaults, plus the checks a schema cannot express.

Every error is a `ConfigError` whose message is one line naming the key at fault.
"""

from __future__ import annotations

import copy
import glob
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml

from .errors import ConfigError

SYNTHETIC_VARIABLES = ("t2m", "w", "tp")
SPLITS = ("train", "validation", "test")


# The forms `data.source` takes besides "synthetic": a remote store (by URL scheme), a local zarr
# store, or a path or glob of NetCDF/GRIB files.
REMOTE_SCHEMES = ("gs://", "gcs://", "s3://", "http://", "https://", "az://", "abfs://")


def is_remote(source: str) -> bool:
    return source.startswith(REMOTE_SCHEMES)


def is_zarr(source: str) -> bool:
    """A remote URL, a path ending in .zarr (ARCO's ``.zarr-v3`` too), or a zarr directory."""
    if is_remote(source):
        return True
    path = Path(source)
    return ".zarr" in path.name or (path.is_dir() and any(
        (path / marker).exists() for marker in (".zgroup", ".zmetadata", "zarr.json")))


def schema() -> dict:
    text = resources.files("htweather").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _validator_filling_defaults():
    """A Draft 2020-12 validator that also fills in `default` values (the jsonschema FAQ recipe,
    as snakemake.utils.validate does), so configs only need the keys they change."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, subschema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _one_line(error: jsonschema.ValidationError) -> str:
    where = _path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = f"{where}." if error.absolute_path else ""
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown key '{prefix}{unknown[0]}'{hint}"
    if error.validator == "oneOf" and "nu" in where.split("."):
        value = error.instance
        if isinstance(value, dict):  # per-variable nu: name the offending variable
            bad = [k for k, v in value.items() if not _valid_nu(v)]
            if bad:
                where, value = f"{where}.{bad[0]}", value[bad[0]]
        return (f"{where}: must be a number > 2 (Student-t noise has finite variance "
                f"nu/(nu-2) only for nu > 2), 'inf', 'auto' or 'select', got {value!r}")
    if "propertyNames" in error.schema_path:
        if where.endswith("variables"):
            return (f"{where}: invalid variable name {error.instance!r} "
                    f"(a name such as t2m, or NAME@LEVEL such as t@850)")
        return f"{where}: invalid name {error.instance!r} (lower-case letters, digits, '_'; not 'truth' or 'data')"
    message = error.message.replace("\n", " ")
    return f"{where}: {message}"


def _valid_nu(value: Any) -> bool:
    if isinstance(value, str):
        return value in ("inf", "infinity", "gaussian", "auto", "select")
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 2


def parse_nu(value: Any) -> float:
    """A config nu as a float: math.inf for Gaussian, NaN for `auto` (resolved from the training
    data when the model is trained, see models.assemble.resolve)."""
    if value == "auto":
        return math.nan
    if isinstance(value, str):
        return math.inf
    return float(value)


def nu_per_variable(model: dict, variables: list[str]) -> list[float]:
    """The model's nu as one float per variable (math.inf for Gaussian, NaN for auto)."""
    spec = model["nu"]
    if isinstance(spec, dict):
        return [parse_nu(spec[v]) for v in variables]
    return [parse_nu(spec)] * len(variables)


def snapshot_steps(training: dict) -> list[int]:
    """The training steps at which EMA snapshots are saved (training.snapshots as fractions of
    training.steps), before the last step."""
    steps = training["steps"]
    return sorted({max(1, round(f * steps)) for f in training["snapshots"]} - {steps})


def snapshot_count(training: dict) -> int:
    """How many snapshots training writes (snapshot_1.pt, ...): with steps: auto, whose steps are
    known only at the end, one per fraction."""
    if training["steps"] == "auto":
        return len(set(training["snapshots"]))
    return len(snapshot_steps(training))


def replicates(config: dict, model: str) -> int:
    """How many independent trainings of `model` the config asks for."""
    return config["models"][model].get("replicates") or config["replicates"]


def replicate_name(model: str, replicate: int) -> str:
    """The name of one replicate in file names and per-model tables: replicate 0 keeps the model's
    name (a run with one replicate is unchanged), replicate r > 0 is MODEL.rR (model names cannot
    hold a dot)."""
    return model if replicate == 0 else f"{model}.r{replicate}"


# training settings added after runs were made, at the value every earlier run used: left out of
# a model's identity (its checkpoint, Snakemake's params) there, so those runs resume and are not
# retrained. Flow matching's time distribution is left out of an EDM model's; EDM's P_mean and
# P_std stay in a flow model's, as they were before, so that its earlier runs keep theirs.
LATER_TRAINING_DEFAULTS = {"adam_beta2": 0.999, "flow_time": {"distribution": "uniform", "mean": 0.0, "std": 1.0}}
ONLY_FOR_FAMILY = {"flow_time": "flow"}


def model_training_settings(training: dict, family: str | None, residual: bool = False) -> dict:
    """The training settings that decide what a model of `family` learns: all but another
    family's own ones (ONLY_FOR_FAMILY), the regression stage's steps unless the model has one
    (`residual`), and the later settings at the value earlier runs had."""
    others = {k for k, f in ONLY_FOR_FAMILY.items() if f != family}
    return {k: v for k, v in training.items()
            if k not in others and (k != "regression_steps" or residual)
            and not (k in LATER_TRAINING_DEFAULTS and _same_setting(v, LATER_TRAINING_DEFAULTS[k]))}


def adam_betas(training: dict) -> tuple[float, float]:
    """AdamW's betas: PyTorch's first-moment decay, the configured second-moment decay."""
    return 0.9, training.get("adam_beta2", LATER_TRAINING_DEFAULTS["adam_beta2"])


def _same_setting(value, default) -> bool:
    if isinstance(default, dict):
        return isinstance(value, dict) and all(value.get(k, d) == d for k, d in default.items())
    return value == default


def split_replicate(name: str) -> tuple[str, int]:
    """`replicate_name` inverted: "tedm.r2" -> ("tedm", 2), "tedm" -> ("tedm", 0)."""
    base, dot, index = name.rpartition(".r")
    if dot and index.isdigit():
        return base, int(index)
    return name, 0


def replicate_names(config: dict, models) -> list[str]:
    return [replicate_name(m, r) for m in models for r in range(replicates(config, m))]


def is_gaussian(nu) -> bool:
    """Gaussian noise for every variable as configured ("auto" counts as Student-t: it is
    resolved per variable from the data)."""
    values = nu.values() if isinstance(nu, dict) else [nu]
    return all(v in ("inf", "infinity", "gaussian") if isinstance(v, str) else math.isinf(float(v)) for v in values)


def is_plain(entry: dict) -> bool:
    """An unconditional model with the standard data and preconditioning (no INC, softlog, PCP)."""
    return entry["condition_steps"] == 0 and entry["normalisation"] == "standard" and entry["sigma_data"] == 1.0


def is_twin(entry: dict, other: dict) -> bool:
    """Two model entries that differ only in their noise (and replicates and labels)."""
    return all(entry.get(k) == other.get(k) for k in (set(entry) | set(other)) - {"nu", "replicates", "label"})


def display_name(config: dict, model: str) -> str:
    """A model's name for people (models.NAME.label, else from its settings: "t-EDM",
    "EDM + INC", "t-Flow forecast"); "truth" and "data" as the report words them; a name that is
    not a model as it is."""
    if model == "truth":
        return "true process"
    if model == "data":
        return "data (test)"
    entry = config["models"].get(model)
    if entry is None:
        return model
    if entry.get("label"):
        return entry["label"]
    name = ("EDM" if entry["family"] == "edm" else "Flow")
    if not is_gaussian(entry["nu"]):
        name = "t-" + name
    extras = {"inc": "INC", "softlog": "softlog"}.get(entry.get("normalisation", "standard"))
    if extras:
        name += f" + {extras}"
    if entry.get("sigma_data") == "per_channel":
        name += " + PCP"
    if entry.get("condition_steps"):
        name += " forecast"
    if entry.get("residual"):
        name += " residual"
    return name


def display_names(config: dict, models) -> dict[str, str]:
    """display_name of each model; where two would read alike, the key is added to tell them apart."""
    names = {m: display_name(config, m) for m in models}
    counts = {}
    for v in names.values():
        counts[v] = counts.get(v, 0) + 1
    return {m: (f"{v} ({m})" if counts[v] > 1 else v) for m, v in names.items()}


def default_comparisons(config: dict) -> list[list[str]]:
    """Every Student-t model against its Gaussian twin (the entry with nu: inf and all else equal)
    and, if unconditional, against the Gaussian baselines of its family (INC, softlog, PCP)."""
    models = config["models"]
    sweep = config.get("nu_sweep") or {}
    swept = {sweep_model_name(sweep["model"], v) for v in sweep.get("values", [])}  # for the sweep figure
    pairs = []
    for name, entry in models.items():
        if is_gaussian(entry["nu"]) or name in swept:
            continue
        for other, candidate in models.items():
            if other == name or not is_gaussian(candidate["nu"]):
                continue
            twin = is_twin(entry, candidate)
            baseline = (entry["condition_steps"] == 0 == candidate["condition_steps"] and is_plain(entry)
                        and not is_plain(candidate) and candidate["family"] == entry["family"])
            if twin or baseline:
                pairs.append([name, other])
    return pairs


def comparison_pairs(config: dict) -> list[list[str]]:
    """The configured comparisons, or the default ones."""
    return config["comparisons"] if config["comparisons"] is not None else default_comparisons(config)


def yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """One line naming the file and the line of a YAML syntax error (and the line where the
    unclosed bracket or quote behind it began)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return f"{path}: not valid YAML: {str(exc).splitlines()[0]}"
    where = ""
    if getattr(exc, "context", None) and exc.context_mark is not None and exc.context_mark.line != mark.line:
        where = f" ({exc.context} started on line {exc.context_mark.line + 1})"
    return f"{path}, line {mark.line + 1}: not valid YAML: {exc.problem}{where}"


def read_yaml(path: str | Path) -> dict:
    """A config file's contents; a missing file or a YAML syntax error is one ConfigError line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None


def load_config(raw: dict | str | Path | None = None, *, check_paths: bool = True) -> dict:
    """Validate a config (dict or YAML path), fill defaults, and run cross-key checks.

    Returns a new dict; the input is not modified.
    """
    if raw is None:
        raw = {}
    if isinstance(raw, (str, Path)):
        raw = read_yaml(raw)
    config = copy.deepcopy(dict(raw))
    config.pop("nu_candidates", None)  # derived (expand_nu_select): a loaded config loads again
    full_schema = schema()
    validator = _validator_filling_defaults()(full_schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ConfigError(_one_line(jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]))
    splits = config["data"]["splits"]
    if not {"blocks", "pattern"} & set(splits) and any(s in splits for s in SPLITS):
        # date ranges: a split left out keeps the default's range
        default = full_schema["properties"]["data"]["properties"]["splits"]["default"]
        config["data"]["splits"] = {**default, **splits}
    expand_nu_sweep(config)
    _check_semantics(config, check_paths=check_paths)
    expand_nu_select(config)
    return config


def sweep_model_name(model: str, value: Any) -> str:
    return f"{model}_nu{str(value).replace('.', 'p')}"


def expand_nu_sweep(config: dict) -> None:
    """`nu_sweep: {model: M, values: [...], variables: [...]}` adds one model per value: M's entry
    with nu set to the value for the swept variables (all by default); the others keep M's nu."""
    sweep = config.get("nu_sweep")
    if not sweep:
        return
    base_name = sweep["model"]
    if base_name not in config["models"]:
        raise ConfigError(f"nu_sweep.model: '{base_name}' is not a model in models")
    variables = list(config["data"]["variables"])
    swept = sweep["variables"] or variables
    unknown = [v for v in swept if v not in variables]
    if unknown:
        raise ConfigError(f"nu_sweep.variables: '{unknown[0]}' is not a variable in data.variables")
    base = config["models"][base_name]
    base_nu = nu_by_variable(base, variables)
    for value in sweep["values"]:
        name = sweep_model_name(base_name, value)
        if name in config["models"]:
            raise ConfigError(f"nu_sweep: model name '{name}' is already taken in models")
        config["models"][name] = {**copy.deepcopy(base), "nu": {v: (value if v in swept else base_nu[v])
                                                                 for v in variables},
                                  "label": f"{display_name(config, base_name)}, ν = {value}"}


def nu_by_variable(entry: dict, variables: list[str]) -> dict:
    """A model entry's nu as configured (numbers or strings), one per variable."""
    return dict(entry["nu"]) if isinstance(entry["nu"], dict) else {v: entry["nu"] for v in variables}


def selected_variables(entry: dict, variables: list[str]) -> list[str]:
    """The variables whose nu the model entry leaves to `nu: select`."""
    nu = entry["nu"]
    return [v for v in variables if (nu.get(v) if isinstance(nu, dict) else nu) == "select"]


def candidate_name(model: str, value: Any) -> str:
    return f"{model}_select_nu{str(value).replace('.', 'p')}"


def expand_nu_select(config: dict) -> None:
    """`config["nu_candidates"]`: for every model with `nu: select` (for all variables or some),
    one candidate per value of nu_select.candidates, named MODEL_select_nuVALUE: the model's
    entry with those variables' nu set to the value, one replicate, `select_for` naming the model.
    They train and sample like models but are scored on the validation split only
    (evaluation.selection), never on the test split."""
    variables = list(config["data"]["variables"])
    config["nu_candidates"] = {}
    for name, entry in config["models"].items():
        selected = selected_variables(entry, variables)
        if not selected:
            continue
        if entry["condition_steps"] > 0:
            raise ConfigError(f"models.{name}.nu: 'select' scores candidates by their samples on the validation "
                              f"split, which is for unconditional models (condition_steps 0); use auto or a number")
        base = nu_by_variable(entry, variables)
        for value in config["nu_select"]["candidates"]:
            candidate = candidate_name(name, value)
            if candidate in config["models"]:
                raise ConfigError(f"nu_select: candidate name '{candidate}' is already taken in models")
            config["nu_candidates"][candidate] = {
                **copy.deepcopy(entry), "nu": {v: (value if v in selected else base[v]) for v in variables},
                "replicates": 1, "select_for": name, "value": value}


def with_selected_nu(config: dict, name: str, chosen: Any) -> dict:
    """The config with model `name`'s `select` entries replaced by the chosen value."""
    variables = list(config["data"]["variables"])
    entry = config["models"][name]
    selected = selected_variables(entry, variables)
    base = nu_by_variable(entry, variables)
    nu = {v: (chosen if v in selected else base[v]) for v in variables}
    return {**config, "models": {**config["models"], name: {**entry, "nu": nu}}}


def _check_semantics(config: dict, *, check_paths: bool) -> None:
    data = config["data"]
    variables = list(data["variables"])
    if data["source"] == "synthetic":
        unknown = [v for v in variables if v not in SYNTHETIC_VARIABLES]
        if unknown:
            raise ConfigError(
                f"data.variables.{unknown[0]}: the synthetic source provides only "
                f"{', '.join(SYNTHETIC_VARIABLES)}")
    elif check_paths:
        source = data["source"]
        if is_zarr(source):
            if not is_remote(source) and not Path(source).exists():
                raise ConfigError(f"data.source: zarr store '{source}' does not exist")
        elif not input_files(config):
            raise ConfigError(f"data.source: no file matches '{source}'")

    for name, opts in data["variables"].items():
        for key in ("trace", "dry_below"):
            if opts.get(key) not in (None, "auto") and opts.get("lower_bound") is None:
                raise ConfigError(f"data.variables.{name}.{key}: needs a lower_bound (the dry value, 0 for "
                                  "precipitation)")
            if isinstance(opts.get(key), (int, float)) and opts[key] <= opts["lower_bound"]:
                raise ConfigError(f"data.variables.{name}.{key}: {opts[key]} is not above the lower_bound "
                                  f"{opts['lower_bound']}")

    for name in (config["training"].get("stop") or {}).get("variables") or []:
        if name not in data["variables"]:
            raise ConfigError(f"training.stop.variables: '{name}' is not among data.variables "
                              f"({', '.join(data['variables'])})")

    check = config.get("aa_check")
    for name in (check or {}).get("models", []):
        if name not in config["models"]:
            raise ConfigError(f"aa_check.models: '{name}' is not a model in models")
        if config["models"][name]["condition_steps"]:
            raise ConfigError(f"aa_check.models: '{name}' is a forecast model; the A/A check compares "
                              "unconditional models")
        if replicates(config, name) < 2 * check["size"] + 1:
            raise ConfigError(f"models.{name}.replicates: the A/A check of {check['size']} against {check['size']} "
                              f"trainings needs {2 * check['size'] + 1} or more (one to leave out for its interval), "
                              f"got {replicates(config, name)}")

    for name, model in config["models"].items():
        if model.get("patch") is not None and 0 < model["patch"] < 4:
            raise ConfigError(f"models.{name}.patch: {model['patch']} is too small (0 = whole fields, else 4 or more)")
        if isinstance(model["nu"], dict):
            extra = [v for v in model["nu"] if v not in variables]
            missing = [v for v in variables if v not in model["nu"]]
            if extra:
                raise ConfigError(f"models.{name}.nu.{extra[0]}: not a variable in data.variables")
            if missing:
                raise ConfigError(f"models.{name}.nu: no value for variable '{missing[0]}'")
        if model.get("kappa") == "sample" and len(variables) > 1 and (
                model["nu"] == "auto" or isinstance(model["nu"], dict) and len({str(v) for v in model["nu"].values()}) > 1):
            raise ConfigError(f"models.{name}.kappa: 'sample' (one kappa for the whole sample) needs one nu for "
                              f"every variable, got nu {model['nu']!r}")

    _check_splits(data["splits"])
    if data["resolution"] and data["coarsen"]:
        raise ConfigError("data.coarsen: give either coarsen (cells per block) or resolution (degrees), not both")

    if data["source"] == "synthetic":
        syn = data["synthetic"]
        try:
            times = pd.date_range(syn["start"], syn["end"], freq=syn["freq"])
        except ValueError as exc:
            raise ConfigError(f"data.synthetic: bad time axis: {exc}") from None
        labels = split_labels(times, data["splits"])
        for split in SPLITS:
            if not (labels == split).any():
                raise ConfigError(f"data.splits.{split}: selects no time of the synthetic data "
                                  f"({syn['start']} .. {syn['end']})")

    forecasters = [m for m, e in config["models"].items() if e["condition_steps"] > 0]
    if forecasters and data["members"] == "samples":
        raise ConfigError(f"data.members: samples stacks ensemble members as fields of the same time, which "
                          f"unconditional models learn from; the forecast model '{forecasters[0]}' needs sequences: "
                          f"choose one member (data.members: 0) for it")
    if forecasters and data["source"] == "synthetic":
        needed = max(config["models"][m]["condition_steps"] for m in forecasters) + config["forecast"]["lead_steps"]
        n_test = int((labels == "test").sum())
        if n_test < needed:
            raise ConfigError(f"forecast.lead_steps: the test split has {n_test} time steps, fewer than the "
                              f"{needed} that a forecast needs (history + lead steps)")

    for i, pair in enumerate(config["comparisons"] or []):
        for name in pair:
            if name not in config["models"]:
                raise ConfigError(f"comparisons.{i}: '{name}' is not a model in models")
        conditional = [config["models"][name]["condition_steps"] > 0 for name in pair]
        if conditional[0] != conditional[1]:
            raise ConfigError(f"comparisons.{i}: {pair[0]} and {pair[1]} cannot be compared: one is a forecast "
                              "model (condition_steps > 0), the other unconditional")
        if pair[0] == pair[1]:
            raise ConfigError(f"comparisons.{i}: a model compared with itself ({pair[0]})")

    _check_downscaling(config)

    if len(config["architecture"]["channel_mult"]) > 6:
        raise ConfigError("architecture.channel_mult: at most 6 resolution levels")


DOWNSCALING_BASELINES = ("interpolation", "quantile_mapping")


def downscalers(config: dict) -> list[str]:
    """The models with downscale: true."""
    return [m for m, e in config["models"].items() if e.get("downscale")]


def _check_downscaling(config: dict) -> None:
    for name, entry in config["models"].items():
        if entry.get("residual") and not entry.get("downscale"):
            raise ConfigError(f"models.{name}.residual: the CorrDiff form is for downscaling models (downscale: true)")
    models = downscalers(config)
    if not models:
        if config.get("downscaling"):
            raise ConfigError("downscaling: no model has downscale: true (a downscaling run trains downscaling models)")
        return
    if not config.get("downscaling"):
        raise ConfigError(f"models.{models[0]}.downscale: needs the downscaling section (its factor and ensembles)")
    others = [m for m in config["models"] if m not in models]
    if others:
        raise ConfigError(f"models.{others[0]}: a downscaling run trains downscaling models only (downscale: true); "
                          "run unconditional and forecast models from another config")
    for name in models:
        entry = config["models"][name]
        for key, allowed in (("condition_steps", 0), ("normalisation", "standard"), ("sigma_data", 1.0)):
            if entry[key] != allowed:
                raise ConfigError(f"models.{name}.{key}: a downscaling model needs {allowed!r}, got {entry[key]!r}")
        patch = config["training"].get("patch") if entry.get("patch") is None else entry["patch"]
        if patch:
            raise ConfigError(f"models.{name}.patch: a downscaling model trains on whole fields (patch 0)")
        if name in DOWNSCALING_BASELINES:
            raise ConfigError(f"models.{name}: the name of a downscaling baseline; call the model something else")
    factor, data = config["downscaling"]["factor"], config["data"]
    if data["source"] == "synthetic" and not (data["region"] or data["resolution"] or data["coarsen"]):
        shape = (data["synthetic"]["nlat"], data["synthetic"]["nlon"])
        if shape[0] % factor or shape[1] % factor:
            raise ConfigError(f"downscaling.factor: the {shape[0]} x {shape[1]} grid (data.synthetic.nlat, nlon) does "
                              f"not split into {factor} x {factor} blocks")
    if config["training"]["steps"] == "auto":
        raise ConfigError("training.steps: auto stops on unconditional tail checks; give downscaling models a number")
    if config.get("nu_sweep") or config.get("nu_candidates"):
        key = next(k for k in ("nu_sweep", "nu_candidates") if config.get(k))
        raise ConfigError(f"{key}: not available in a downscaling run")


def _check_splits(splits: dict) -> None:
    ranges = [s for s in SPLITS if s in splits]
    if "blocks" in splits or "pattern" in splits:
        if ranges:
            raise ConfigError(f"data.splits: give date ranges (train, validation, test) or blocks and pattern, "
                              f"not both (got {ranges[0]} and blocks)")
        if "blocks" not in splits or "pattern" not in splits:
            raise ConfigError("data.splits: interleaved splits need both blocks and pattern")
        lengths = {}
        for key in ("blocks", "guard"):
            if splits.get(key) is None:
                continue
            try:
                lengths[key] = pd.Timedelta(splits[key])
            except ValueError:
                raise ConfigError(f"data.splits.{key}: not a length of time: {splits[key]!r}") from None
        if lengths["blocks"] <= pd.Timedelta(0):
            raise ConfigError(f"data.splits.blocks: must be positive, got {splits['blocks']!r}")
        if lengths.get("guard", pd.Timedelta(0)) >= lengths["blocks"]:
            raise ConfigError(f"data.splits.guard: {splits['guard']} leaves nothing of a block of {splits['blocks']}")
        missing = [s for s in SPLITS if s not in splits["pattern"]]
        if missing:
            raise ConfigError(f"data.splits.pattern: no block for split '{missing[0]}'")
        return
    bounds = {}
    for split in SPLITS:
        start, end = splits[split]
        try:
            bounds[split] = (pd.Timestamp(start), pd.Timestamp(end))
        except ValueError:
            raise ConfigError(f"data.splits.{split}: not a date range: {start!r}, {end!r}") from None
        if bounds[split][0] > bounds[split][1]:
            raise ConfigError(f"data.splits.{split}: start {start} is after end {end}")
    ordered = sorted(SPLITS, key=lambda s: bounds[s][0])
    for a, b in zip(ordered, ordered[1:]):
        if bounds[a][1] >= bounds[b][0]:
            raise ConfigError(f"data.splits.{b}: overlaps data.splits.{a}")


def split_labels(time: pd.DatetimeIndex, splits: dict) -> np.ndarray:
    """The split of each time ("" where none: outside the splits, or in a guard band).

    Date ranges label the times inside them. Interleaved blocks: block k covers
    [origin + k * blocks, origin + (k + 1) * blocks), origin = `start` or the first time, and
    takes pattern[k mod len(pattern)]; the times within `guard` of the start of a block whose
    split differs from the previous block's are dropped."""
    time = pd.DatetimeIndex(time)
    label = np.full(len(time), "", dtype=object)
    if "blocks" not in splits:
        for split in SPLITS:
            start, end = (pd.Timestamp(t) for t in splits[split])
            label[(time >= start) & (time <= end)] = split
        return label
    if len(time) == 0:
        return label
    block, guard = pd.Timedelta(splits["blocks"]), pd.Timedelta(splits.get("guard") or 0)
    origin = pd.Timestamp(splits["start"]) if splits.get("start") else time[0]
    offset = time - origin
    index = np.asarray(offset // block)
    pattern = np.asarray(splits["pattern"], dtype=object)
    own, previous = pattern[index % len(pattern)], pattern[(index - 1) % len(pattern)]
    into_block = offset - index * block
    guarded = (index > 0) & (own != previous) & (into_block < guard)
    keep = (offset >= pd.Timedelta(0)) & ~guarded
    if splits.get("end"):
        keep &= time <= pd.Timestamp(splits["end"])
    label[keep] = own[keep]
    return label


def input_files(config: dict) -> list[str]:
    """The local inputs named by data.source: the files of a path or glob, sorted, or the
    directory of a local zarr store; none for a remote store."""
    source = config["data"]["source"]
    if is_zarr(source):
        return [] if is_remote(source) else [source]
    return sorted(glob.glob(source))


def merge_configs(base: dict, override: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in `override` replaces `base`."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_configs(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
