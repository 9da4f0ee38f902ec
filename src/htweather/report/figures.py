"""Which figure comes from which result: the report's figures from the test data, the
ensembles, the training logs and the metrics table (drawn by `plots`), and what they share with
the page (the closed-form marginals, the ensembles' values, the models of a nu sweep)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import artifacts
from ..config import display_names, is_gaussian, is_plain, split_replicate
from ..data import synthetic
from ..data.store import load_split_times, load_stats, test_fields
from ..data.windows import time_step
from ..evaluation.convergence import ALL_FORECAST_TAIL_SCORES, REFERENCE, final_error, reference_error, tail_error
from ..evaluation.convergence import trend_rows
from ..evaluation import spatial
from ..evaluation.tables import summary
from ..runtime import derived_seed
from ..tail_metrics import key_metric_names
from . import plots


def closed_form_marginals(config: dict, stats: dict) -> dict | None:
    if config["data"]["source"] != "synthetic":
        return None
    spec = config["data"]["synthetic"]
    return {v: synthetic.marginal(spec, v, stats["variables"][v]["units"]) for v in stats["channels"]}


def load_ensembles(paths: dict[str, str | Path], variables: list[str]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name, path in paths.items():
        ds = artifacts.open_zarr(path)
        out[name] = {v: ds[v].values.astype(np.float64) for v in variables}
    return out


def nu_sweep_points(config: dict, nu_values: dict[str, dict]) -> dict[str, dict[str, float]]:
    """The models of the nu sweep, with the nu each used per variable: the swept model, its sweep
    copies and the Gaussian unconditional model(s) of its family (the nu = inf end)."""
    sweep = config.get("nu_sweep")
    if not sweep:
        return {}
    base = sweep["model"]
    family = config["models"][base]["family"]
    swept = [m for m in config["models"] if m == base or m.startswith(f"{base}_nu")]
    gaussian = [m for m, e in config["models"].items()
                if e["family"] == family and is_plain(e) and is_gaussian(e["nu"])]
    return {m: {v: float(x) for v, x in nu_values[m].items()} for m in gaussian + swept if m in nu_values}


def nu_values(paths: dict[str, str | Path]) -> dict[str, dict]:
    """{model: {variable: nu}} as each ensemble or forecast store records it (auto resolved)."""
    out = {}
    for model, path in paths.items():
        attrs = artifacts.open_zarr(path).attrs
        if "nu_by_variable" in attrs:
            out[model] = json.loads(attrs["nu_by_variable"])
    return out

# the far tail's key metrics (tail_metrics.key_metric_names), row for row for an upper and a lower tail
SWEEP_METRICS, SWEEP_METRICS_LOWER = ([m for m in key_metric_names(side) if not m.endswith(("_p99", "_p01"))]
                                      for side in ("upper", "lower"))
AREAL_PROBABILITY = 0.99  # the quantile of block means drawn in the spatial-structure figure


def spatial_curves(stats: dict, data: dict[str, np.ndarray], runs: dict[str, list[dict[str, np.ndarray]]],
                   block_sizes: list[int]) -> dict[str, dict]:
    """The spatial-structure figure's curves (`plots.spatial_structure`) of the data and every
    run of every source (`runs`: {source: [fields by variable, one per run]})."""
    spacing = spatial.grid_spacing_km(stats)
    out = {}
    for name in stats["channels"]:
        spec = spatial.spatial_spec(stats, name, data[name], block_sizes)
        # a lower tail (tails: lower): the 1st percentile of block means, and the objects below
        lower = stats["variables"][name].get("tails") == "lower"
        probability = round(1 - AREAL_PROBABILITY, 10) if lower else AREAL_PROBABILITY
        objects = "p01" if lower else "p99"
        found = {"psd": {}, "areal": {}, "areas": {}}
        for source, fields in {"data": [data], **runs}.items():
            for one in fields:
                s = spatial.summarise(one[name], spec)
                found["psd"].setdefault(source, []).append(s.psd.mean(axis=0))
                found["areal"].setdefault(source, []).append(
                    np.array(list(spatial.areal_quantiles(s, probability).values())))
                if objects in s.objects:
                    found["areas"].setdefault(source, []).append(s.objects[objects].area)
        labels = [spatial.block_label(k) for k in spec.sizes]
        shape = data[name].shape[1:]
        out[name] = {**found, "wavelength_km": spatial.wavelengths_km(shape, spacing), "labels": labels,
                     "probability": probability, "lower": lower,
                     "block_km": np.array([spatial.block_extent_km(label, shape, spacing) for label in labels])}
    return out


def step_hours(store: str | Path) -> float | None:
    """The data's time step in hours (what one forecast lead is); None with fewer than two times."""
    times = load_split_times(store, "test")
    return time_step(times) / pd.Timedelta(hours=1) if len(times) > 1 else None


def make_figures(config: dict, store: str | Path, stats_path: str | Path, ensembles: dict[str, str | Path],
                 train_logs: dict[str, str | Path], out: dict[str, str | Path], metrics_csv: str | Path,
                 ranks_csv: str | Path | None = None, maps_nc: str | Path | None = None,
                 forecasts: dict[str, str | Path] | None = None, convergence_csv: str | Path | None = None,
                 replicate_ensembles: dict[str, str | Path] | None = None) -> None:
    """out: keys "histograms", "qq", "loss", "quantile_maps_<variable>" and "maps_<variable>" for each variable,
    and where configured "nu_sweep", "forecast_skill", "rank_histograms", "return_levels".
    ensembles: the first replicate of each model (and the truth); replicate_ensembles: the other
    replicates (MODEL.r1, ...), drawn as the spread around the first on the QQ plots."""
    stats = load_stats(stats_path)
    # the figures name models as the report does (models.NAME.label); "truth" keeps its key,
    # which the plots draw in their own style
    labels = {m: v for m, v in display_names(config, list(config["models"])).items()}
    name = lambda m: labels.get(m, m)  # noqa: E731
    frame = summary(artifacts.read_csv(metrics_csv))
    frame["model"] = frame["model"].map(name)
    forecasts = {name(m): p for m, p in (forecasts or {}).items()}
    variables = stats["variables"]
    data = test_fields(store)
    fields = {name(m): f for m, f in load_ensembles(ensembles, stats["channels"]).items()}
    truth = closed_form_marginals(config, stats)
    plots.tail_histograms(data, fields, variables, out["histograms"], closed_form=truth)
    others = load_ensembles(replicate_ensembles or {}, stats["channels"])
    replicates = {m: [fields[m]] + [e for run, e in others.items() if name(split_replicate(run)[0]) == m]
                  for m in fields if m != "truth"}
    plots.qq_plots(data, fields, variables, out["qq"], closed_form=truth, replicates=replicates)
    if "spatial" in out:
        runs = {m: replicates.get(m, [fields[m]]) for m in fields}
        plots.spatial_structure(spatial_curves(stats, data, runs, config["evaluation"]["spatial"]["block_sizes"]),
                                variables, out["spatial"], AREAL_PROBABILITY)
    families = {name(m): config["models"][m]["family"] for m in train_logs}
    plots.loss_curves({name(m): p for m, p in train_logs.items()}, families, out["loss"])
    lat, lon = np.array(stats["grid"]["latitude"]), np.array(stats["grid"]["longitude"])
    for v in stats["channels"]:
        plots.sample_maps(data, fields, v, variables[v], lat, lon, out[f"maps_{v}"],
                          members=config["report"]["map_members"], seed=derived_seed(config["seed"], "maps", v))
    with xr.open_dataset(maps_nc) as maps:
        maps = maps.load()
    maps = maps.assign_coords(source=[name(s) for s in maps.source.values])
    for v in stats["channels"]:
        plots.quantile_maps(maps, variables, out[f"quantile_maps_{v}"], variable=v)
    if "convergence" in out and convergence_csv is not None:
        table = artifacts.read_csv(convergence_csv)
        # in the config's model order: each model keeps the colour it has in the other figures
        order = {m: i for i, m in enumerate(config["models"])}
        table = table.iloc[table.model.map(order).fillna(len(order)).argsort(kind="stable")]
        table = table.assign(model=table.model.map(name))
        per_replicate = trend_rows(table[table.model != REFERENCE]).groupby(
            ["model", "replicate", "variable", "step"], as_index=False)["error"].mean()
        plots.convergence(tail_error(table), per_replicate, stats["channels"], out["convergence"],
                          forecasters=set(table[table.metric.isin(ALL_FORECAST_TAIL_SCORES)].model),
                          reference=reference_error(table), final=final_error(table),
                          whole_reference=reference_error(table, whole=True))
    if "nu_sweep" in out:
        points = {name(m): p for m, p in nu_sweep_points(config, nu_values(ensembles)).items()}
        plots.nu_sweep(frame, points, stats["channels"], SWEEP_METRICS, out["nu_sweep"],
                       {v: SWEEP_METRICS_LOWER for v in stats["channels"] if variables[v]["tails"] == "lower"})
    if forecasts:
        forecasters = list(forecasts)
        hours = step_hours(store)
        plots.forecast_skill(frame, forecasters, variables, out["forecast_skill"], hours)
        ranks = artifacts.read_csv(ranks_csv)
        ranks = ranks[ranks["replicate"].astype(str) == "0"] if "replicate" in ranks else ranks  # the first run
        ranks = ranks.assign(model=ranks.model.map(name))
        plots.rank_histograms(ranks, forecasters, stats["channels"], out["rank_histograms"], hours)
        sources = forecasters + (["truth"] if "truth" in set(frame.model) else [])
        plots.return_levels(frame, sources, variables, out["return_levels"])
