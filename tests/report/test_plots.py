"""The report's figures carry what they claim to draw."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from htweather.report import plots  # noqa: E402


def test_qq_band_spans_the_replicates_quantiles(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = {"w": rng.standard_t(5, size=(400, 8, 8))}
    runs = [{"w": s * rng.standard_t(5, size=(200, 8, 8))} for s in (0.8, 1.0, 1.3)]
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))  # keep the figure to inspect it
    plots.qq_plots(data, {"tedm": runs[0], "edm": runs[1]}, {"w": {"tails": "both", "units": "1"}},
                   tmp_path / "qq.png", replicates={"tedm": runs, "edm": runs[1:2]})
    assert (tmp_path / "qq.png").stat().st_size > 0
    ax = figures[0].axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # edm has one replicate: no band
    probs = plots.qq_probabilities("both")
    y = bands[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(y.max(), max(np.quantile(r["w"], probs[-1]) for r in runs))  # highest replicate, top
    assert np.isclose(y.min(), min(np.quantile(r["w"], probs[0]) for r in runs))  # lowest replicate, bottom
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "tedm (3 replicates)" in labels and "edm" in labels


def _level_frame(block_days):
    """Return-level rows of three sources, as the return_levels rule writes them."""
    import pandas as pd

    from htweather.evaluation import extremes

    config = {"evaluation": {"return_periods": [2, 10, 50], "block_steps": 28, "gev_cell_stride": 1,
                             "gev_bootstrap": 20, "confidence": 0.95}}
    stats = {"grid": {"mask": None}, "variables": {"w": {"lower_bound": None}}}
    rows = []
    for i, source in enumerate(["data", "truth", "fc_tedm"]):
        rng = np.random.default_rng(i)
        series = {"w": [rng.gumbel(size=(28 * 30, 4, 4)) * (1 + 0.1 * i)]}
        rows += extremes.return_level_rows(config, source, series, stats, rng,
                                           step=pd.Timedelta(days=block_days / 28))
    return pd.DataFrame(rows)


def test_return_levels_draw_gev_curves_and_empirical_points_against_weeks(tmp_path, monkeypatch):
    from htweather.evaluation import extremes

    frame = _level_frame(block_days=7.0)
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    plots.return_levels(frame, ["fc_tedm", "truth"], {"w": {"units": "Pa s-1"}}, tmp_path / "levels.png")
    assert (tmp_path / "levels.png").stat().st_size > 0
    ax = figures[0].axes[0]
    assert ax.get_xlabel() == "return period [weeks]"
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 3]  # not the error bars' pieces
    assert len(curves) == 3  # a smooth GEV curve per source
    for line in curves:
        x = np.asarray(line.get_xdata(), dtype=float)
        assert len(x) >= extremes.CURVE_POINTS and x.min() == 2 and x.max() == 100  # weeks = blocks here
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3  # a band per source
    assert len(ax.containers) == 3  # empirical points with intervals per source
    assert all(len(c.lines[0].get_xdata()) == 3 for c in ax.containers)  # at the 3 configured periods
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert labels == ["data (test split)", "fc_tedm", "true process"]


def test_return_period_axis_in_the_blocks_real_length(tmp_path, monkeypatch):
    assert plots.return_period_unit(7.0) == ("weeks", 1.0)
    assert plots.return_period_unit(14.0) == ("weeks", 2.0)
    assert plots.return_period_unit(365.0) == ("years", 1.0)
    assert plots.return_period_unit(30.0) == ("days", 30.0)
    assert plots.return_period_unit(0.25) == ("hours", 6.0)
    assert plots.return_period_unit(None) == ("blocks", 1.0)
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    frame = _level_frame(block_days=14.0)
    plots.return_levels(frame, ["fc_tedm"], {"w": {}}, tmp_path / "a.png")
    plots.return_levels(frame[frame.metric != "block_days"], ["fc_tedm"], {"w": {}}, tmp_path / "b.png")
    fortnights, legacy = (f.axes[0] for f in figures)
    assert fortnights.get_xlabel() == "return period [weeks]"
    assert max(np.max(line.get_xdata()) for line in fortnights.get_lines()) == 200  # 100 blocks of 2 weeks
    assert legacy.get_xlabel() == "return period [blocks]"


def test_convergence_draws_each_run_where_runs_stopped_at_different_steps(tmp_path, monkeypatch):
    import pandas as pd
    runs = pd.DataFrame([{"model": m, "replicate": r, "variable": "tp", "step": s, "error": 1.0 / s}
                         for m, steps in (("edm", {0: [100, 200], 1: [100, 200]}),
                                          ("tedm", {0: [100, 200, 400], 1: [100, 300]}))
                         for r, rs in steps.items() for s in rs])
    mean = runs.groupby(["model", "variable", "step"], as_index=False)["error"].mean()
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig: figures.append(fig))
    plots.convergence(mean, runs, ["tp"], tmp_path / "convergence.png")
    lines = figures[0].axes[0].get_lines()
    # edm: one mean line over its runs' shared steps; tedm (steps: auto, stopped at 400 and 300): one per run
    assert sorted(len(line.get_xdata()) for line in lines) == [2, 2, 3]
    assert [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()] == ["edm", "tedm"]
