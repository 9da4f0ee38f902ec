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
