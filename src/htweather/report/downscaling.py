"""The downscaling report (results/report.html of a downscaling run): the downscaling question
answered first, in words, then the distances from the paired truth, the comparisons with their
intervals, the fields as pictures, the rank histograms, the training and the provenance."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml

from .. import artifacts
from ..config import display_names, is_gaussian, replicates
from ..data.coarsening import Coarsening
from ..data.store import grid_coords, load_split_times, load_stats, test_fields
from ..evaluation.convergence import STATES, STILL_FALLING
from ..evaluation.downscaling import IMPLAUSIBLE_FACTOR, RANK_TOLERANCE
from ..evaluation.tables import summary
from ..runtime import atomic_path
from . import plots
from .page import _image, aa_rates_rows, metrics_table
from .text import fmt

# what the first table shows: the paired scores, the local extremes and the consistency checks
TRUTH_METRICS = ["crps", "twcrps_p99", "twcrps_p999", "fields_beyond_training_max", "cell_quantile_rel_error_0.99",
                 "cell_quantile_rel_error_0.999", "quantile_rel_error_0.999", "field_max_return_level_rel_error_100",
                 "dry_fraction_error", "fss_p99_5x5", "sal_location", "psd_log_error",
                 "rank_flatness", "spread_skill", "block_mean_rel_error"]
HEADLINE_SCORES = ["twcrps_p99", "twcrps_p999", "crps"]
BASELINE_NAMES = {"interpolation": "interpolation", "quantile_mapping": "interpolation + quantile mapping"}


# --- figures ---------------------------------------------------------------------------------

def fields_figure(config: dict, store: str | Path, stats: dict, paths: dict[str, str | Path], variable: str,
                  names: dict[str, str], out: str | Path, members: int = 3) -> None:
    """The test time whose true field holds the largest value among the downscaled times: its
    coarse input (block means, drawn over their blocks), the truth, and `members` members of
    each model (one for a deterministic baseline), on one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = {run: artifacts.open_zarr(p) for run, p in paths.items()}
    first = next(iter(stores.values()))
    position = {t: i for i, t in enumerate(load_split_times(store, "test").values)}
    truth_all = test_fields(store)[variable][[position[t] for t in first.init_time.values]]
    t = plots.most_extreme(truth_all, "upper")
    truth = truth_all[t]
    coarsening = Coarsening(stats, int(config["downscaling"]["factor"]))
    coarse = coarsening.spread(coarsening.coarsen(truth))
    coords = grid_coords(stats)
    lat, lon = np.asarray(coords["latitude"]), np.asarray(coords["longitude"])
    if isinstance(coords["latitude"], tuple):
        lat, lon = np.asarray(coords["latitude"][1]), np.asarray(coords["longitude"][1])
    vmax = float(np.nanmax(truth)) or 1.0
    style = {"cmap": "Blues", "vmin": 0.0, "vmax": vmax}
    rows = 1 + len(stores)
    fig, axes = plt.subplots(rows, members, figsize=(2.3 * members + 1.0, 2.3 * rows + 0.4), squeeze=False,
                             layout="constrained")
    units = stats["variables"][variable]["units"]
    for j, (field, title) in enumerate([(coarse, f"coarse input ({coarsening.factor}×{coarsening.factor} means)"),
                                        (truth, "truth")]):
        image = plots.draw_field(axes[0][j], field, lat, lon, **style)
        axes[0][j].set_title(title, fontsize=8)
    for j in range(2, members):
        axes[0][j].axis("off")
    for i, (run, ds) in enumerate(stores.items(), start=1):
        values = ds[variable].isel(init_time=t, lead=0).values
        for j in range(members):
            ax = axes[i][j]
            if j >= values.shape[0]:
                ax.axis("off")
                continue
            plots.draw_field(ax, values[j], lat, lon, **style)
            ax.set_title(f"{names.get(run, run)}\n" + ("deterministic" if values.shape[0] == 1 else f"member {j + 1}")
                         + f", max {np.nanmax(values[j]):.3g}", fontsize=8)
    for row in axes:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(image, ax=axes, shrink=min(0.9, 3.0 / rows), label=f"{variable} [{units}]")
    fig.suptitle(f"{variable} at {pd.Timestamp(first.init_time.values[t]):%Y-%m-%d %H:%M} (test), "
                 f"true maximum {vmax:.3g} {units}", fontsize=10)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def make_figures(config: dict, store: str | Path, stats_path: str | Path, paths: dict[str, str | Path],
                 ranks_csv: str | Path, train_logs: dict[str, str | Path], outs: dict) -> None:
    stats = load_stats(stats_path)
    names = {**display_names(config, [r for r in paths if r in config["models"]]), **BASELINE_NAMES}
    for variable in stats["channels"]:
        fields_figure(config, store, stats, paths, variable, names, outs["fields"][variable],
                      members=config["report"]["map_members"])
    ranks = artifacts.read_csv(ranks_csv)
    ensembles = [r for r in paths if r in config["models"]]
    plots.rank_histograms(ranks[ranks.replicate.astype(str) == "0"] if "replicate" in ranks else ranks,
                          ensembles, list(stats["channels"]), outs["ranks"])
    plots.loss_curves(train_logs, {m: config["models"][m]["family"] for m in train_logs}, outs["loss"])


# --- the page --------------------------------------------------------------------------------

METRIC_WORDS = {"twcrps_p99": "twCRPS above the data's p99", "twcrps_p999": "twCRPS above the data's p99.9",
                "crps": "CRPS"}


def _sentence(row, names: dict[str, str], units: str) -> str:
    """One comparison in words: which is closer to the truth, or why it cannot be told."""
    if row.verdict == "better":
        words = "closer to the truth"
    elif row.verdict == "worse":
        words = "farther from the truth"
    elif row.verdict == "indistinguishable":
        words = f"no different by more than the relevant difference (±{fmt(row.relevant)} {units})"
    elif np.isfinite(row.ci_low) and (row.ci_low > 0 or row.ci_high < 0):
        words = "not told apart: the interval leaves out 0, but the adjusted p-value does not pass"
    else:
        words = (f"not told apart: the interval's half-width {fmt(row.resolution)} is wider than the relevant "
                 f"difference {fmt(row.relevant)}")
    return (f"{METRIC_WORDS.get(row.metric, row.metric)}: {names.get(row.model, row.model)} against "
            f"{names.get(row.baseline, row.baseline)}, {words}; difference {fmt(row.difference)} "
            f"[{fmt(row.ci_low)}, {fmt(row.ci_high)}] {units} (adjusted p {fmt(row.p_adjusted, 2)}, {row.replicates} runs)")


def answer(config: dict, frame: pd.DataFrame, comparisons: pd.DataFrame, stats: dict, names: dict[str, str],
           baselines: list[str]) -> list[dict]:
    """Per variable: how far each model is from the truth, whether Student-t noise does better
    than its Gaussian twin on the extremes, and how the models compare with quantile mapping."""
    out = []
    models = list(config["models"])
    for variable in stats["channels"]:
        units = stats["variables"][variable]["units"]
        rows = frame[(frame.variable == variable)]

        def value(model, metric):
            hit = rows[(rows.model == model) & (rows.metric == metric)]
            return float(hit.value.iloc[0]) if len(hit) else float("nan")

        scored = {m: value(m, "twcrps_p99") for m in models + baselines}
        ranked = sorted((m for m in scored if np.isfinite(scored[m])), key=scored.get)
        best_model = next((m for m in ranked if m in models), None)
        distances = [{"name": names.get(m, m), "twcrps": fmt(value(m, "twcrps_p99")),
                      "q999": fmt(value(m, "cell_quantile_rel_error_0.999")),
                      "dry": fmt(value(m, "dry_fraction_error")),
                      "flatness": fmt(value(m, "rank_flatness")),
                      "implausible": fmt(value(m, "fields_beyond_training_max")),
                      "flat": (value(m, "rank_flatness") <= RANK_TOLERANCE) if m in models else None}
                     for m in ranked]
        pairs = comparisons[(comparisons.variable == variable) & comparisons.metric.isin(HEADLINE_SCORES)]
        twins = pairs[~pairs.baseline.isin(baselines)]
        versus = pairs[pairs.baseline.isin(baselines) & (pairs.metric == "twcrps_p99")]
        best_vs_qm = versus[(versus.model == best_model) & (versus.baseline == "quantile_mapping")]
        outliers = [f"{names.get(m, m)} ({100 * value(m, 'fields_beyond_training_max'):.2g} % of its fields)"
                    for m in models if value(m, "fields_beyond_training_max") > 0]
        out.append({
            "variable": variable, "units": units, "distances": distances, "outliers": outliers,
            "best": names.get(best_model, best_model) if best_model else None,
            "best_flat": best_model is not None and value(best_model, "rank_flatness") <= RANK_TOLERANCE,
            "best_vs_qm": [_sentence(r, names, units) for r in best_vs_qm.itertuples()],
            "student_t": [_sentence(r, names, units) for r in twins.itertuples()],
            "versus": [_sentence(r, names, units) for r in versus.itertuples()],
        })
    return out


def downscaled_times(config: dict, stats: dict) -> int:
    n_test = int(stats["splits"]["test"]["n_times"])
    chosen = config["downscaling"]["times"]
    return n_test if chosen == "all" else min(int(chosen), n_test)


def convergence_rows(tail_error_csv: str | Path | None, names: dict[str, str]) -> list[dict] | None:
    """Per model and variable, the convergence check's state (evaluation.convergence: the mean
    twCRPS above p99 and p999 of the fine fields from the last snapshot and from the final
    weights, same coarse fields and noise); None where no snapshot was kept."""
    if tail_error_csv is None:
        return None
    table = artifacts.read_csv(tail_error_csv)
    return [{"model": names.get(r.model, r.model), "variable": r.variable, "state": r.state,
             "not_converged": r.state == STATES[0], "step_before": r.step_before, "step": r.step,
             "before": fmt(r.error_before), "after": fmt(r.error)} for r in table.itertuples()]


def render(config: dict, metrics_csv: str | Path, comparisons_csv: str | Path, figures: dict[str, str | Path],
           provenance_json: str | Path, stats_path: str | Path, baselines: list[str], out: str | Path,
           tail_error_csv: str | Path | None = None, aa_rates_csv: str | Path | None = None) -> None:
    """The downscaling report; `aa_rates_csv`: the A/A check's rates (aa_check), where it ran."""
    tidy = artifacts.read_csv(metrics_csv)
    frame = summary(tidy)
    comparisons = artifacts.read_csv(comparisons_csv)
    stats = load_stats(stats_path)
    models = list(config["models"])
    names = {**display_names(config, models), **BASELINE_NAMES}
    order = models + baselines
    shown = frame[frame.metric.isin(TRUTH_METRICS)].copy()
    shown["metric"] = pd.Categorical(shown.metric, TRUTH_METRICS, ordered=True)
    shown = shown.sort_values(["variable", "metric"])
    shown["metric"] = shown.metric.astype(str)
    all_rows = frame[~frame.metric.isin(TRUTH_METRICS)]
    env = jinja2.Environment(loader=jinja2.PackageLoader("htweather.report", "templates"), autoescape=True)
    page = env.get_template("downscaling.html.j2").render(
        title="Downscaling report", config=config, names=names, order=order,
        order_names=[names.get(m, m) for m in order],
        factor=config["downscaling"]["factor"], members=config["downscaling"]["members"],
        times=downscaled_times(config, stats),
        answers=answer(config, frame, comparisons, stats, names, baselines),
        convergence=convergence_rows(tail_error_csv, names), still_falling=int(STILL_FALLING * 100),
        tolerance=RANK_TOLERANCE, implausible=f"{IMPLAUSIBLE_FACTOR:g}", trainings={m: replicates(config, m) for m in models},
        gaussian={m: is_gaussian(config["models"][m]["nu"]) for m in models},
        truth_table=metrics_table(shown, order), other_table=metrics_table(all_rows, order),
        comparisons=comparisons.to_dict("records"),
        aa_rates=(aa_rates_rows(artifacts.read_csv(aa_rates_csv), config["evaluation"]["confidence"])
                  if aa_rates_csv else None),
        confidence=config["evaluation"]["confidence"], steps=config["training"]["steps"],
        figures={k: _image(p) for k, p in figures.items()},
        prov=json.loads(Path(provenance_json).read_text()),
        config_yaml=yaml.safe_dump(config, sort_keys=False))
    with atomic_path(out) as tmp:
        tmp.write_text(page)
