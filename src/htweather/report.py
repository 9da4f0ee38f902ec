"""Report: figures, provenance and the self-contained HTML page (results/report.html)."""

from __future__ import annotations

import base64
import datetime as dt
import glob
import json
import math
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import xarray as xr
import yaml
from scipy import stats as sstats

from . import evaluate, metrics, plots, synthetic
from .ingest import load_stats
from .runtime import atomic_path, derived_seed

PACKAGES = ["htweather", "torch", "numpy", "scipy", "pandas", "xarray", "dask", "zarr", "netCDF4",
            "properscoring", "numba", "matplotlib", "snakemake", "jinja2", "jsonschema"]

TAIL_METRICS = ["tail_ks", "exceedance_ratio_p99", "exceedance_ratio_p999"]


def closed_form_marginals(config: dict, stats: dict) -> dict | None:
    if config["data"]["source"] != "synthetic":
        return None
    spec = config["data"]["synthetic"]
    return {v: synthetic.marginal(spec, v, stats["variables"][v]["units"]) for v in stats["channels"]}


def _load_ensembles(paths: dict[str, str | Path], variables: list[str]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name, path in paths.items():
        ds = xr.open_zarr(path)
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
                if e["family"] == family and _plain(e) and _is_gaussian(e["nu"])]
    return {m: {v: float(x) for v, x in nu_values[m].items()} for m in gaussian + swept if m in nu_values}


def nu_values(paths: dict[str, str | Path]) -> dict[str, dict]:
    """{model: {variable: nu}} as each ensemble or forecast store records it (auto resolved)."""
    out = {}
    for model, path in paths.items():
        attrs = xr.open_zarr(path).attrs
        if "nu_by_variable" in attrs:
            out[model] = json.loads(attrs["nu_by_variable"])
    return out


SWEEP_METRICS = ["tail_ks", "exceedance_ratio_p999", "quantile_rel_error_0.999"]


def make_figures(config: dict, store: str | Path, stats_path: str | Path, ensembles: dict[str, str | Path],
                 train_logs: dict[str, str | Path], out: dict[str, str | Path], metrics_csv: str | Path,
                 ranks_csv: str | Path | None = None, maps_nc: str | Path | None = None,
                 forecasts: dict[str, str | Path] | None = None) -> None:
    """out: keys "histograms", "qq", "loss", "quantile_maps", "maps_<variable>" for each variable,
    and where configured "nu_sweep", "forecast_skill", "rank_histograms", "return_levels"."""
    stats = load_stats(stats_path)
    frame = pd.read_csv(metrics_csv)
    forecasts = forecasts or {}
    variables = stats["variables"]
    data = evaluate.test_fields(store)
    fields = _load_ensembles(ensembles, stats["channels"])
    truth = closed_form_marginals(config, stats)
    plots.tail_histograms(data, fields, variables, out["histograms"], closed_form=truth)
    plots.qq_plots(data, fields, variables, out["qq"], closed_form=truth)
    families = {m: config["models"][m]["family"] for m in train_logs}
    plots.loss_curves(train_logs, families, out["loss"])
    lat, lon = np.array(stats["grid"]["latitude"]), np.array(stats["grid"]["longitude"])
    for v in stats["channels"]:
        plots.sample_maps(data, fields, v, variables[v], lat, lon, out[f"maps_{v}"],
                          members=config["report"]["map_members"])
    with xr.open_dataset(maps_nc) as maps:
        plots.quantile_maps(maps.load(), variables, out["quantile_maps"])
    if "nu_sweep" in out:
        points = nu_sweep_points(config, nu_values(ensembles))
        plots.nu_sweep(frame, points, stats["channels"], SWEEP_METRICS, out["nu_sweep"])
    if forecasts:
        forecasters = list(forecasts)
        plots.forecast_skill(frame, forecasters, variables, out["forecast_skill"])
        plots.rank_histograms(pd.read_csv(ranks_csv), forecasters, stats["channels"], out["rank_histograms"])
        sources = forecasters + (["truth"] if "truth" in set(frame.model) else [])
        plots.return_levels(frame, sources, variables, out["return_levels"])


def _git(workdir: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(workdir), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(config: dict, workflow_dir: str | Path, benchmarks_dir: str | Path) -> dict:
    """What produced these results: code version, config, seeds, packages, platform, timings."""
    workflow_dir = Path(workflow_dir)
    commit = _git(workflow_dir, "rev-parse", "HEAD")
    status = _git(workflow_dir, "status", "--porcelain", "--untracked-files=no")
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    seeds = {"master": config["seed"], "synthetic data": config["seed"],
             "truth ensemble": derived_seed(config["seed"], "sample", "truth"),
             "truth sequences": derived_seed(config["seed"], "sample", "truth_sequences")}
    for m, entry in config["models"].items():
        steps = ("train", "forecast", "verify") if entry["condition_steps"] else ("train", "sample", "evaluate")
        for step in steps:
            seeds[f"{step} {m}"] = derived_seed(config["seed"], step, m)
    timings = []
    for path in sorted(glob.glob(str(Path(benchmarks_dir) / "*.tsv"))):
        row = pd.read_csv(path, sep="\t").iloc[0]
        timings.append({"job": Path(path).stem, "seconds": float(row["s"]),
                        "max_rss_mb": float(row["max_rss"]) if "max_rss" in row and pd.notna(row["max_rss"]) else None})
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "git_dirty": bool(status) if status is not None else None,
        "config": config, "seeds": seeds, "packages": versions,
        "python": sys.version.split()[0], "platform": platform.platform(),
        **_torch_device(),
        "crps_numba_fast_path": metrics.crps_fast_path(),
        "timings": timings,
    }


def _torch_device() -> dict:
    try:
        import torch
    except ImportError:  # the report's environment need not have torch
        return {"torch_cuda": None, "gpu": None}
    cuda = torch.cuda.is_available()
    return {"torch_cuda": cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None}


def write_provenance(record: dict, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))


def _image(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.2e}"


def metrics_table(frame: pd.DataFrame, model_order: list[str], by_lead: bool = False) -> list[dict]:
    """Rows (variable, metric[, lead]) with one cell per model, the best generative model flagged."""
    if frame.empty:
        return []
    keys = ["variable", "metric"] + (["lead"] if by_lead else [])
    best = {tuple(r[:-1]): r[-1] for r in evaluate.best_models(frame, tuple(keys)).itertuples(index=False)}
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        variable, metric = key[0], key[1]
        by_model = {r.model: r for r in group.itertuples()}
        cells = []
        for model in model_order:
            r = by_model.get(model)
            if r is None:
                cells.append({"text": "", "ci": "", "best": False, "truth": model == "truth"})
                continue
            ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if pd.notna(r.ci_low) else ""
            cells.append({"text": _fmt(r.value), "ci": ci, "best": best.get(key) == model,
                          "truth": model == "truth"})
        rows.append({"variable": variable, "metric": metric, "lead": key[2] if by_lead else "", "cells": cells})
    return rows


def heavy_vs_gaussian(frame: pd.DataFrame, config: dict) -> list[dict]:
    """For each family, each Student-t model against the Gaussian model(s) of that family on the
    tail metrics: which is closer to perfect, per variable."""
    out = []
    for family in ("edm", "flow"):
        members = [m for m, e in config["models"].items() if e["family"] == family and _plain(e)]
        gaussian = [m for m in members if _is_gaussian(config["models"][m]["nu"])]
        heavy = [m for m in members if m not in gaussian]
        for g in gaussian:
            for h in heavy:
                for variable in frame.variable.unique():
                    sub = frame[frame.variable == variable]
                    rows = []
                    for metric in TAIL_METRICS + _quantile_metrics_in_order(sub.metric.unique()):
                        value = {m: sub[(sub.model == m) & (sub.metric == metric)].value for m in (g, h, "truth")}
                        if value[g].empty or value[h].empty:
                            continue
                        dg = metrics.distance_from_perfect(metric, float(value[g].iloc[0]))
                        dh = metrics.distance_from_perfect(metric, float(value[h].iloc[0]))
                        rows.append({"metric": metric, "gaussian": _fmt(float(value[g].iloc[0])),
                                     "heavy": _fmt(float(value[h].iloc[0])),
                                     "truth": _fmt(float(value["truth"].iloc[0])) if not value["truth"].empty else "",
                                     "winner": h if dh < dg else (g if dg < dh else "tie")})
                    wins = sum(r["winner"] == h for r in rows)
                    out.append({"gaussian": g, "heavy": h, "variable": variable, "rows": rows,
                                "summary": f"{h} closer to the data than {g} on {wins} of {len(rows)} tail metrics"})
    return out


def _quantile_metrics_in_order(names) -> list[str]:
    """Upper-tail quantile errors outward (0.99, 0.999, ...), then lower-tail ones outward."""
    quantile = [n for n in names if n.startswith("quantile_rel_error_")]
    level = {n: float(n.rsplit("_", 1)[1]) for n in quantile}
    upper = sorted((n for n in quantile if level[n] > 0.5), key=lambda n: level[n])
    lower = sorted((n for n in quantile if level[n] < 0.5), key=lambda n: -level[n])
    return upper + lower


def _is_gaussian(nu) -> bool:
    """Gaussian noise for every variable as configured ("auto" counts as Student-t: it is
    resolved per variable from the data)."""
    values = nu.values() if isinstance(nu, dict) else [nu]
    return all(v in ("inf", "infinity", "gaussian") if isinstance(v, str) else math.isinf(float(v)) for v in values)


def _plain(entry: dict) -> bool:
    """An unconditional model with the standard data and preconditioning (no INC, PCP)."""
    return entry["condition_steps"] == 0 and entry["normalisation"] == "standard" and entry["sigma_data"] == 1.0


def describe(values: np.ndarray) -> dict:
    v = plots.finite(values)
    q = np.quantile(v, [0.99, 0.999, 0.9999])
    return {"mean": v.mean(), "std": v.std(), "skewness": sstats.skew(v), "excess kurtosis": sstats.kurtosis(v),
            "q0.99": q[0], "q0.999": q[1], "q0.9999": q[2], "max": v.max()}


def describe_closed_form(dist) -> dict:
    if isinstance(dist, synthetic.ZeroInflatedGPD):
        m = dist.moment_summary()
        mean, std, skew, kurt = m["mean"], math.sqrt(m["var"]), m["skewness"], m["kurtosis"] - 3
    else:
        mean, var, skew, kurt = (float(x) for x in dist.stats(moments="mvsk"))
        std = math.sqrt(var)
    q = dist.ppf([0.99, 0.999, 0.9999])
    return {"mean": mean, "std": std, "skewness": skew, "excess kurtosis": kurt,
            "q0.99": q[0], "q0.999": q[1], "q0.9999": q[2], "max": float("nan")}


FORECAST_METRICS = ["crps", "fair_crps", "spread_skill", "rmse", "spread", "rank_flatness"]


def truth_checks(frame: pd.DataFrame, config: dict, stats: dict, truth: dict | None) -> list[dict]:
    """Synthetic data only: the data's estimates (tail quantiles, return levels) with their 95 %
    intervals beside the true values (closed-form quantiles; return levels of the true process'
    long simulation), and whether each interval covers the truth."""
    if truth is None:
        return []
    rows = []
    data = frame[frame.model == "data"]
    for r in data.itertuples():
        if r.metric.startswith("quantile_"):
            p = float(r.metric.split("_")[1])
            true, kind = float(truth[r.variable].ppf(p)), "closed form"
        elif r.metric.startswith(("return_level_", "empirical_return_level_")):
            period = r.metric.rsplit("_", 1)[1]
            match = frame[(frame.model == "truth") & (frame.variable == r.variable)
                          & (frame.metric == f"empirical_return_level_{period}")]
            if match.empty:
                continue
            true, kind = float(match.value.iloc[0]), "true process, long simulation (empirical)"
        else:
            continue
        covered = bool(r.ci_low <= true <= r.ci_high) if pd.notna(r.ci_low) else None
        rows.append({"variable": r.variable, "statistic": r.metric, "estimate": _fmt(r.value),
                     "ci": f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]", "true": _fmt(true), "kind": kind,
                     "covered": "yes" if covered else ("no" if covered is not None else "")})
    return rows


def _coverage_summary(checks: list[dict]) -> str:
    """"n of m covered" per kind of statistic, for the caption."""
    groups = {"tail quantiles": [c for c in checks if c["statistic"].startswith("quantile_")],
              "GEV return levels": [c for c in checks if c["statistic"].startswith("return_level_")],
              "empirical return levels": [c for c in checks if c["statistic"].startswith("empirical_")]}
    parts = [f"{sum(c['covered'] == 'yes' for c in rows)} of {len(rows)} {name}"
             for name, rows in groups.items() if rows]
    return ("Covered: " + ", ".join(parts) + ".") if parts else ""


def tail_index_rows(attrs: dict[str, dict]) -> list[dict]:
    """What nu: auto chose: per model and variable, the Hill estimate, the Gaussian reference and nu."""
    rows = []
    for model, a in attrs.items():
        for variable, t in json.loads(a.get("tail_index", "{}") or "{}").items():
            rows.append({"model": model, "variable": variable, "alpha": _fmt(t["alpha"]),
                         "alpha_gaussian": _fmt(t["alpha_gaussian"]), "k": t["k"], "n": t["n"],
                         "heavy": "yes" if t["heavy"] else "no",
                         "nu": "inf" if math.isinf(t["nu"]) else _fmt(t["nu"])})
    return rows


def render(config: dict, metrics_csv: str | Path, figures: dict[str, str | Path], provenance_json: str | Path,
           store: str | Path, stats_path: str | Path, ensembles: dict[str, str | Path],
           train_logs: dict[str, str | Path], out: str | Path, forecasts: dict[str, str | Path] | None = None) -> None:
    forecasts = forecasts or {}
    frame = pd.read_csv(metrics_csv)
    stats = load_stats(stats_path)
    prov = json.loads(Path(provenance_json).read_text())
    generators = [m for m in config["models"] if m not in forecasts]
    model_order = generators + (["truth"] if "truth" in ensembles else [])
    forecasters = list(forecasts)

    data = evaluate.test_fields(store)
    fields = _load_ensembles(ensembles, stats["channels"])
    truth = closed_form_marginals(config, stats)
    model_meta, attrs_by_model = {}, {}
    for m, path in {**ensembles, **forecasts}.items():
        ds = xr.open_zarr(path)
        attrs = attrs_by_model[m] = dict(ds.attrs)
        log = pd.read_csv(train_logs[m]) if m in train_logs else None
        entry = config["models"].get(m, {})
        nu = attrs.get("nu_by_variable")
        model_meta[m] = {"family": attrs.get("family", ""),
                         "nu": ", ".join(str(_fmt(x) if not isinstance(x, str) else x)
                                         for x in json.loads(nu).values()) if nu else "",
                         "variant": _variant(entry),
                         "steps": attrs.get("training_steps", ""),
                         "train_s": _fmt(float(log.elapsed_s.iloc[-1])) if log is not None else "",
                         "final_val_loss": _fmt(float(log.val_loss.dropna().iloc[-1])) if log is not None else "",
                         "nfe": attrs.get("network_evaluations_per_member",
                                          attrs.get("network_evaluations_per_field", "")),
                         "members": ds.sizes.get("member", ""),
                         "sample_s": attrs.get("sampling_seconds", "")}
    summaries = []
    for v in stats["channels"]:
        rows = [{"source": "data (test)", **describe(data[v])}]
        if truth:
            rows.append({"source": "true distribution (closed form)", **describe_closed_form(truth[v])})
        rows += [{"source": m, **describe(fields[m][v])} for m in fields]
        summaries.append({"variable": v, "units": stats["variables"][v]["units"],
                          "rows": [{k: (_fmt(x) if not isinstance(x, str) else x) for k, x in r.items()} for r in rows]})

    unconditional = frame[frame.model.isin(model_order) & frame["lead"].isna()]
    forecast_rows = frame[frame.model.isin(forecasters) & frame.metric.isin(
        FORECAST_METRICS + [m for m in frame.metric.unique() if m.startswith("brier_")])]
    level_sources = ["data"] + (["truth"] if "truth" in set(frame.model) else []) + forecasters
    levels = frame[frame.metric.str.startswith(("return_level_", "empirical_return_level_", "gev_shape",
                                                "block_maxima_at_bound")) & frame.model.isin(level_sources)]
    sweep = nu_sweep_points(config, {m: json.loads(a["nu_by_variable"]) for m, a in attrs_by_model.items()
                                     if "nu_by_variable" in a})
    sweep_frame = frame[frame.model.isin(list(sweep)) & frame.metric.isin(SWEEP_METRICS)]

    checks = truth_checks(frame, config, stats, truth)
    env = jinja2.Environment(loader=jinja2.PackageLoader("htweather", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    page = env.get_template("report.html.j2").render(
        title="Heavy-tailed weather generation: report",
        created=prov["created"], commit=prov.get("git_commit"), dirty=prov.get("git_dirty"),
        config=config, stats=stats, models=model_order, forecasters=forecasters,
        all_models=list(config["models"]) + (["truth"] if "truth" in ensembles else []), model_meta=model_meta,
        table=metrics_table(unconditional, model_order), comparisons=heavy_vs_gaussian(unconditional, config),
        forecast_table=metrics_table(forecast_rows, forecasters, by_lead=True),
        level_table=metrics_table(levels, level_sources), level_sources=level_sources,
        truth_checks=checks, truth_summary=_coverage_summary(checks),
        tail_index=tail_index_rows(attrs_by_model), sweep=sweep,
        sweep_table=metrics_table(sweep_frame, list(sweep)),
        summaries=summaries, figures={k: _image(p) for k, p in figures.items()},
        figure_keys=sorted(figures), prov=prov,
        config_yaml=yaml.safe_dump(config, sort_keys=False),
    )
    with atomic_path(out) as tmp:
        tmp.write_text(page)


def _variant(entry: dict) -> str:
    """The entry's departures from a plain unconditional model, in words."""
    parts = []
    if entry.get("normalisation") == "inc":
        parts.append("INC (inverse-CDF normalisation)")
    if entry.get("sigma_data") == "per_channel":
        parts.append("PCP (per-channel sigma_data)")
    if entry.get("condition_steps"):
        parts.append(f"forecast from {entry['condition_steps']} previous state(s)")
    return ", ".join(parts)
