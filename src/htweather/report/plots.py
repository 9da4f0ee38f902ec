"""Report figures. Each function takes arrays in physical units and writes one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colors  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import artifacts
from ..evaluation.convergence import near_limit  # noqa: E402
from .text import lead_hours, percentile  # noqa: E402

DATA_STYLE = {"color": "0.55", "alpha": 0.45}
TRUTH_COLOR = "black"


def model_colors(names: list[str]) -> dict[str, str]:
    palette = plt.get_cmap("tab10").colors
    models = [n for n in names if n not in ("data", "truth")]
    colors = {n: palette[i % len(palette)] for i, n in enumerate(models)}
    colors.update({"data": DATA_STYLE["color"], "truth": TRUTH_COLOR})
    return colors


def finite(values: np.ndarray) -> np.ndarray:
    """The values at real cells, flattened (masked cells are NaN in data and ensembles)."""
    flat = np.asarray(values).ravel()
    return flat[np.isfinite(flat)]


def _label(name: str, info: dict) -> str:
    units = info.get("units", "")
    return f"{name} [{units}]" if units else name


def tail_histograms(data: dict[str, np.ndarray], ensembles: dict[str, dict[str, np.ndarray]],
                    variables: dict, out: str | Path, closed_form: dict | None = None, bins: int = 80) -> None:
    """Log-density histograms per variable: test data (grey), every ensemble (lines) and, where
    known, the closed-form true density (black dashed)."""
    names = list(variables)
    colors = model_colors(list(ensembles))
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        d = finite(data[name])
        gen = {model: finite(e[name]) for model, e in ensembles.items()}
        # the range of the data, widened to show generated values up to one data range beyond it
        span = d.max() - d.min()
        lo = max(d.min() - span, min([d.min()] + [g.min() for g in gen.values()]))
        hi = min(d.max() + span, max([d.max()] + [g.max() for g in gen.values()]))
        edges = np.linspace(lo, hi, bins + 1)
        one_count = 1.0 / (d.size * (edges[1] - edges[0]))  # density of a single data value in a bin
        ax.hist(d, bins=edges, density=True, label="data (test)", **DATA_STYLE)
        for model, values in gen.items():
            ls = ":" if model == "truth" else "-"
            ax.hist(values, bins=edges, density=True, histtype="step", lw=1.4, ls=ls,
                    color=colors[model], label=legend_name(model))
        if closed_form and name in closed_form:
            x = np.linspace(lo, hi, 600)
            x = x[x > 0] if variables[name].get("tails") == "upper" else x
            ax.plot(x, closed_form[name].pdf(x), "--", color=TRUTH_COLOR, lw=1.0, label="true density")
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.3 * one_count)
        ax.set_xlabel(_label(name, variables[name]))
        ax.set_ylabel("density")
        ax.set_title(name)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def legend_name(source: str) -> str:
    """The name a figure gives a source: the true process's sample is keyed "truth"."""
    return "true process" if source == "truth" else source


def qq_probabilities(tails: str, top: float = 0.9999) -> np.ndarray:
    upper = 1 - np.logspace(np.log10(0.5), np.log10(1 - top), 60)
    if tails == "both":
        return np.concatenate([np.sort(1 - upper), upper])
    if tails == "lower":
        return np.sort(1 - upper)
    return upper


def qq_plots(data: dict[str, np.ndarray], ensembles: dict[str, dict[str, np.ndarray]], variables: dict,
             out: str | Path, closed_form: dict | None = None, top: float = 0.9999,
             replicates: dict[str, list[dict[str, np.ndarray]]] | None = None) -> None:
    """Quantiles of each ensemble against those of the test data, up to the `top` quantile
    (and down to 1 - top for two-tailed variables); the 1:1 line is perfect. `replicates`:
    {model: every replicate's ensemble}; a shaded band spans their quantiles (lowest to highest),
    the spread between training runs."""
    replicates = replicates or {}
    names = list(variables)
    colors = model_colors(list(ensembles))
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        probs = qq_probabilities(variables[name].get("tails", "upper"), top)
        qd = np.quantile(finite(data[name]), probs)
        lines = [qd]  # the axis is set by the lines: one replicate far off would squash them all
        for model, fields in ensembles.items():
            ls = ":" if model == "truth" else "-"
            runs = replicates.get(model, [])
            label = f"{model} ({len(runs)} replicates)" if len(runs) > 1 else legend_name(model)
            lines.append(np.quantile(finite(fields[name]), probs))
            ax.plot(qd, lines[-1], ls, color=colors[model], lw=1.4, label=label)
            if len(runs) > 1:
                q = np.stack([np.quantile(finite(run[name]), probs) for run in runs])
                ax.fill_between(qd, q.min(axis=0), q.max(axis=0), color=colors[model], alpha=0.18, lw=0)
        if closed_form and name in closed_form:
            ax.plot(qd, closed_form[name].ppf(probs), "--", color=TRUTH_COLOR, lw=1.0, label="true quantiles")
        span = [qd.min(), qd.max()]
        ax.plot(span, span, color="0.6", lw=0.8, zorder=0)
        low, high = min(v.min() for v in lines), max(v.max() for v in lines)
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        ax.set_xlabel(f"data quantile, {_label(name, variables[name])}")
        ax.set_ylabel("generated quantile")
        ax.set_title(f"{name} (to p = {top})")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw_field(ax, field: np.ndarray, lat: np.ndarray, lon: np.ndarray, **style):
    """One field on its grid, axes in degrees: an image on a regular lat/lon grid (1-D
    coordinates, rows north to south), cells at their own 2-D latitude and longitude on a
    projected or curvilinear grid."""
    lat, lon = np.asarray(lat), np.asarray(lon)
    if lat.ndim == 2:
        return ax.pcolormesh(lon, lat, field, shading="auto", **style)
    return ax.imshow(field, origin="upper", extent=[lon.min(), lon.max(), lat.min(), lat.max()], aspect="auto",
                     **style)


def degree_ticks(ax, left: bool, bottom: bool) -> None:
    """Latitude and longitude ticks and labels (degrees) on the outer panels of a grid of maps only."""
    ax.tick_params(labelsize=7, length=2, labelleft=left, labelbottom=bottom)
    ax.locator_params(nbins=3)
    if left:
        ax.set_ylabel("lat [°N]", fontsize=8)
    if bottom:
        ax.set_xlabel("lon [°E]", fontsize=8)


def most_extreme(fields: np.ndarray, tails: str) -> int:
    """The index of the field holding the most extreme value on the tail of interest (the
    largest for an upper tail, the smallest for a lower one, the farthest from the median for both)."""
    x = np.asarray(fields, dtype=np.float64).reshape(len(fields), -1)
    if tails == "lower":
        return int(np.nanargmin(np.nanmin(x, axis=1)))
    if tails == "both":
        median = np.nanmedian(x)
        return int(np.nanargmax(np.nanmax(np.abs(x - median), axis=1)))
    return int(np.nanargmax(np.nanmax(x, axis=1)))


def sample_maps(data: dict[str, np.ndarray], ensembles: dict[str, dict[str, np.ndarray]], variable: str,
                info: dict, lat: np.ndarray, lon: np.ndarray, out: str | Path, members: int = 3,
                seed: int = 0) -> None:
    """Rows: test data, then each ensemble. First column: its most extreme field on the
    variable's tail of interest (`most_extreme`); then `members` fields drawn at random. One
    colour scale for the whole figure, unclipped: from the lowest to the highest value shown, so
    that every extreme is drawn as it is and models compare at a glance."""
    rows = {"data (test)": data[variable]}
    rows.update({m: e[variable] for m, e in ensembles.items()})
    tails = info.get("tails", "upper")
    rng = np.random.default_rng(seed)
    chosen = {}
    for source, fields in rows.items():
        picks = rng.choice(len(fields), size=min(members, len(fields)), replace=False)
        chosen[source] = [most_extreme(fields, tails)] + [int(i) for i in picks]
    shown = np.concatenate([finite(rows[s][i]) for s in rows for i in chosen[s]])
    vmin, vmax = float(shown.min()), float(shown.max())
    norm = None
    if info.get("lower_bound") is not None:
        # an amount: unclipped, on a square-root scale so that the ordinary fields still show
        # beside the storm of the record
        cmap, norm = "viridis", colors.PowerNorm(0.5, vmin=max(vmin, float(info["lower_bound"])), vmax=vmax)
    elif vmin < 0 < vmax:  # signed field: diverging map centred on zero
        cmap = "RdBu_r"
        vmax = max(-vmin, vmax)
        vmin = -vmax
    else:
        cmap = "viridis"
    style = {"norm": norm} if norm is not None else {"vmin": vmin, "vmax": vmax}
    ncols = 1 + members
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.3 * ncols + 1.6, 2.1 * len(rows) + 0.4), squeeze=False,
                             layout="constrained")
    for r, (source, fields) in enumerate(rows.items()):
        for c, idx in enumerate(chosen[source][:ncols]):
            ax = axes[r][c]
            im = draw_field(ax, fields[idx], lat, lon, cmap=cmap, **style)
            degree_ticks(ax, left=c == 0, bottom=r == len(rows) - 1)
            if r == 0:
                ax.set_title("most extreme field" if c == 0 else f"random field {c}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{'true process' if source == 'truth' else source}\nlat [°N]", fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("lon [°E]", fontsize=8)
        for c in range(len(chosen[source]), ncols):
            axes[r][c].set_visible(False)
    fig.colorbar(im, ax=axes, shrink=0.8, label=_label(variable, info))
    side = {"upper": "the highest value", "lower": "the lowest value", "both": "the value farthest from the median"}
    scale = "square-root" if norm is not None else "linear"
    fig.suptitle(f"{variable}: each source's field with {side.get(tails, 'the most extreme value')}, then random "
                 f"fields; one unclipped colour scale ({scale})", fontsize=10)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def loss_curves(logs: dict[str, str | Path], families: dict[str, str], out: str | Path) -> None:
    """Training loss (smoothed) and validation loss per model. EDM-family and flow losses are
    on different scales, so each family has its own panel."""
    frames = {m: artifacts.read_csv(p) for m, p in logs.items()}
    colors = model_colors(list(frames))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for model, frame in frames.items():
        family_ax = axes[0] if families[model] == "edm" else axes[1]
        smooth = frame["loss"].rolling(max(1, len(frame) // 50), min_periods=1).mean()
        family_ax.plot(frame["step"], smooth, color=colors[model], lw=1.3, label=f"{model} (train)")
        val = frame.dropna(subset=["val_loss"])
        family_ax.plot(val["step"], val["val_loss"], "o--", color=colors[model], ms=4, lw=0.8, label=f"{model} (validation)")
    for ax, title in zip(axes, ["EDM family (weighted denoising loss)", "flow family (velocity loss)"]):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _errorbar(ax, x, frame: pd.DataFrame, **style) -> None:
    """Points with their bootstrap intervals where the table has them."""
    y = frame["value"].to_numpy(dtype=float)
    low, high = frame["ci_low"].to_numpy(dtype=float), frame["ci_high"].to_numpy(dtype=float)
    err = np.vstack([np.where(np.isfinite(low), y - low, 0), np.where(np.isfinite(high), high - y, 0)])
    ax.errorbar(x, y, yerr=np.maximum(err, 0), capsize=3, **style)


def forecast_skill(metrics: pd.DataFrame, forecasters: list[str], variables: dict, out: str | Path,
                   step_hours: float | None = None) -> None:
    """Rows: CRPS, spread/skill; columns: variables; x: lead time (in hours where the data's
    time step is known, else in steps). One line per forecast model."""
    scale = step_hours or 1.0
    names = list(variables)
    colors = model_colors(forecasters)
    fig, axes = plt.subplots(2, len(names), figsize=(4.6 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        for model in forecasters:
            sub = metrics[(metrics.model == model) & (metrics.variable == name)]
            for row, metric in enumerate(["crps", "spread_skill"]):
                part = sub[sub.metric == metric].sort_values("lead")
                offset = 0.04 * (forecasters.index(model) - (len(forecasters) - 1) / 2)
                _errorbar(axes[row][col], (part["lead"].to_numpy(dtype=float) + offset) * scale, part, marker="o",
                          color=colors[model], label=model)
        axes[0][col].set_title(name)
        axes[0][col].set_ylabel(f"CRPS [{variables[name].get('units', '')}]")
        axes[1][col].axhline(1.0, color="0.6", lw=0.8, zorder=0)
        axes[1][col].set_ylabel("spread / skill")
        axes[1][col].set_xlabel("lead [h]" if step_hours else "lead [steps]")
        for ax in axes[:, col]:
            ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def rank_histograms(ranks: pd.DataFrame, forecasters: list[str], variables: list[str], out: str | Path,
                    step_hours: float | None = None) -> None:
    """Rows: forecast models; columns: variables. Relative frequency of the observation's rank
    among the members at each lead; flat (dashed line) = calibrated."""
    fig, axes = plt.subplots(len(forecasters), len(variables), figsize=(3.8 * len(variables), 2.6 * len(forecasters)),
                             squeeze=False)
    for r, model in enumerate(forecasters):
        for c, name in enumerate(variables):
            ax = axes[r][c]
            sub = ranks[(ranks.model == model) & (ranks.variable == name)]
            for lead, part in sub.groupby("lead"):
                freq = part["count"].to_numpy(dtype=float)
                ax.step(part["rank"], freq / freq.sum(), where="mid", label=f"lead {lead_hours(int(lead), step_hours)}")
                ax.axhline(1 / len(freq), color="0.5", ls="--", lw=0.8)
            ax.set_title(f"{model}: {name}", fontsize=9)
            if c == 0:
                ax.set_ylabel("frequency")
            if r == len(forecasters) - 1:
                ax.set_xlabel("rank of the observation")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def return_period_unit(block_days: float | None) -> tuple[str, float]:
    """The unit of the return-period axis for blocks of `block_days` days, and the length of a
    block in that unit: years for blocks of about a year, weeks for whole weeks, days for whole
    days, else hours; "blocks" where the block's length is unknown."""
    if block_days is None or not np.isfinite(block_days) or block_days <= 0:
        return "blocks", 1.0
    if 360 <= block_days <= 366:  # a year of daily steps (365) or a 360-day model calendar
        return "years", 1.0
    if block_days > 366:
        return "years", block_days / 365.25
    if block_days >= 7 and np.isclose(block_days / 7, round(block_days / 7)):
        return "weeks", block_days / 7
    if block_days >= 1 and np.isclose(block_days, round(block_days)):
        return "days", block_days
    return "hours", block_days * 24


def _level_rows(sub: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Rows whose metric is `prefix` + a period, with the period (in blocks) as a column."""
    part = sub[sub.metric.str.startswith(prefix)].copy()
    part["period"] = part.metric.str.slice(len(prefix)).astype(float)
    return part.sort_values("period")


def return_levels(metrics: pd.DataFrame, sources: list[str], variables: dict, out: str | Path) -> None:
    """Return level against return period, one panel per variable: the GEV fit as a curve with
    its 95 % bootstrap band (rows gev_curve_T, with the configured return_level_T) and the
    empirical levels (empirical_return_level_T, the maxima's own 1 - 1/T quantiles) as points
    with their intervals, for the data (grey), the true process where known (black) and each
    forecast model's free-running sequences. The period axis is in the block's real length
    (rows block_days: weeks for the default weekly blocks, years for annual ones)."""
    from matplotlib import ticker
    from matplotlib.lines import Line2D

    names = list(variables)
    order = ["data"] + [s for s in sources if s != "data"]
    colors = model_colors(order)
    days = metrics.loc[metrics.metric == "block_days", "value"]
    unit, per_block = return_period_unit(float(days.iloc[0]) if len(days) else None)
    fig, axes = plt.subplots(1, len(names), figsize=(max(3.0 * len(names), 6.0), 3.7), squeeze=False)
    for ax, name in zip(axes[0], names):
        sub = metrics[metrics.variable == name]
        for i, source in enumerate(order):
            part = sub[sub.model == source]
            if part.empty:
                continue
            color = colors[source]
            curve = pd.concat([_level_rows(part, "gev_curve_"), _level_rows(part, "return_level_")])
            curve = curve.drop_duplicates("period").sort_values("period")
            x = curve.period.to_numpy(dtype=float) * per_block
            band = np.isfinite(curve.ci_low.to_numpy(dtype=float))
            if band.any():
                style = ({"color": DATA_STYLE["color"], "alpha": 0.35} if source == "data"
                         else {"color": color, "alpha": 0.12})
                ax.fill_between(x[band], curve.ci_low[band], curve.ci_high[band], lw=0, **style)
            ax.plot(x, curve.value, color="0.35" if source == "data" else color, lw=2.2 if source == "data" else 1.3,
                    ls="--" if source == "truth" else "-")
            points = _level_rows(part, "empirical_return_level_")
            if len(points):
                shift = 1 + 0.05 * (i - (len(order) - 1) / 2)  # side by side on the log axis
                _errorbar(ax, points.period.to_numpy(dtype=float) * per_block * shift, points, fmt="o",
                          ms=4, lw=1, color="0.35" if source == "data" else color, mfc="white", mew=1.3)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(f"return period [{unit}]")
        ax.set_ylabel(_label(name, variables[name]))
        ax.set_title(name)
        ax.grid(True, which="major", color="0.9", lw=0.6)
    handles = [Line2D([], [], color="0.35" if s == "data" else colors[s], lw=2, ls="--" if s == "truth" else "-",
                      marker="o", mfc="white", ms=5,
                      label="data (test split)" if s == "data" else ("true process" if s == "truth" else s))
               for s in order if (metrics.model == s).any()]
    block = "blocks" if unit == "blocks" else f"blocks of {per_block:g} {unit[:-1] if per_block == 1 else unit}"
    title = (f"maxima of {block} at each grid cell; lines and bands: GEV fit, points and bars: empirical "
             "levels (95 % intervals)")
    if len(names) < 3:
        title = title.replace("; ", "\n")
    ncol = min(len(handles), 5)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=9, frameon=False, title=title,
               title_fontsize=9)
    lines = -(-len(handles) // ncol) + title.count("\n") + 1
    fig.tight_layout(rect=(0, 0.025 + 0.055 * lines, 1, 1))
    fig.savefig(out, dpi=100)
    plt.close(fig)


def p_is_lower(q, maps) -> bool:
    """Whether a quantile map is of a lower tail (its probability below one half)."""
    return float(q.attrs.get("quantile", maps.attrs.get("quantile", 1.0))) < 0.5


def quantile_maps(maps, variables: dict, out: str | Path, variable: str | None = None, columns: int = 4) -> None:
    """One variable's figure (the first, if `variable` is None): the data's per-point quantile,
    then each source's bias (source - data) on one diverging scale, `columns` panels a row so
    that titles and colour bars stay readable on a page."""
    name = variable or list(variables)[0]
    sources = [s for s in maps.source.values if s != "data"]
    panels = ["data"] + sources
    ncols = min(columns, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.1 * ncols + 1.2, 2.7 * nrows + 0.6), squeeze=False,
                             layout="constrained")
    lat, lon = maps.latitude.values, maps.longitude.values
    q = maps[f"{name}_quantile"]
    bias = maps[f"{name}_bias"]
    units = variables[name].get("units", "")
    limit = float(np.nanquantile(np.abs(bias.sel(source=sources).values), 0.98)) if sources else 1.0
    flat = axes.ravel()
    for k, source in enumerate(panels):
        ax = flat[k]
        if source == "data":
            im = draw_field(ax, q.sel(source="data").values, lat, lon, cmap="viridis")
            fig.colorbar(im, ax=ax, shrink=0.85, label=f"[{units}]")
        else:
            bias_im = draw_field(ax, bias.sel(source=source).values, lat, lon, cmap="RdBu_r", vmin=-limit, vmax=limit)
        words = {"data": "data (test)", "truth": "true process: bias", "truth (sequences)": "true process (sequences): bias"}
        ax.set_title(words.get(source, f"{source}: bias"), fontsize=10)
        degree_ticks(ax, left=k % ncols == 0, bottom=k >= len(panels) - ncols)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    if sources:
        meaning = ("> 0: weaker than the data's (lower tail)" if p_is_lower(q, maps)
                   else "> 0: higher than the data's")
        fig.colorbar(bias_im, ax=flat[1:len(panels)].tolist(), shrink=0.85, label=f"bias [{units}] ({meaning})")
    p = float(q.attrs.get("quantile", maps.attrs.get("quantile")))
    fig.suptitle(f"{name}: per-grid-point {percentile(p)} of the data, and each source's bias "
                 f"(source − data)", fontsize=11)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def nu_sweep(metrics: pd.DataFrame, points: dict[str, dict[str, float]], variables: list[str],
             metric_names: list[str], out: str | Path, per_variable: dict[str, list[str]] | None = None) -> None:
    """Tail metrics against nu, one panel per (metric, variable). points: model -> {variable: nu}
    (inf is drawn at the right edge, labelled Gaussian); per_variable: a variable's own metric
    names row for row (its lower tail's), where they differ from `metric_names`."""
    per_variable = per_variable or {}
    finite = [v for p in points.values() for v in p.values() if np.isfinite(v)]
    inf_x = (max(finite) if finite else 10) * 2.0
    fig, axes = plt.subplots(len(metric_names), len(variables), figsize=(4.2 * len(variables), 3.0 * len(metric_names)),
                             squeeze=False)
    for r in range(len(metric_names)):
        for c, name in enumerate(variables):
            ax = axes[r][c]
            metric = per_variable.get(name, metric_names)[r]
            found = []
            for model, nus in points.items():
                row = metrics[(metrics.model == model) & (metrics.variable == name) & (metrics.metric == metric)]
                if not row.empty:
                    found.append((nus[name] if np.isfinite(nus[name]) else inf_x, model, row.iloc[[0]]))
            found.sort(key=lambda item: item[0])
            if found:
                xs = np.array([x for x, _, _ in found])
                _errorbar(ax, xs, pd.concat([f for _, _, f in found]), marker="o", color="C0")
                for x, model, _ in found:
                    ax.annotate(model, (x, 0.02), xycoords=("data", "axes fraction"), fontsize=6, rotation=90,
                                va="bottom", ha="center", color="0.4")
            ax.axhline(1.0 if metric.startswith("exceedance") else 0.0, color="0.6", lw=0.8, zorder=0)
            ax.set_xscale("log")
            ax.set_title(f"{name}: {metric}", fontsize=9)
            if r == len(metric_names) - 1:
                ax.set_xlabel(f"nu (Gaussian at {inf_x:g})")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def convergence(tail_error: pd.DataFrame, replicates: pd.DataFrame, variables: list[str], out: str | Path,
                forecasters: set[str] = frozenset(), reference: dict[str, float] | None = None,
                final: dict[tuple[str, str], float] | None = None,
                whole_reference: dict[str, float] | None = None) -> None:
    """Tail error against training steps, one panel per variable: a line per model (the mean
    over its replicates, small ensembles), each replicate's points faint (with steps: auto,
    where the replicates stopped at different steps, a line per replicate instead); `reference`: per
    variable, the error of an independent sample of the real process of that size (a dashed
    line: what sampling noise alone gives). `final`: per (model, variable), the whole final
    ensemble's error (a star at the last step: where the model ends, as the report's text reads
    it), and the band below which it counts as near the data, from `whole_reference` (the
    reference of as many fields). Forecast models (`forecasters`), scored on lead-1 twCRPS in
    the variable's units, get a row of their own."""
    reference, final, whole_reference = reference or {}, final or {}, whole_reference or {}
    models = list(dict.fromkeys(tail_error.model))
    colors = model_colors(models)
    rows = [(label, [m for m in models if (m in forecasters) == is_forecast])
            for label, is_forecast in (("tail error (mean over key metrics)", False),
                                       ("lead-1 twCRPS (mean of p99, p999)", True))]
    rows = [(label, group) for label, group in rows if group]
    fig, axes = plt.subplots(len(rows), len(variables), figsize=(4.2 * len(variables), 3.2 * len(rows)),
                             squeeze=False)
    for row, (label, group) in zip(axes, rows):
        for ax, name in zip(row, variables):
            for model in group:
                mean = tail_error[(tail_error.model == model) & (tail_error.variable == name)].sort_values("step")
                each = replicates[(replicates.model == model) & (replicates.variable == name)]
                runs = [run.sort_values("step") for _, run in each.groupby("replicate")] if "replicate" in each else []
                if len({tuple(run.step) for run in runs}) > 1:
                    # steps: auto: the runs stopped at different steps, and a mean over whichever
                    # runs have a step would zigzag; each run is a line of its own
                    for k, run in enumerate(runs):
                        ax.plot(run.step, run.error, marker="o", ms=3, color=colors[model], lw=1,
                                label=model if k == 0 else None)
                else:
                    ax.plot(mean.step, mean.error, marker="o", color=colors[model], label=model, lw=1.2)
                    ax.scatter(each.step, each.error, color=colors[model], alpha=0.3, s=10)
                if (model, name) in final and len(mean):
                    ax.scatter([mean.step.iloc[-1]], [final[model, name]], marker="*", s=90, color=colors[model],
                               edgecolor="black", linewidth=0.5, zorder=3)
            if name in reference and not any(m in forecasters for m in group):
                ax.axhline(reference[name], color="0.3", ls="--", lw=1, label="reference sample")
            if name in whole_reference and not any(m in forecasters for m in group):
                ax.axhspan(0, near_limit(whole_reference[name]), color="0.85", alpha=0.5, lw=0,
                           label="near the data (whole ensemble)")
                ax.scatter([], [], marker="*", s=90, color="white", edgecolor="black", label="whole final ensemble")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("training step")
            ax.set_ylim(bottom=0)
        row[0].set_ylabel(label, fontsize=8)
        row[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


SOLVER_COLORS = {"dpmpp_2m": "tab:blue", "ab2": "tab:purple", "euler": "tab:orange", "heun": "tab:green",
                 "stochastic": "tab:red"}
SOLVER_LABELS = {"dpmpp_2m": "DPM-Solver++(2M)", "ab2": "Adams-Bashforth 2 (flow)",
                 "stochastic": "stochastic, Student-t churn"}


def sampler_budget_figure(table: pd.DataFrame, out: str | Path, base_levels: str = "") -> None:
    """Tail error against the data per network evaluations (evaluation.sampler_budget): a panel per
    model and variable, a line per solver and noise-level setting (dotted where the levels are
    overridden), the 255-evaluation reference's error dashed. Points that leave the axis (Heun
    at very few steps diverges) are clipped at 3 times the reference's error. `base_levels` names
    the noise levels of the DPM-Solver++ settings without overrides in the legend."""
    table = table.assign(options=table.options.astype(object).fillna(""))
    is_reference = (table.evaluations == table.evaluations.max()) & (table.solver == "heun")
    models, variables = list(dict.fromkeys(table.model)), list(dict.fromkeys(table.variable))
    fig, axes = plt.subplots(len(variables), len(models), figsize=(3.2 * len(models), 2.6 * len(variables)),
                             squeeze=False, sharex=True)
    ticks = []  # the evaluations tried, from the most, leaving out those too close to a labelled one to read
    for t in sorted(set(table.evaluations[~is_reference]), reverse=True):
        if not ticks or 1.2 * t < ticks[-1]:
            ticks.append(int(t))
    for row, variable in zip(axes, variables):
        for ax, model in zip(row, models):
            here = (table.model == model) & (table.variable == variable)
            reference = table[here & is_reference].tail_error.iloc[0]
            for (solver, options), line in table[here & ~is_reference].groupby(["solver", "options"]):
                line = line.sort_values("evaluations")
                ax.plot(line.evaluations, line.tail_error, marker="o", ms=3, lw=1.2, ls=":" if options else "-",
                        color=SOLVER_COLORS.get(solver, "0.5"),
                        label=" ".join([SOLVER_LABELS.get(solver, solver),
                                        options or (base_levels if solver == "dpmpp_2m" else "")]).strip())
            ax.axhline(reference, color="0.3", ls="--", lw=1,
                       label=f"reference ({int(table[is_reference].evaluations.iloc[0])} evaluations)")
            ax.set_xscale("log")
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            ax.set_ylim(0, max(3 * reference, 0.1))
            ax.set_title(f"{model}: {variable}", fontsize=9)
        row[0].set_ylabel("tail error vs data", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("network evaluations per member", fontsize=8)
    handles = {}
    for ax in axes.ravel():
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 4), fontsize=8)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(handles) - 1) // 4), 1, 1))
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _plain_log_axis(axis) -> None:
    """A log axis labelled in plain numbers at its decades and 2 and 5 times them, no minor labels."""
    axis.axes.set_xscale("log") if axis is axis.axes.xaxis else axis.axes.set_yscale("log")
    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def spatial_structure(curves: dict[str, dict], variables: dict, out: str | Path, areal_probability: float) -> None:
    """Per variable (a row): the radially averaged power spectrum against wavelength, the
    `areal_probability` quantile of the mean over k x k cells against the block's side, and for
    variables with storm objects the share of objects larger than an area; the data (grey, thick),
    the truth (black, dotted) and each model's first run, with a band over its runs (lowest to
    highest). curves[variable]: wavelength_km, block_km, labels; per source ("data", "truth",
    models) lists over runs of psd, areal and object areas (km^2, objects at the data's p99)."""
    names = list(curves)
    sources = [s for s in next(iter(curves.values()))["psd"] if s != "data"]
    colors = model_colors(sources)
    fig, axes = plt.subplots(len(names), 3, figsize=(14.5, 3.9 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        c = curves[name]
        units = variables[name].get("units", "")
        panels = (("psd", c["wavelength_km"][1:], lambda v: v[1:]), ("areal", c["block_km"], lambda v: v))
        for ax, (key, x, part) in zip(row, panels):
            for source, runs in c[key].items():
                style = ({"color": DATA_STYLE["color"], "lw": 3.0, "alpha": 0.7} if source == "data"
                         else {"color": colors[source], "lw": 1.3, "ls": ":" if source == "truth" else "-"})
                label = legend_name(source) if len(runs) == 1 else f"{source} ({len(runs)} runs)"
                ax.plot(x, part(runs[0]), marker="o" if key == "areal" else None, ms=3, label=label, **style)
                if len(runs) > 1:
                    stack = np.stack([part(r) for r in runs])
                    ax.fill_between(x, stack.min(axis=0), stack.max(axis=0), color=style["color"], alpha=0.18, lw=0)
            _plain_log_axis(ax.xaxis)
        row[0].set_yscale("log")
        row[0].invert_xaxis()  # large scales on the left
        row[0].set_xlabel("wavelength [km]")
        row[0].set_ylabel(("power [({})²]" if " " in units else "power [{}²]").format(units) if units else "power")
        row[0].set_title(f"{name}: power spectrum")
        row[1].set_xlabel("block side [km] (the last: the whole field)")
        p = c.get("probability", areal_probability)
        row[1].set_ylabel(f"{percentile(p)} of block means" + (f" [{units}]" if units else ""))
        row[1].set_title(f"{name}: areal extremes")
        ax = row[2]
        if c.get("areas"):
            for source, runs in c["areas"].items():
                style = ({"color": DATA_STYLE["color"], "lw": 3.0, "alpha": 0.7} if source == "data"
                         else {"color": colors[source], "lw": 1.3, "ls": ":" if source == "truth" else "-"})
                areas = np.sort(runs[0])
                if areas.size:
                    ax.step(areas, 1 - np.arange(areas.size) / areas.size, where="post", **style)
            _plain_log_axis(ax.xaxis)
            ax.set_yscale("log")
            ax.set_xlabel("object area [km²]")
            ax.set_ylabel("share of objects at least this large")
            ax.set_title(f"{name}: objects below the data's 1st percentile" if c.get("lower")
                         else f"{name}: storm objects above the data's p99")
        else:
            ax.axis("off")
            ax.text(0.5, 0.5, f"{name}: no storm objects\n(both tails of interest)", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
