"""Report figures. Each function takes arrays in physical units and writes one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

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
                    color=colors[model], label=model)
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


def qq_probabilities(tails: str, top: float = 0.9999) -> np.ndarray:
    upper = 1 - np.logspace(np.log10(0.5), np.log10(1 - top), 60)
    if tails == "both":
        return np.concatenate([np.sort(1 - upper), upper])
    return upper


def qq_plots(data: dict[str, np.ndarray], ensembles: dict[str, dict[str, np.ndarray]], variables: dict,
             out: str | Path, closed_form: dict | None = None, top: float = 0.9999) -> None:
    """Quantiles of each ensemble against those of the test data, up to the `top` quantile
    (and down to 1 - top for two-tailed variables); the 1:1 line is perfect."""
    names = list(variables)
    colors = model_colors(list(ensembles))
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        probs = qq_probabilities(variables[name].get("tails", "upper"), top)
        qd = np.quantile(finite(data[name]), probs)
        for model, fields in ensembles.items():
            ls = ":" if model == "truth" else "-"
            ax.plot(qd, np.quantile(finite(fields[name]), probs), ls, color=colors[model], lw=1.4, label=model)
        if closed_form and name in closed_form:
            ax.plot(qd, closed_form[name].ppf(probs), "--", color=TRUTH_COLOR, lw=1.0, label="true quantiles")
        span = [qd.min(), qd.max()]
        ax.plot(span, span, color="0.6", lw=0.8, zorder=0)
        ax.set_xlabel(f"data quantile, {_label(name, variables[name])}")
        ax.set_ylabel("generated quantile")
        ax.set_title(f"{name} (to p = {top})")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def sample_maps(data: dict[str, np.ndarray], ensembles: dict[str, dict[str, np.ndarray]], variable: str,
                info: dict, lat: np.ndarray, lon: np.ndarray, out: str | Path, members: int = 3) -> None:
    """Rows: test data, then each ensemble; columns: `members` fields. One colour scale per
    figure, set by the data, so a model's extremes stand out."""
    rows = {"data (test)": data[variable]}
    rows.update({m: e[variable] for m, e in ensembles.items()})
    d = data[variable]
    vmin, vmax = np.quantile(finite(d), [0.001, 0.999])
    if info.get("tails") == "upper":
        cmap = "viridis"
    elif vmin < 0 < vmax:  # signed field: diverging map centred on zero
        cmap = "RdBu_r"
        vmax = max(-vmin, vmax)
        vmin = -vmax
    else:
        cmap = "coolwarm"
    fig, axes = plt.subplots(len(rows), members, figsize=(2.2 * members + 1.4, 2.0 * len(rows)), squeeze=False,
                             layout="constrained")
    stride = max(1, d.shape[0] // members)
    extent = [lon.min(), lon.max(), lat.min(), lat.max()]
    for r, (source, fields) in enumerate(rows.items()):
        for c in range(members):
            idx = c * stride if source == "data (test)" else c
            ax = axes[r][c]
            im = ax.imshow(fields[min(idx, fields.shape[0] - 1)], origin="upper", extent=extent,
                           vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(source, fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label=_label(variable, info))
    fig.suptitle(f"{variable}: test fields and generated members")
    fig.savefig(out, dpi=100)
    plt.close(fig)


def loss_curves(logs: dict[str, str | Path], families: dict[str, str], out: str | Path) -> None:
    """Training loss (smoothed) and validation loss per model. EDM-family and flow losses are
    on different scales, so each family has its own panel."""
    frames = {m: pd.read_csv(p) for m, p in logs.items()}
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

