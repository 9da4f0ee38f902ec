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


def make_figures(config: dict, store: str | Path, stats_path: str | Path, ensembles: dict[str, str | Path],
                 train_logs: dict[str, str | Path], out: dict[str, str | Path]) -> None:
    """out: keys "histograms", "qq", "loss", and "maps_<variable>" for each variable."""
    stats = load_stats(stats_path)
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
    seeds = {"master": config["seed"], "synthetic data": config["seed"], "truth ensemble": derived_seed(config["seed"], "sample", "truth")}
    for m in config["models"]:
        for step in ("train", "sample", "evaluate"):
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


def metrics_table(frame: pd.DataFrame, model_order: list[str]) -> list[dict]:
    """Rows (variable, metric) with one cell per model, the best generative model flagged."""
    best = {(r.variable, r.metric): r.model for r in evaluate.best_models(frame).itertuples()}
    rows = []
    for (variable, metric), group in frame.groupby(["variable", "metric"], sort=False):
        by_model = {r.model: r for r in group.itertuples()}
        cells = []
        for model in model_order:
            r = by_model.get(model)
            if r is None:
                cells.append({"text": "", "ci": "", "best": False, "truth": model == "truth"})
                continue
            ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if pd.notna(r.ci_low) else ""
            cells.append({"text": _fmt(r.value), "ci": ci, "best": best.get((variable, metric)) == model,
                          "truth": model == "truth"})
        rows.append({"variable": variable, "metric": metric, "cells": cells})
    return rows


def heavy_vs_gaussian(frame: pd.DataFrame, config: dict) -> list[dict]:
    """For each family, each Student-t model against the Gaussian model(s) of that family on the
    tail metrics: which is closer to perfect, per variable."""
    out = []
    for family in ("edm", "flow"):
        members = [m for m, e in config["models"].items() if e["family"] == family]
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
    values = nu.values() if isinstance(nu, dict) else [nu]
    return all(isinstance(v, str) or math.isinf(float(v)) for v in values)


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


def render(config: dict, metrics_csv: str | Path, figures: dict[str, str | Path], provenance_json: str | Path,
           store: str | Path, stats_path: str | Path, ensembles: dict[str, str | Path],
           train_logs: dict[str, str | Path], out: str | Path) -> None:
    frame = pd.read_csv(metrics_csv)
    stats = load_stats(stats_path)
    prov = json.loads(Path(provenance_json).read_text())
    model_order = [m for m in config["models"]] + (["truth"] if "truth" in set(frame.model) else [])

    data = evaluate.test_fields(store)
    fields = _load_ensembles(ensembles, stats["channels"])
    truth = closed_form_marginals(config, stats)
    model_meta = {}
    for m, path in ensembles.items():
        ensemble = xr.open_zarr(path)
        attrs = ensemble.attrs
        log = pd.read_csv(train_logs[m]) if m in train_logs else None
        model_meta[m] = {"family": attrs.get("family", ""), "nu": attrs.get("nu", ""),
                         "steps": attrs.get("training_steps", ""),
                         "train_s": _fmt(float(log.elapsed_s.iloc[-1])) if log is not None else "",
                         "final_val_loss": _fmt(float(log.val_loss.dropna().iloc[-1])) if log is not None else "",
                         "nfe": attrs.get("network_evaluations_per_member", ""),
                         "members": ensemble.sizes["member"],
                         "sample_s": attrs.get("sampling_seconds", "")}
    summaries = []
    for v in stats["channels"]:
        rows = [{"source": "data (test)", **describe(data[v])}]
        if truth:
            rows.append({"source": "true distribution (closed form)", **describe_closed_form(truth[v])})
        rows += [{"source": m, **describe(fields[m][v])} for m in fields]
        summaries.append({"variable": v, "units": stats["variables"][v]["units"],
                          "rows": [{k: (_fmt(x) if not isinstance(x, str) else x) for k, x in r.items()} for r in rows]})

    env = jinja2.Environment(loader=jinja2.PackageLoader("htweather", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    page = env.get_template("report.html.j2").render(
        title="Heavy-tailed weather generation: report",
        created=prov["created"], commit=prov.get("git_commit"), dirty=prov.get("git_dirty"),
        config=config, stats=stats, models=model_order, model_meta=model_meta,
        table=metrics_table(frame, model_order), comparisons=heavy_vs_gaussian(frame, config),
        summaries=summaries, figures={k: _image(p) for k, p in figures.items()},
        figure_keys=sorted(figures), prov=prov,
        config_yaml=yaml.safe_dump(config, sort_keys=False),
    )
    with atomic_path(out) as tmp:
        tmp.write_text(page)
