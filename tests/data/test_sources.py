"""Real-ERA5 ingestion: the layouts the data come in (old and new CDS NetCDF, cfgrib's steps,
ARCO and WeatherBench2 zarr), names and levels, regions across Greenwich and the dateline,
coarsening, resampling, masks, and the one-line errors for bad input. Everything is built in
a temporary directory; nothing touches the network."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from htweather.config import is_remote, load_config
from htweather.data import catalog, ingest, sources, transforms
from htweather.data.store import denormalise, normalised
from htweather.errors import IngestError

SPLITS = {"train": ["2001-01-01", "2001-01-06T23:00"], "validation": ["2001-01-07", "2001-01-08T23:00"],
          "test": ["2001-01-09", "2001-01-10T23:00"]}
LEVELS = [500, 850, 1000]


def _field(rng, shape, loc=0.0, scale=1.0):
    return (loc + scale * rng.standard_normal(shape)).astype(np.float32)


def old_cds(times, lat, lon, seed=0, expver_split=None):
    """Old CDS layout: time, level, latitude descending; optionally an expver dimension whose
    halves (1 = ERA5 before `expver_split`, 5 = ERA5T after) are NaN where the other has data."""
    rng = np.random.default_rng(seed)
    shape3 = (len(times), len(LEVELS), len(lat), len(lon))
    ds = xr.Dataset(
        {"t": (("time", "level", "latitude", "longitude"), _field(rng, shape3, 270, 10), {"units": "K"}),
         "tp": (("time", "latitude", "longitude"),
                np.abs(_field(rng, shape3[:1] + shape3[2:], 0, 1e-3)), {"units": "m"})},
        coords={"time": times, "level": ("level", LEVELS, {"units": "millibars"}),
                "latitude": lat, "longitude": lon})
    if expver_split is not None:
        era5 = ds.where(ds.time < np.datetime64(expver_split))
        era5t = ds.where(ds.time >= np.datetime64(expver_split))
        ds = xr.concat([era5, era5t], dim=pd.Index([1, 5], name="expver")).transpose("time", "expver", ...)
    return ds


def new_cds(ds):
    """The same data as the new CDS writes them: valid_time, pressure_level, a number and an
    expver coordinate."""
    out = ds.rename({"time": "valid_time", "level": "pressure_level"})
    return out.assign_coords(number=0, expver=("valid_time", np.full(ds.sizes["time"], "0001")))


def arco_like(times, seed=0):
    """A small store laid out like ARCO-ERA5: long names, level, latitude 90 -> -90, longitude
    0..360, hourly accumulations in m."""
    rng = np.random.default_rng(seed)
    lat = np.arange(60.0, 39.0, -2.0)
    lon = np.arange(0.0, 360.0, 2.0)
    shape = (len(times), len(lat), len(lon))
    return xr.Dataset(
        {"2m_temperature": (("time", "latitude", "longitude"), _field(rng, shape, 280, 5), {"units": "K"}),
         "total_precipitation": (("time", "latitude", "longitude"),
                                 np.abs(_field(rng, shape, 0, 1e-3)), {"units": "m"}),
         "vertical_velocity": (("time", "level", "latitude", "longitude"),
                               _field(rng, (len(times), len(LEVELS), len(lat), len(lon)), 0, 0.2),
                               {"units": "Pa s**-1"})},
        coords={"time": times, "level": LEVELS, "latitude": lat, "longitude": lon})


HOURLY = pd.date_range("2001-01-01", "2001-01-10T23:00", freq="h")


def _config(source, variables, **data):
    return load_config({"data": {"source": str(source), "variables": variables, "splits": SPLITS, **data}})


def _ingest(tmp_path, source, variables, **data):
    cfg = _config(source, variables, **data)
    stats = ingest.ingest(cfg, None, tmp_path / "out.zarr", tmp_path / "out.json")
    return xr.open_zarr(tmp_path / "out.zarr"), stats


# --- names and units ---------------------------------------------------------------------------

def test_catalog_names_and_levels():
    assert catalog.parse_name("t@850") == ("t", 850.0) and catalog.parse_name("t2m") == ("t2m", None)
    assert catalog.resolve("t2m", ["2m_temperature", "x"]) == "2m_temperature"
    assert catalog.resolve("t2m", ["2t"]) == "2t"
    assert catalog.resolve("tp", ["total_precipitation"]) == "total_precipitation"
    assert catalog.resolve("u10", ["10m_u_component_of_wind"]) == "10m_u_component_of_wind"
    assert catalog.resolve("w@850", ["vertical_velocity"]) == "vertical_velocity"
    assert catalog.resolve("pr", ["precipitation_flux"]) == "precipitation_flux"
    assert catalog.resolve("anything", ["mine"], source_name="mine") == "mine"
    assert catalog.resolve("tp", ["pr"]) is None  # an amount and a flux are different quantities
    with pytest.raises(ValueError):
        catalog.parse_name("t@lots")


def test_precipitation_units_through_the_accumulation_period():
    assert transforms.unit_conversion("m", "mm h-1", step_hours=1.0) == (1000.0, 0.0)
    assert transforms.unit_conversion("m", "mm h-1", step_hours=6.0) == (1000.0 / 6, 0.0)
    assert transforms.unit_conversion("kg m**-2 s**-1", "mm", step_hours=24.0) == (86400.0, 0.0)
    assert transforms.unit_conversion("Pa", "hPa") == (0.01, 0.0)
    with pytest.raises(Exception, match="needs a regular time step"):
        transforms.unit_conversion("m", "mm h-1")


# --- layouts -----------------------------------------------------------------------------------

def test_old_cds_layout_with_expver_halves_and_levels(tmp_path):
    lat, lon = np.arange(50.0, 45.0, -0.5), np.arange(0.0, 5.0, 0.5)
    src = old_cds(HOURLY, lat, lon, expver_split="2001-01-08")
    src.to_netcdf(tmp_path / "old.nc")
    out, stats = _ingest(tmp_path, tmp_path / "old.nc", {"t@850": {}, "tp": {}})
    assert json.loads(out.attrs["channels"]) == ["t@850", "tp"]
    merged_t = src.t.sel(level=850).max("expver")  # exactly one half is non-NaN everywhere
    np.testing.assert_array_equal(out["t@850"].values, merged_t.values)
    np.testing.assert_allclose(out.tp.values, src.tp.max("expver").values * 1000, rtol=1e-6)
    assert out.tp.attrs["units"] == "mm" and stats["variables"]["tp"]["source_units"] == "m"
    provenance = json.loads(out.attrs["provenance"])
    assert provenance["expver_merged"] == "1,5" and provenance["variables"]["t@850"]["source_name"] == "t"
    assert stats["grid"]["mask"] is None and stats["grid"]["valid_cells"] == lat.size * lon.size


def test_new_cds_layout_matches_the_old_one(tmp_path):
    lat, lon = np.arange(50.0, 45.0, -0.5), np.arange(0.0, 5.0, 0.5)
    src = old_cds(HOURLY, lat, lon)
    src.to_netcdf(tmp_path / "old.nc")
    new_cds(src).to_netcdf(tmp_path / "new.nc")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old, old_stats = _ingest(tmp_path / "a", tmp_path / "old.nc", {"t@500": {}, "tp": {"units": "mm h-1"}})
    new, new_stats = _ingest(tmp_path / "b", tmp_path / "new.nc", {"t@500": {}, "tp": {"units": "mm h-1"}})
    xr.testing.assert_identical(old.drop_attrs(), new.drop_attrs())
    assert old_stats["variables"] == new_stats["variables"]
    np.testing.assert_allclose(new.tp.values, src.tp.values * 1000, rtol=1e-6)  # m per hour -> mm/h


def test_cfgrib_steps_become_one_time_axis():
    """cfgrib puts accumulations on (time, step) with a 2-D valid_time."""
    time = pd.date_range("2001-01-01T06:00", periods=2, freq="12h")
    step = pd.to_timedelta([1, 2, 3], unit="h")
    values = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    ds = xr.Dataset({"tp": (("time", "step", "latitude", "longitude"), values)},
                    coords={"time": time, "step": step, "latitude": [1.0, 0.0], "longitude": [0.0, 1.0],
                            "valid_time": (("time", "step"), time.values[:, None] + step.values[None, :]),
                            "surface": 0.0})
    out = sources.normalise_layout(ds, "x.grib")
    assert set(out.dims) == {"time", "latitude", "longitude"} and set(out.coords) == {"time", "latitude", "longitude"}
    assert list(pd.DatetimeIndex(out.time.values).hour) == [7, 8, 9, 19, 20, 21]
    np.testing.assert_array_equal(out.tp.transpose("time", ...).values.reshape(-1), values.reshape(-1))


def test_arco_like_zarr_with_greenwich_box_and_coarsening(tmp_path):
    store = tmp_path / "arco.zarr"
    src = arco_like(HOURLY)
    src.to_zarr(store, zarr_format=2, consolidated=True)
    out, stats = _ingest(tmp_path, store, {"t2m": {}, "tp": {"units": "mm h-1"}, "w@850": {}},
                         region={"lat": [44, 56], "lon": [-10, 6]})
    # the box crosses Greenwich: source longitudes 350..358 become -10..-2, then 0..6
    np.testing.assert_array_equal(out.longitude.values, np.arange(-10.0, 7.0, 2.0))
    np.testing.assert_array_equal(out.latitude.values, np.arange(56.0, 43.0, -2.0))
    t = "2001-01-05T13:00"
    np.testing.assert_array_equal(out.t2m.sel(time=t, longitude=-4.0).values,
                                  src["2m_temperature"].sel(time=t, longitude=356.0, latitude=slice(56, 44)).values)
    np.testing.assert_allclose(out["w@850"].sel(time=t).values,
                               src.vertical_velocity.sel(time=t, level=850, latitude=slice(56, 44)).roll(
                                   longitude=5).isel(longitude=slice(0, 9)).values)
    box = src.total_precipitation.sel(latitude=slice(56, 44)).isel(longitude=[*range(175, 180), *range(0, 4)])
    np.testing.assert_allclose(float(out.tp.sum()), 1000 * float(box.sum()), rtol=1e-5)
    assert stats["variables"]["tp"]["units"] == "mm h-1"

    (tmp_path / "c").mkdir()
    coarse, _ = _ingest(tmp_path / "c", store, {"t2m": {}}, region={"lat": [44, 56], "lon": [-10, 6]}, resolution=4.0)
    assert coarse.sizes["latitude"] == 3 and coarse.sizes["longitude"] == 4
    block = out.t2m.isel(latitude=slice(0, 2), longitude=slice(0, 2)).astype(float).mean(("latitude", "longitude"))
    np.testing.assert_allclose(coarse.t2m.isel(latitude=0, longitude=0).values, block.values, rtol=1e-6)
    assert coarse.latitude.values[0] == 55.0 and coarse.longitude.values[0] == -9.0


def test_weatherbench_layout_is_transposed_and_dateline_box(tmp_path):
    src = arco_like(HOURLY[:240]).transpose("time", "longitude", "latitude", "level")
    src = src.assign_coords(longitude=((src.longitude + 180) % 360) - 180).sortby("longitude")
    store = tmp_path / "wb2.zarr"
    src.to_zarr(store, zarr_format=3)  # zarr v3, as the ARCO "-v3" store: its codecs must not leak into ours
    out, _ = _ingest(tmp_path, store, {"t2m": {}}, region={"lat": [40, 60], "lon": [170, -170]})
    assert out.t2m.dims == ("time", "latitude", "longitude")
    np.testing.assert_array_equal(out.longitude.values, np.arange(170.0, 192.0, 2.0))
    np.testing.assert_array_equal(out.t2m.sel(time="2001-01-02", longitude=186.0).values,
                                  src["2m_temperature"].sel(time="2001-01-02", longitude=-174.0).values)


def test_daily_resampling_sums_amounts_and_averages_states(tmp_path):
    lat, lon = np.arange(50.0, 48.0, -0.5), np.arange(0.0, 2.0, 0.5)
    times = pd.date_range("2000-12-01T01:00", "2001-01-31T00:00", freq="h")
    src = old_cds(times, lat, lon)
    src.to_netcdf(tmp_path / "hourly.nc")
    splits = {"train": ["2000-12-01", "2000-12-31"], "validation": ["2001-01-01", "2001-01-15"],
              "test": ["2001-01-16", "2001-01-30"]}
    cfg = load_config({"data": {"source": str(tmp_path / "hourly.nc"), "variables": {"tp": {}, "t@1000": {}},
                                "resample": "1D", "splits": splits}})
    ingest.ingest(cfg, None, tmp_path / "d.zarr", tmp_path / "d.json")
    out = xr.open_zarr(tmp_path / "d.zarr")
    day = "2001-01-05"
    # ERA5 stamps accumulations at the end of the hour: the 5th's rain is 01:00 on the 5th .. 00:00 on the 6th
    expected_tp = src.tp.sel(time=slice("2001-01-05T01:00", "2001-01-06T00:00")).sum("time") * 1000
    np.testing.assert_allclose(out.tp.sel(time=day).values, expected_tp.values, rtol=1e-5)
    expected_t = src.t.sel(level=1000, time=slice("2001-01-05T00:00", "2001-01-05T23:00")).mean("time")
    np.testing.assert_allclose(out["t@1000"].sel(time=day).values, expected_t.values, rtol=1e-6)
    # 1 Dec lacks its 00:00 hour (t's mean) and 31 Jan its next hours: incomplete days are dropped
    assert pd.DatetimeIndex(out.time.values)[[0, -1]].strftime("%m-%d").tolist() == ["12-02", "01-30"]


def test_land_only_product_gets_a_mask(tmp_path):
    """Sea cells NaN at every time (as in WFDE5): the store and statistics know which cells are
    real, the normalised field is 0 there, and denormalised samples are NaN there."""
    lat, lon = np.arange(50.0, 47.0, -0.5), np.arange(0.0, 3.0, 0.5)
    src = old_cds(HOURLY, lat, lon)
    sea = np.zeros((lat.size, lon.size), dtype=bool)
    sea[:2, :3] = True
    src["tp"] = src.tp.where(~sea)
    src.to_netcdf(tmp_path / "land.nc")
    out, stats = _ingest(tmp_path, tmp_path / "land.nc", {"tp": {"transform": "log1p", "lower_bound": 0.0}})
    np.testing.assert_array_equal(out["mask"].values, (~sea).astype(np.uint8))
    assert stats["grid"]["valid_cells"] == sea.size - sea.sum()
    fields = normalised(tmp_path / "out.zarr").values
    assert np.all(fields[:, 0][:, sea] == 0)
    train = src.tp.sel(time=slice(*SPLITS["train"])).values[:, ~sea].astype(np.float32).astype(np.float64) * 1000
    assert stats["variables"]["tp"]["mean"] == pytest.approx(np.log1p(train).mean(), rel=1e-9)
    assert stats["variables"]["tp"]["std"] == pytest.approx(np.log1p(train).std(), rel=1e-7)
    back = denormalise(fields.astype(np.float64), stats)["tp"]
    assert np.isnan(back[:, sea]).all()
    # the way back inverts the store's values, except that amounts below the train split's
    # smallest wet value (which other splits may hold) come back dry (dry_below: auto)
    stored = out.tp.values[:, ~sea]
    expected = np.where(stored < stats["variables"]["tp"]["dry_below"], 0.0, stored)
    np.testing.assert_allclose(back[:, ~sea], expected, rtol=1e-5, atol=1e-7)


# --- bad input: one line naming the file and variable, nothing written -------------------------

@pytest.fixture
def small_nc(tmp_path):
    lat, lon = np.arange(50.0, 48.0, -0.5), np.arange(0.0, 2.0, 0.5)
    path = tmp_path / "small.nc"
    old_cds(HOURLY, lat, lon).to_netcdf(path)
    return path


def _refused(tmp_path, source, variables, match, **data):
    cfg = _config(source, variables, **data)
    with pytest.raises(IngestError, match=match) as info:
        ingest.ingest(cfg, None, tmp_path / "bad.zarr", tmp_path / "bad.json")
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("bad*"))


def test_unknown_level_is_named(tmp_path, small_nc):
    _refused(tmp_path, small_nc, {"t@700": {}}, r"small.nc: variable 't@700': level 700 hPa not in the source "
                                               r"\(levels: 500, 850, 1000\)")
    _refused(tmp_path, small_nc, {"t": {}},
             r"small.nc: variable 't' \('t'\) has 3 pressure levels; name one, e.g. 't@850'")
    _refused(tmp_path, small_nc, {"tp@850": {}},
             r"small.nc: variable 'tp@850' asks for level 850 but 'tp' has no pressure")


def test_grids_that_differ_between_files(tmp_path):
    lat = np.arange(50.0, 48.0, -0.5)
    old_cds(HOURLY[:120], lat, np.arange(0.0, 2.0, 0.5)).to_netcdf(tmp_path / "a_1.nc")
    old_cds(HOURLY[120:], lat, np.arange(0.25, 2.25, 0.5)).to_netcdf(tmp_path / "a_2.nc")
    _refused(tmp_path, tmp_path / "a_*.nc", {"tp": {}}, r"a_2.nc: grid differs from .*a_1.nc")


def test_duplicated_and_unordered_times(tmp_path):
    lat, lon = np.arange(50.0, 48.0, -0.5), np.arange(0.0, 2.0, 0.5)
    old_cds(HOURLY[:130], lat, lon).to_netcdf(tmp_path / "d_1.nc")
    old_cds(HOURLY[120:], lat, lon).to_netcdf(tmp_path / "d_2.nc")
    _refused(tmp_path, tmp_path / "d_*.nc", {"tp": {}}, r"d_2.nc: variable 'tp' overlaps in time with .*d_1.nc")
    shuffled = old_cds(HOURLY, lat, lon).isel(time=np.r_[0:50, 51, 50, 52:240])
    shuffled.to_netcdf(tmp_path / "unordered.nc")
    _refused(tmp_path, tmp_path / "unordered.nc", {"tp": {}},
             r"unordered.nc: time is not increasing \(2001-01-03 03:00:00 is followed by 2001-01-03 02:00:00\)")
    doubled = old_cds(HOURLY, lat, lon).isel(time=np.r_[0:51, 50:240])
    doubled.to_netcdf(tmp_path / "doubled.nc")
    _refused(tmp_path, tmp_path / "doubled.nc", {"tp": {}}, r"doubled.nc: duplicated time 2001-01-03 02:00:00")


def test_gaps_are_errors_unless_allowed(tmp_path):
    lat, lon = np.arange(50.0, 48.0, -0.5), np.arange(0.0, 2.0, 0.5)
    old_cds(HOURLY.delete(100), lat, lon).to_netcdf(tmp_path / "gap.nc")
    _refused(tmp_path, tmp_path / "gap.nc", {"tp": {}},
             r"gap.nc: 1 gap\(s\) in time, the first after 2001-01-05 03:00:00 .*set data.gaps: allow")
    out, _ = _ingest(tmp_path, tmp_path / "gap.nc", {"tp": {"units": "mm"}}, gaps="allow")
    assert out.sizes["time"] == 239


def test_all_nan_variable_empty_region_and_truncated_file(tmp_path, small_nc):
    ds = xr.open_dataset(small_nc).load()
    ds["tp"] = ds.tp * np.nan
    ds.to_netcdf(tmp_path / "nan.nc")
    _refused(tmp_path, tmp_path / "nan.nc", {"tp": {}}, r"nan.nc: variable 'tp' is missing \(NaN\) everywhere")
    _refused(tmp_path, small_nc, {"tp": {}}, r"small.nc: data.region .* selects no grid cell", region={"lat": [10, 20]})
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(small_nc.read_bytes()[:2000])
    _refused(tmp_path, truncated, {"tp": {}}, r"truncated.nc: cannot be read")
    _refused(tmp_path, small_nc, {"tp": {}}, r"data.resolution: 0.7 is not a whole multiple", resolution=0.7)


def test_missing_zarr_store_is_named(tmp_path):
    with pytest.raises(Exception, match="data.source: zarr store .*nowhere.zarr' does not exist"):
        _config(tmp_path / "nowhere.zarr", {"t2m": {}})


def test_remote_store_is_planned_not_opened():
    """Remote sources pass config validation without any file or network access."""
    cfg = _config("gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3", {"tp": {}},
                  storage_options={"token": "anon"})
    assert is_remote(cfg["data"]["source"]) and ingest.source_list(cfg) == [cfg["data"]["source"]]


def test_command_line_ingest(tmp_path, small_nc, capsys):
    from htweather import cli

    good = tmp_path / "good.yaml"
    good.write_text(json.dumps({"data": {"source": str(small_nc), "variables": {"t@850": {}}, "splits": SPLITS}}))
    assert cli.main(["check", str(good)]) == 0
    assert cli.main(["ingest", str(good), str(tmp_path / "cli.zarr")]) == 0
    assert json.loads((tmp_path / "cli.json").read_text())["channels"] == ["t@850"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"data": {"source": str(small_nc), "variables": {"t@925": {}}, "splits": SPLITS}}))
    assert cli.main(["ingest", str(bad), str(tmp_path / "no.zarr")]) == 2
    assert "level 925 hPa not in the source" in capsys.readouterr().err
    assert not (tmp_path / "no.zarr").exists()


def test_temporaries_of_killed_runs_are_removed(tmp_path, small_nc):
    """A run killed with -9 leaves `out.zarr.tmp-PID`; the next run removes it (the pid is
    dead) but leaves a live process's temporary alone."""
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"out.zarr.tmp-{int(dead.stdout)}"
    (stale / "t2m").mkdir(parents=True)
    live = tmp_path / f"out.zarr.tmp-{os.getppid()}"
    live.mkdir()
    _ingest(tmp_path, small_nc, {"tp": {}})
    assert not stale.exists() and live.exists()
    assert (tmp_path / "out.zarr").is_dir()


def test_store_time_range_is_selected_before_dask(tmp_path):
    """A remote store such as ARCO holds decades of hourly chunks: the time range is cut on the
    lazily indexed arrays, so the dask graph covers only the selected steps."""
    store = tmp_path / "arco.zarr"
    arco_like(HOURLY).to_zarr(store, zarr_format=2, consolidated=True)
    ds = sources.open_source([str(store)], {"t2m": {}, "w@850": {}}, time_range=("2001-01-03", "2001-01-04T23:00"),
                             time_multiple=8)
    assert ds.sizes["time"] == 48 and ds.t2m.data.chunks[0] == (48,)
    assert len(ds.t2m.data.dask) < 10
    with pytest.raises(IngestError, match=r"data.splits: 2030-01-01 .. 2030-01-31 selects no time of .*arco.zarr "
                                          r"\(2001-01-01 00:00:00 .. "):
        sources.open_source([str(store)], {"t2m": {}}, time_range=("2030-01-01", "2030-01-31"))


@pytest.mark.parametrize("units,factor", [("mm", 1.0), ("mm h-1", 1 / 24), ("mm day-1", 1.0)])
def test_resampling_sums_amounts_and_averages_rates(tmp_path, units, factor):
    """Hourly amounts in m: a day's total in mm, or its mean rate in mm/h or mm/day."""
    times = pd.date_range("2001-01-01T01:00", "2001-01-11T00:00", freq="h")
    rain = np.random.default_rng(3).uniform(0, 2e-3, (times.size, 2, 2)).astype("float32")
    xr.Dataset({"tp": (("time", "latitude", "longitude"), rain, {"units": "m"})},
               coords={"time": times, "latitude": [1.0, 0.0], "longitude": [0.0, 1.0]}).to_netcdf(tmp_path / "rain.nc")
    splits = {"train": ["2001-01-01", "2001-01-06"], "validation": ["2001-01-07", "2001-01-08"],
              "test": ["2001-01-09", "2001-01-10"]}
    cfg = load_config({"data": {"source": str(tmp_path / "rain.nc"), "variables": {"tp": {"units": units}},
                                "resample": "1D", "splits": splits}})
    ingest.ingest(cfg, None, tmp_path / "r.zarr", tmp_path / "r.json")
    out = xr.open_zarr(tmp_path / "r.zarr")
    daily_mm = rain.astype(np.float64).reshape(10, 24, 2, 2).sum(axis=1) * 1000  # (D 01:00, D+1 00:00]
    np.testing.assert_allclose(out.tp.values, daily_mm * factor, rtol=1e-5)
    assert out.sizes["time"] == 10


def test_float32_grids_keep_their_box_edges_and_cyclic_columns_appear_once(tmp_path):
    lat = np.arange(51.0, 49.95, -0.1).astype(np.float32)  # as old CDS files store them
    lon = np.arange(-11.0, -8.95, 0.1).astype(np.float32)
    times = pd.date_range("2001-01-01", "2001-01-10T23:00", freq="h")
    rng = np.random.default_rng(0)
    xr.Dataset({"t2m": (("time", "latitude", "longitude"), _field(rng, (times.size, lat.size, lon.size), 280),
                        {"units": "K"})}, coords={"time": times, "latitude": lat, "longitude": lon}
               ).to_netcdf(tmp_path / "f32.nc")
    out, _ = _ingest(tmp_path, tmp_path / "f32.nc", {"t2m": {}}, region={"lat": [50.1, 50.5], "lon": [-10.1, -9.7]})
    assert out.sizes["latitude"] == 5 and out.sizes["longitude"] == 5
    cyclic = arco_like(HOURLY[:48])
    cyclic = xr.concat([cyclic, cyclic.isel(longitude=[0]).assign_coords(longitude=[360.0])], dim="longitude")
    cyclic.to_zarr(tmp_path / "cyclic.zarr", zarr_format=2)
    (tmp_path / "c").mkdir()
    days = {"train": ["2001-01-01", "2001-01-01T11:00"], "validation": ["2001-01-01T12:00", "2001-01-01T23:00"],
            "test": ["2001-01-02", "2001-01-02T23:00"]}
    cfg = load_config({"data": {"source": str(tmp_path / "cyclic.zarr"), "variables": {"t2m": {}},
                                "region": {"lat": [40, 60], "lon": [-4, 4]}, "splits": days}})
    ingest.ingest(cfg, None, tmp_path / "c" / "o.zarr", tmp_path / "c" / "o.json")
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "c" / "o.zarr").longitude.values, [-4, -2, 0, 2, 4])


def test_each_source_chunk_is_read_once(tmp_path, small_nc, monkeypatch):
    """The fields and their statistics come from one read of every chunk (remote stores are
    slow and billed by the byte)."""
    import collections
    import threading

    reads, lock = collections.Counter(), threading.Lock()
    chunked = sources.time_chunked

    def counting(ds, *args, **kwargs):
        ds = chunked(ds, *args, **kwargs)
        for name in ds.data_vars:
            def count(block, block_info=None, name=name):
                with lock:
                    reads[(name, block_info[0]["chunk-location"])] += 1
                return block
            ds[name] = ds[name].copy(data=ds[name].data.map_blocks(count, dtype=ds[name].dtype))
        return ds

    monkeypatch.setattr(sources, "time_chunked", counting)
    xr.open_dataset(small_nc).load().isel(time=slice(0, 200)).to_netcdf(tmp_path / "two_chunks.nc")
    _ingest(tmp_path, tmp_path / "two_chunks.nc", {"tp": {}}, time_chunk=8,
            splits={"train": ["2001-01-01", "2001-01-05"], "validation": ["2001-01-06", "2001-01-07"],
                    "test": ["2001-01-08", "2001-01-09T07:00"]})
    assert len(reads) >= 1 and set(reads.values()) == {1}


def test_a_corrupted_chunk_is_named(tmp_path):
    times = pd.date_range("2001-01-01", "2001-01-10T23:00", freq="h")
    rng = np.random.default_rng(1)
    ds = xr.Dataset({"tp": (("time", "latitude", "longitude"), np.abs(_field(rng, (times.size, 40, 40), 0, 1e-3)),
                            {"units": "m"})},
                    coords={"time": times, "latitude": np.arange(60, 40, -0.5), "longitude": np.arange(0, 20, 0.5)})
    ds.to_netcdf(tmp_path / "whole.nc", encoding={"tp": {"zlib": True, "chunksizes": (24, 40, 40)}})
    raw = bytearray((tmp_path / "whole.nc").read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 20000] = bytes(20000)
    (tmp_path / "corrupt.nc").write_bytes(bytes(raw))
    _refused(tmp_path, tmp_path / "corrupt.nc", {"tp": {}}, r"corrupt.nc: reading the data failed \(RuntimeError")


def test_chunk_statistics_do_not_depend_on_completion_order():
    """Partial sums combine along a fixed tree: any order of chunks gives the same bits."""
    rng = np.random.default_rng(5)
    field = (280 + 5 * rng.standard_normal((53, 3, 4))).astype(np.float32)
    chunks = (8, 8, 8, 8, 8, 8, 5)
    is_train = np.arange(53) < 40
    results = []
    for order in (range(7), [6, 5, 4, 3, 2, 1, 0], [3, 0, 6, 1, 5, 2, 4]):
        sums = ingest.CellSums(chunks, is_train, "log1p", 280.0, np.arange(53) >= 46)
        starts = np.cumsum((0,) + chunks)
        for i in order:
            sums(field[starts[i]:starts[i + 1]], block_info={0: {"chunk-location": (i, 0, 0)}})
        results.append(sums.result())
    for other in results[1:]:
        for key in ingest.SUMS:
            np.testing.assert_array_equal(results[0][key], other[key])
    train = np.log1p(field[:40].astype(np.float64))
    np.testing.assert_allclose(results[0]["s1"], train.sum(0), rtol=1e-12)
    np.testing.assert_allclose(results[0]["s2"], (train**2).sum(0), rtol=1e-12)
    np.testing.assert_array_equal(results[0]["max"], field.max(0))
    assert (results[0]["n"] == 40).all() and (results[0]["missing"] == 0).all()
    assert (results[0]["validation_n"] == 7).all()
    np.testing.assert_array_equal(results[0]["validation_dry"], (field[46:] <= 280.0).sum(0))


def test_time_chunks_line_up_with_the_store():
    """Every task writes whole zarr chunks; sources already aligned keep their chunks."""
    assert ingest.plan_time_chunks((200, 200, 200, 120, 200, 200, 200, 120), 8, 200) == (200, 200, 200, 120) * 2
    assert ingest.plan_time_chunks((1,) * 50, 8, 16) == (16, 16, 16, 2)
    rng = np.random.default_rng(0)
    for _ in range(200):
        chunks = tuple(int(c) for c in rng.integers(1, 60, size=rng.integers(1, 12)))
        planned = ingest.plan_time_chunks(chunks, 8, int(rng.integers(8, 100)))
        assert sum(planned) == sum(chunks) and min(planned) > 0
        assert all(b % 8 == 0 for b in np.cumsum(planned)[:-1])


def test_remote_open_failure_is_one_line_and_quiet(monkeypatch, caplog):
    """fsspec/gcsfs log tracebacks on every retry; the user gets one line naming the store."""
    import logging

    def failing(*args, **kwargs):
        logging.getLogger("gcsfs").error("retrying\nTraceback (most recent call last): ...")
        raise OSError("Cannot connect to host storage.googleapis.com:443")

    monkeypatch.setattr(xr, "open_zarr", failing)
    with pytest.raises(IngestError) as info, caplog.at_level(logging.DEBUG):
        sources.open_zarr("gs://bucket/store.zarr", {"token": "anon"})
    assert str(info.value) == ("gs://bucket/store.zarr: cannot be opened as zarr "
                               "(OSError: Cannot connect to host storage.googleapis.com:443)")
    assert not [r for r in caplog.records if r.name == "gcsfs"]
    assert logging.getLogger("gcsfs").level == logging.NOTSET
