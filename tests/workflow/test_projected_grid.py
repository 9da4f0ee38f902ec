"""A projected grid through every stage: training, sampling, forecasts with area weights, the
tail metrics, quantile maps and the map figures drawn on the grid's own latitude/longitude."""

import numpy as np
import xarray as xr

from htweather.config import load_config
from htweather.data import ingest
from htweather.evaluation import extremes, forecasts, tails
from htweather.generation import forecast, sample
from htweather.report import plots
from htweather.training import train

from conftest import GRID_SPLITS as SPLITS, GRID_TIME as TIME, rotated_to_geographic


def test_every_stage_runs_on_a_rotated_pole_grid(tiny_config, tmp_path):
    rlat, rlon = -2.0 + 0.5 * np.arange(8), -3.0 + 0.5 * np.arange(12)
    lat, lon = rotated_to_geographic(*np.meshgrid(rlat, rlon, indexing="ij"))
    rng = np.random.default_rng(0)
    pr = rng.gamma(0.4, 2e-4, size=(len(TIME), 8, 12))
    pr[:, :2, :3] = np.nan  # sea
    src = xr.Dataset({"pr": (("time", "rlat", "rlon"), pr, {"units": "kg m-2 s-1"})},
                     coords={"time": TIME, "rlat": rlat, "rlon": rlon,
                             "lat": (("rlat", "rlon"), lat), "lon": (("rlat", "rlon"), lon)})
    src.to_netcdf(tmp_path / "pr.nc")
    cfg = load_config({**tiny_config, "nu_sweep": None, "comparisons": [],
                       "data": {"source": str(tmp_path / "pr.nc"), "splits": SPLITS,
                                "variables": {"pr": {"units": "mm h-1", "lower_bound": 0.0}}},
                       "models": {"tedm": {"family": "edm", "nu": "auto"},
                                  "fc": {"family": "edm", "nu": 5, "condition_steps": 1}}})
    store, stats_path = tmp_path / "store.zarr", tmp_path / "stats.json"
    stats = ingest.ingest(cfg, None, store, stats_path)
    model = train.train(cfg, "tedm", store, stats_path, tmp_path / "tedm")
    ensemble = sample.sample(cfg, model, stats_path, tmp_path / "ens.zarr")
    generated = xr.open_zarr(ensemble)
    assert generated.pr.dims == ("member", "y", "x") and generated.latitude.shape == (8, 12)
    assert np.isnan(generated.pr.values[:, :2, :3]).all() and np.isfinite(generated.pr.values[:, 2:, 3:]).all()
    rows = tails.evaluate_ensemble(cfg, "tedm", ensemble, store, stats_path)
    assert np.isfinite(rows.value).all()

    fc_model = train.train(cfg, "fc", store, stats_path, tmp_path / "fc")
    forecast.forecast(cfg, fc_model, store, stats_path, tmp_path / "fc.zarr", None)
    weights = forecasts.latitude_weights(stats, True)
    assert weights.shape == (8, 12) and weights[:2, :3].sum() == 0
    scores, _ = forecasts.verify(cfg, "fc", tmp_path / "fc.zarr", store, stats_path)
    # FSS where neither forecasts nor observations pass the threshold, and SEEPS where no cell is
    # dry between 10 and 85 % of the time, are undefined (empty); every other score is a number
    defined = scores[~scores.metric.str.startswith(("fss_", "seeps"))]
    assert np.isfinite(defined.value).all(), defined[~np.isfinite(defined.value)]
    assert scores.metric.str.startswith("fss_p99_").any()

    maps = extremes.quantile_maps(cfg, store, stats_path, {"tedm": ensemble}, {})
    assert maps["pr_quantile"].dims == ("source", "y", "x")
    plots.quantile_maps(maps, stats["variables"], tmp_path / "q.png")
    data = {"pr": xr.open_zarr(store).pr.values[-8:].astype(float)}
    plots.sample_maps(data, {"tedm": {"pr": generated.pr.values}}, "pr", stats["variables"]["pr"],
                      np.asarray(stats["grid"]["latitude"]), np.asarray(stats["grid"]["longitude"]),
                      tmp_path / "maps.png", members=2)
    assert (tmp_path / "q.png").stat().st_size > 1000 and (tmp_path / "maps.png").stat().st_size > 1000
