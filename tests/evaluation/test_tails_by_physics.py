"""Each variable's tail of interest comes from the physics (data.variables.NAME.tails): a
variable whose heavy tail is negative (ascent in pressure velocity) gets its tail metrics,
storm objects and return levels on that side, and a variable with both tails gets each tail's
own numbers, never one pooled under a one-tail label."""

import numpy as np
import pytest

from htweather.data.ingest import auto_tails
from htweather.evaluation import spatial
from htweather.evaluation.bootstrap import SortedUnits
from htweather.evaluation.comparisons import tail_metric_values
from htweather.evaluation.extremes import return_level_rows
from htweather.evaluation.tails import quantile_metrics
from htweather.tail_metrics import key_metric_names, key_metrics


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def ascent(rng, shape):
    """Pressure-velocity-like values: a light upper tail (descent) and a heavy lower one (ascent)."""
    return rng.normal(0.0, 0.1, shape) - 0.2 * rng.pareto(3.0, shape)


def test_pressure_velocity_looks_at_its_ascent_tail_by_default():
    assert auto_tails(-2.6, -0.05, 0.3, "Pa s**-1") == "lower"
    assert auto_tails(-2.6, -0.05, 0.3, "Pa s-1") == "lower"
    assert auto_tails(0.0, 0.5, 1.5, "mm") == "upper"
    assert auto_tails(250.0, 280.0, 5.0, "K") == "both"
    assert auto_tails(-3.0, 0.1, 1.0, "m s-1") == "both"  # a wind component


def test_a_negative_heavy_tail_gets_its_metrics_on_that_side(rng):
    data, gen = ascent(rng, (300, 64)), ascent(rng, (200, 64)) * 0.6  # the model's ascent too weak
    found = quantile_metrics(SortedUnits(gen), SortedUnits(data), [0.99, 0.999], "lower")
    assert {"exceedance_ratio_p01", "exceedance_ratio_p001", "quantile_rel_error_0.01",
            "quantile_rel_error_0.001"} == set(found)
    # too little ascent: too little mass below the data's 0.1th percentile, a quantile too high
    assert found["exceedance_ratio_p001"] < 0.5 and found["quantile_rel_error_0.001"] > 0.2
    # the lower tail's numbers are the upper tail's of the mirrored values
    mirrored = quantile_metrics(SortedUnits(-gen), SortedUnits(-data), [0.99, 0.999], "upper")
    assert found["exceedance_ratio_p001"] == pytest.approx(mirrored["exceedance_ratio_p999"], abs=0.01)
    assert found["quantile_rel_error_0.001"] == pytest.approx(-mirrored["quantile_rel_error_0.999"], rel=0.05)
    keys = key_metrics(gen.ravel(), data.ravel(), "lower", 0.99)
    assert list(keys) == key_metric_names("lower") == ["exceedance_ratio_p01", "exceedance_ratio_p001",
                                                       "quantile_rel_error_0.001", "tail_ks_lower"]


def test_both_tails_each_get_their_own_numbers(rng):
    data, gen = rng.standard_t(4, (300, 40)), rng.normal(0, 1.4, (200, 40))
    g, d = SortedUnits(gen), SortedUnits(data)
    found = tail_metric_values(g, d, g.cumulative(), d.cumulative(), [0.99, 0.999], 0.99, "both")
    for name in key_metric_names("both"):
        assert name in found, name
    upper = tail_metric_values(g, d, g.cumulative(), d.cumulative(), [0.99, 0.999], 0.99, "upper")
    lower = tail_metric_values(g, d, g.cumulative(), d.cumulative(), [0.99, 0.999], 0.99, "lower")
    # no pooled number: each tail's value is the one-tail value, nothing in between
    assert found["exceedance_ratio_p999"] == upper["exceedance_ratio_p999"]
    assert found["exceedance_ratio_p001"] == lower["exceedance_ratio_p001"]
    assert found["tail_ks"] == upper["tail_ks"] and found["tail_ks_lower"] == lower["tail_ks_lower"]


def _stats(tails, n=12):
    return {"grid": {"latitude": np.linspace(50, 55, n).tolist(), "longitude": np.linspace(0, 5, n).tolist()},
            "variables": {"w": {"tails": tails, "lower_bound": None}}}


def updraft_fields(rng, n, size=12, strength=3.0):
    """Background noise with a few strong, compact updrafts (negative blobs)."""
    fields = rng.normal(0, 0.1, (n, size, size))
    yy, xx = np.mgrid[:size, :size]
    for f in fields:
        for _ in range(2):
            cy, cx = rng.integers(2, size - 2, 2)
            f -= strength * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    return fields


def test_a_lower_tail_has_its_storm_objects_below(rng):
    data = updraft_fields(rng, 40)
    spec = spatial.spatial_spec(_stats("lower"), "w", data, [2])
    assert set(spec.thresholds) == {"p01"} and spec.sign == -1.0
    found = spatial.spatial_metrics(spatial.summarise(updraft_fields(rng, 40), spec), spatial.summarise(data, spec),
                                    [0.99], "lower")
    # the same process: about the data's count of updrafts, and no SAL amplitude (a mean near 0)
    assert found["object_count_ratio_p01"] == pytest.approx(1.0, abs=0.25) and "sal_amplitude" not in found
    weak = spatial.spatial_metrics(spatial.summarise(updraft_fields(rng, 40, strength=0.6), spec),
                                   spatial.summarise(data, spec), [0.99], "lower")
    assert weak["object_count_ratio_p01"] < 0.5  # weak updrafts rarely reach the data's 1st percentile
    # the same fields as an upper tail find no ascent at all, only noise: the side matters
    assert "p99" in spatial.spatial_spec({**_stats("upper"), "variables": {"w": {"tails": "upper", "lower_bound": None,
                                                                                 "trace": None}}},
                                         "w", data, [2]).thresholds
    assert spatial.spatial_spec(_stats("both"), "w", data, [2]).thresholds == {}


def test_a_lower_tail_has_return_levels_of_its_minima(rng):
    config = {"evaluation": {"return_periods": [2, 5], "block_steps": 10, "gev_cell_stride": 1, "gev_bootstrap": 20,
                             "confidence": 0.9}}
    series = {"w": [ascent(rng, (400, 4, 4))]}
    rows = {r["metric"]: r for r in return_level_rows(config, "data", series, {**_stats("lower", 4), "grid": {}}, rng)}
    level = rows["empirical_return_level_5"]
    minima = series["w"][0].reshape(40, 10, 16).min(axis=1)
    # the level the minimum of one cell falls below once in 5 blocks: the 20 % quantile of the minima
    assert level["value"] == pytest.approx(np.quantile(minima, 0.2), rel=0.15)
    assert level["value"] < 0 and level["ci_low"] <= level["value"] <= level["ci_high"]
