"""Tail error against sampler budget: each trained model sampled with several solvers and step
counts, compared with a 255-evaluation reference of the same model and with the test data.

Every setting of one training starts from the same initial noise (one seed per training), so what
differs between settings is the solver's error, not the draw. Per model, variable and setting:
the network evaluations per member, the time per member (and its ratio to the reference's,
measured in the same run), the key tail error against the data (the mean over the trainings)
and the paired comparison against the reference on the key tail metrics
(`comparisons.compare_tails`: intervals over the trainings and the test data). `indistinguishable`
on every key metric is what a cheaper default has to show.

Used by the workflow's `sampler_budget` rule (evaluation.sampler_budget) and by
benchmarks/sampler_budget.py, which caches each setting's ensembles to add settings cheaply."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.store import grid_mask, grid_shape, load_stats, test_fields
from ..generation.ensembles import generated_fields
from ..models import assemble
from ..models.devices import autocast, select_device, set_threads
from ..models.diffusion.samplers import EDM_SOLVERS, FLOW_SOLVERS, network_evaluations
from ..runtime import derived_seed, replicate_seed
from ..tail_metrics import key_tail_error
from .bootstrap import SortedUnits
from .comparisons import compare_tails, key_tail_metrics
from .tails import wet_threshold

REFERENCE = ("heun", 128, ())  # 255 network evaluations, EDM's noise levels
REFERENCE_LEVELS = {"sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0}  # EDM's
LEVEL_KEYS = tuple(REFERENCE_LEVELS)

Setting = tuple  # (solver, steps, ((key, value), ...))


def parse_setting(text: str) -> Setting:
    """SOLVER:STEPS[:KEY=VALUE...], e.g. dpmpp_2m:10:rho=10 -> ("dpmpp_2m", 10, (("rho", 10.0),)); KEY
    one of the noise levels (LEVEL_KEYS), the overrides in name order so that one setting has one
    label."""
    try:
        solver, steps, *rest = text.split(":")
        overrides = tuple(sorted((key, float(value)) for key, value in (item.split("=") for item in rest)))
        steps = int(steps)
    except ValueError as err:
        raise ValueError(f"sampler setting {text!r}: expected SOLVER:STEPS[:KEY=VALUE...] ({err})") from None
    unknown = [key for key, _ in overrides if key not in LEVEL_KEYS]
    if unknown or steps < 2:
        raise ValueError(f"sampler setting {text!r}: " + (f"unknown key {unknown[0]!r} (one of {', '.join(LEVEL_KEYS)})"
                                                          if unknown else "steps must be 2 or more"))
    return solver, steps, overrides


def label(setting: Setting) -> str:
    solver, steps, overrides = setting
    return f"{solver}-{steps}" + "".join(f"-{key}{value:g}" for key, value in overrides)


def family_settings(family: str, settings: list[Setting]) -> list[Setting]:
    """The reference, then those of `settings` whose solver the family has."""
    solvers = EDM_SOLVERS if family == "edm" else FLOW_SOLVERS
    return [REFERENCE] + [s for s in settings if s[0] in solvers and s != REFERENCE]


def sample_settings(model_path: str | Path, stats: dict, sampling: dict, settings: list[Setting], members: int,
                    seed: int, load: Callable[[Setting], dict | None] = lambda s: None,
                    save: Callable[[Setting, dict], None] = lambda s, e: None, log=print, draw: int = 0,
                    device: torch.device = torch.device("cpu")) -> dict:
    """{setting: {"seconds", "evaluations", variable: (members, lat, lon) physical}} for one trained
    model: the reference and the family's settings, each from the same initial noise (`draw` > 0:
    another one, to confirm a setting chosen on draw 0), in batches of sampling.batch_size. `load`
    and `save` let a caller cache a setting's ensemble (the benchmark does)."""
    model, spec, ckpt = assemble.load_model(model_path, device)
    batch = sampling.get("batch_size", members)
    seed = replicate_seed(seed, "sampler-budget", spec.name, int(ckpt.get("replicate", 0)))
    if draw:
        seed = derived_seed(seed, f"draw-{draw}")
    out = {}
    for setting in family_settings(spec.family, settings):
        cached = load(setting)
        if cached is not None:
            out[setting] = cached
            continue
        solver, steps, overrides = setting
        opts = json.loads(json.dumps(sampling))
        opts[spec.family].update(**(REFERENCE_LEVELS if setting == REFERENCE else {}), solver=solver, steps=steps,
                                 **dict(overrides))
        t0 = time.perf_counter()
        chunks = []
        for start in range(0, members, batch):
            # the same initial noise for every setting: each batch's seed from its first member
            torch.manual_seed(derived_seed(seed, "noise", *([str(start)] if start else [])))
            with torch.no_grad(), autocast(device):
                chunks.append(assemble.generate(model, spec, min(batch, members - start), grid_shape(stats), opts,
                                                device).cpu().numpy())
        fields = np.concatenate(chunks)
        seconds = time.perf_counter() - t0
        if ckpt["input_map"] is not None:
            fields = ckpt["input_map"].inverse(fields)
        out[setting] = {"seconds": seconds, "evaluations": network_evaluations(spec.family, steps, solver),
                        **generated_fields(fields, stats, {})}  # what generation writes
        save(setting, out[setting])
        log(f"{model_path}: {label(setting)} {seconds:.1f} s")
    return out


def budget_table(ensembles: dict[str, dict[str, dict]], store: str | Path, stats: dict, evaluation: dict,
                 seed: int) -> pd.DataFrame:
    """The table of the module docstring. `ensembles`: {model: {run: sample_settings(...)}}."""
    mask = grid_mask(stats)

    def cells(fields: np.ndarray) -> np.ndarray:  # (n, lat, lon) -> (n, real cells), as the comparisons
        return fields[:, mask] if mask is not None else fields.reshape(len(fields), -1)

    data = test_fields(store)
    rows = []
    for model, runs in ensembles.items():
        by_run = list(runs.values())
        settings = list(by_run[0])
        reference_seconds = np.mean([float(r[REFERENCE]["seconds"]) for r in by_run])
        for variable in stats["channels"]:
            data_values = cells(data[variable])
            units = SortedUnits(data_values)
            tails = stats["variables"][variable]["tails"]
            reference = [cells(r[REFERENCE][variable]) for r in by_run]
            for setting in settings:
                samples = [cells(r[setting][variable]) for r in by_run]
                rng = np.random.default_rng(derived_seed(seed, "sampler-budget", model, variable))
                found = ({} if setting == REFERENCE else
                         compare_tails(samples, reference, units, tails, {**evaluation, "bootstrap": 100}, rng,
                                       wet_threshold(stats["variables"][variable])))
                key = {m: r for m, r in found.items() if m in key_tail_metrics(tails)}
                seconds = np.mean([float(r[setting]["seconds"]) for r in by_run])
                rows.append({
                    "model": model, "variable": variable, "solver": setting[0], "steps": setting[1],
                    "options": " ".join(f"{k}={v:g}" for k, v in setting[2]),
                    "evaluations": int(by_run[0][setting]["evaluations"]), "runs": len(by_run),
                    "s_per_member": seconds / len(samples[0]), "time_ratio": seconds / reference_seconds,
                    "tail_error": float(np.mean([key_tail_error(s.ravel(), data_values.ravel(), tails,
                                                                evaluation["tail_probability"]) for s in samples])),
                    "indistinguishable": (np.nan if setting == REFERENCE else
                                          sum(r["verdict"] == "indistinguishable" for r in key.values())),
                    "compared": len(key),
                    "worst": "" if setting == REFERENCE else max(
                        key, key=lambda m: abs(key[m]["difference"]) / max(key[m]["ci_high"] - key[m]["ci_low"], 1e-12)),
                })
    return pd.DataFrame(rows)


def run(model_paths: dict[str, list[str | Path]], store: str | Path, stats_path: str | Path, config: dict,
        threads: int = 1, log=print) -> pd.DataFrame:
    """The workflow's entry: every listed model's trainings, sampled on the configured device and
    tabulated without a cache, one model at a time (its trainings' ensembles at every setting are
    held in memory together)."""
    set_threads(threads)
    device = select_device(config["training"]["device"])
    stats = load_stats(stats_path)
    opts = config["evaluation"]["sampler_budget"]
    settings = [parse_setting(s) for s in opts["settings"]]
    tables = []
    for model, paths in model_paths.items():
        ensembles = {str(path): sample_settings(path, stats, config["sampling"], settings, opts["members"],
                                                config["seed"], log=log, device=device) for path in paths}
        tables.append(budget_table({model: ensembles}, store, stats, config["evaluation"], config["seed"]))
    return pd.concat(tables, ignore_index=True)
