"""Values missing at some times only (radar outages) through every stage: training, nu auto,
INC, sampling, forecasts from states with holes, the tail metrics, the forecast scores and the
data's own quantiles, all from the valid values."""

import numpy as np
import xarray as xr

from htweather.config import load_config
from htweather.data import ingest, synthetic
from htweather.evaluation import extremes, forecasts, tails
from htweather.generation import forecast, sample
from htweather.training import train


def test_every_stage_runs_on_values_missing_at_some_times(tiny_config, tmp_path):
    cfg = load_config({**tiny_config, "models": {
        "tedm": {"family": "edm", "nu": "auto", "normalisation": "inc"},
        "fc_tedm": {"family": "edm", "nu": "auto", "condition_steps": 1}},
        "comparisons": [], "nu_sweep": None})
    files = synthetic.write_netcdf(cfg["data"]["synthetic"], tmp_path / "raw", seed=3)
    rng = np.random.default_rng(0)
    holed = []
    for path in files:
        ds = xr.open_dataset(path).load()
        for name in ("w", "tp"):
            holes = rng.random(ds[name].shape) < 0.02  # 2 % of the values, at random times and cells
            ds[name] = ds[name].where(~holes)
        holed.append(tmp_path / f"holed-{path.name}")
        ds.to_netcdf(holed[-1])
    store, stats_path = tmp_path / "store.zarr", tmp_path / "stats.json"
    stats = ingest.ingest(cfg, [str(p) for p in holed], store, stats_path)
    assert stats["grid"]["valid_cells"] == 144 and stats["grid"]["missing_at_some_times"]["w"] > 100

    model = train.train(cfg, "tedm", store, stats_path, tmp_path / "tedm")
    fc_model = train.train(cfg, "fc_tedm", store, stats_path, tmp_path / "fc_tedm")
    for name in ("tedm", "fc_tedm"):
        log = (tmp_path / name / "train_log.csv").read_text().splitlines()[1:]
        assert all(np.isfinite(float(row.split(",")[1])) for row in log)

    ensemble = sample.sample(cfg, model, stats_path, tmp_path / "ens.zarr")
    rows = tails.evaluate_ensemble(cfg, "tedm", ensemble, store, stats_path)
    assert np.isfinite(rows.value).all(), rows[~np.isfinite(rows.value)]

    forecast.forecast(cfg, fc_model, store, stats_path, tmp_path / "fc.zarr", None)
    generated = xr.open_zarr(tmp_path / "fc.zarr")
    assert np.isfinite(generated.w.values).all()  # holes in the start states do not spread
    scores, _ = forecasts.verify(cfg, "fc_tedm", tmp_path / "fc.zarr", store, stats_path)
    # FSS where neither forecasts nor observations pass the threshold, and SEEPS where no cell is
    # dry between 10 and 85 % of the time, are undefined (empty); every other score is a number
    defined = scores[~scores.metric.str.startswith(("fss_", "seeps"))]
    assert np.isfinite(defined.value).all(), defined[~np.isfinite(defined.value)]
    assert scores.metric.str.startswith("fss_p99_").any()

    data_rows = extremes.extremes_table(cfg, "data", store, stats_path)
    quantiles = data_rows[data_rows.metric.str.startswith("quantile_")]
    assert len(quantiles) and np.isfinite(quantiles.value).all()
    maps = extremes.quantile_maps(cfg, store, stats_path, {"tedm": ensemble}, {})
    assert np.isfinite(maps["w_quantile"].values).all()
