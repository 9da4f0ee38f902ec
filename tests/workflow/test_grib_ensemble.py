"""A 10-member ERA5-style GRIB with pressure levels, made with eccodes, through the whole
workflow by the README's command plus --configfile: once with the members as fields of their
time (data.members: samples) and once with one member chosen."""

import json

import pandas as pd
import pytest
import xarray as xr
import yaml

from conftest import GRIB_WORKFLOW_CONFIG as CONFIG, snakemake, write_grib_ensemble


@pytest.mark.slow
@pytest.mark.parametrize("members", ["samples", 3])
def test_an_era5_ensemble_grib_runs_end_to_end(members, tmp_path):
    grib = tmp_path / "era5-ensemble.grib"
    write_grib_ensemble(grib, pd.date_range("2001-01-01", periods=40, freq="6h"))
    config = tmp_path / "ensemble.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "source": str(grib), "members": members}}))
    run = tmp_path / "run"
    run.mkdir()
    result = snakemake(run, "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((run / "results/data/stats.json").read_text())
    store = xr.open_zarr(run / "results/data/store.zarr")
    if members == "samples":
        assert stats["fields_per_time"] == 10 and store.sizes["time"] == 400
        assert stats["splits"]["test"] == {**stats["splits"]["test"], "n_times": 8, "n_fields": 80}
    else:
        assert stats["fields_per_time"] == 1 and store.sizes["time"] == 40
    metrics = pd.read_csv(run / "results/evaluation/metrics.csv")
    assert set(metrics.model) == {"edm", "tedm", "data"} and set(metrics.variable) == {"t@850", "t@500"}
    levels = metrics[(metrics.model == "data") & metrics.metric.str.startswith("empirical_return_level_")]
    assert levels.value.notna().any()  # each member its own sequence of block maxima
    comparisons = pd.read_csv(run / "results/evaluation/comparisons.csv")
    assert len(comparisons) and comparisons.verdict.notna().all()
    assert "t@850" in (run / "results/report.html").read_text()
