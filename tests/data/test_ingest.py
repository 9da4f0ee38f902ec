"""Ingestion: store layout, statistics from the train split only, exact transforms, unit
conversion, atomic writes and one-line errors; real ERA5-family files where present."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from htweather.config import load_config
from htweather.data import ingest, synthetic, transforms
from htweather.data.store import denormalise, load_split, normalised
from htweather.errors import IngestError


@pytest.fixture
def raw_files(tiny_config, tmp_path):
    return [str(f) for f in synthetic.write_netcdf(tiny_config["data"]["synthetic"], tmp_path / "raw", seed=1)]


def data_only(config: dict) -> dict:
    """The config without its models: these tests change the variables, which the tiny config's
    per-variable nu, sweep and comparisons are written for."""
    return {k: v for k, v in config.items() if k not in ("models", "nu_sweep", "comparisons")}


@pytest.fixture
def ingested(tiny_config, raw_files, tmp_path):
    store, stats_path = tmp_path / "store.zarr", tmp_path / "stats.json"
    stats = ingest.ingest(tiny_config, raw_files, store, stats_path)
    return store, stats_path, stats


def test_store_layout_and_splits(ingested, tiny_config):
    store, stats_path, stats = ingested
    ds = xr.open_zarr(store)
    fields = normalised(store)
    assert fields.dims == ("time", "variable", "latitude", "longitude")
    assert list(fields["variable"].values) == ["t2m", "w", "tp"]
    assert ds.t2m.encoding["chunks"] == (tiny_config["data"]["time_chunk"], 12, 12)
    assert (store / ".zmetadata").exists(), "consolidated metadata"
    split = pd.Series(ds.split.values)
    assert list(split.unique()) == ["train", "validation", "test"]
    assert stats["splits"]["train"]["n_times"] == 31 * 4
    assert stats["splits"]["test"]["start"].startswith("2000-02-15")
    assert json.loads(stats_path.read_text()) == stats
    assert np.all(np.diff(ds.latitude.values) < 0)


def test_statistics_come_from_the_train_split_only(ingested, raw_files):
    store, _, stats = ingested
    raw = xr.open_mfdataset(raw_files)
    train = raw.sel(time=slice("2000-01-01", "2000-01-31T18:00"))
    for name, scale in (("t2m", 1.0), ("w", 1.0), ("tp", 1000.0)):
        # the statistics are of the transformed values (tp: the cube root, the default)
        values = transforms.forward(stats["variables"][name]["transform"],
                                    train[name].values.astype(np.float64) * scale)
        assert stats["variables"][name]["mean"] == pytest.approx(values.mean(), rel=1e-6)
        assert stats["variables"][name]["std"] == pytest.approx(values.std(), rel=1e-6)
    train_norm = load_split(store, "train")
    np.testing.assert_allclose(train_norm.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(train_norm.std(axis=(0, 2, 3)), 1, atol=1e-4)
    test_norm = load_split(store, "test")
    assert not np.allclose(test_norm.mean(axis=(0, 2, 3)), 0, atol=1e-5)


def test_trace_amount_is_the_smallest_wet_train_value(ingested, raw_files, tiny_config, tmp_path):
    store, _, stats = ingested
    raw = xr.open_mfdataset(raw_files)
    train = raw.tp.sel(time=slice("2000-01-01", "2000-01-31T18:00")).values.astype(np.float32) * np.float32(1000)
    smallest = float(train[train > 0].min())
    for key in ("smallest_wet", "trace", "dry_below"):  # auto: the smallest wet train value
        assert stats["variables"]["tp"][key] == pytest.approx(smallest, rel=1e-6)
        assert stats["variables"]["t2m"][key] is None  # no lower bound
    # what generation calibrates its dry threshold to (dry_below: auto): the validation split's
    # exactly-dry fraction, which here differs from the other splits'
    ds = xr.open_zarr(store)
    split = ds.split.values
    dry = {name: float((ds.tp.values[split == name] <= 0).mean()) for name in ("train", "validation")}
    assert stats["variables"]["tp"]["validation_dry_fraction"] == pytest.approx(dry["validation"], abs=1e-12)
    assert dry["validation"] != pytest.approx(dry["train"], abs=1e-3)
    assert stats["variables"]["tp"]["dry_below_rule"] == "calibrated"
    assert stats["variables"]["t2m"]["validation_dry_fraction"] is None
    # a number is taken as it is; null is none
    cfg = data_only(tiny_config)
    cfg["data"]["variables"] = {"tp": {"units": "mm", "lower_bound": 0.0, "trace": 0.5}}
    given = ingest.ingest(load_config(cfg), raw_files, tmp_path / "t.zarr", tmp_path / "t.json")["variables"]["tp"]
    assert given["trace"] == 0.5 and given["dry_below"] == pytest.approx(smallest, rel=1e-6)
    cfg["data"]["variables"] = {"tp": {"units": "mm", "lower_bound": 0.0, "dry_below": "smallest_wet"}}
    fixed = ingest.ingest(load_config(cfg), raw_files, tmp_path / "f.zarr", tmp_path / "f.json")["variables"]["tp"]
    assert fixed["dry_below"] == given["dry_below"] and fixed["dry_below_rule"] == "fixed"
    cfg["data"]["variables"] = {"tp": {"units": "mm", "lower_bound": 0.0, "trace": None, "dry_below": None}}
    none = ingest.ingest(load_config(cfg), raw_files, tmp_path / "n.zarr", tmp_path / "n.json")["variables"]["tp"]
    assert none["trace"] is None and none["dry_below"] is None and none["smallest_wet"] == given["smallest_wet"]


def test_units_converted_and_values_kept(ingested, raw_files):
    store, _, stats = ingested
    ds = xr.open_zarr(store)
    raw = xr.open_mfdataset(raw_files)
    assert ds.tp.attrs["units"] == "mm" and stats["variables"]["tp"]["source_units"] == "m"
    t = "2000-02-20T06:00"
    np.testing.assert_allclose(ds.tp.sel(time=t).values, raw.tp.sel(time=t).values * 1000, rtol=1e-6)
    np.testing.assert_array_equal(ds.w.sel(time=t).values, raw.w.sel(time=t).values)
    assert stats["variables"]["tp"]["tails"] == "upper"
    assert stats["variables"]["w"]["tails"] == "lower"  # pressure velocity: its ascent
    assert stats["variables"]["t2m"]["tails"] == "both"


def test_denormalise_inverts_normalisation(ingested):
    store, _, stats = ingested
    ds = xr.open_zarr(store)
    physical = denormalise(normalised(store).values.astype(np.float64), stats)
    for name in ("t2m", "w", "tp"):
        np.testing.assert_allclose(physical[name], ds[name].values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(transforms.TRANSFORMS))
def test_transforms_are_exact_bijections(name):
    x = np.concatenate([np.linspace(0, 50, 101), np.array([1e-8, 3.5, 1234.5])])
    if name != "log1p":
        x = np.concatenate([x, -x])
    np.testing.assert_allclose(transforms.inverse(name, transforms.forward(name, x)), x, rtol=1e-12, atol=1e-12)


def test_log1p_transform_round_trip_through_store(tiny_config, raw_files, tmp_path):
    cfg = load_config({**data_only(tiny_config), "data": {**tiny_config["data"], "variables": {
        "tp": {"transform": "log1p", "units": "mm", "lower_bound": 0.0}}}})
    stats = ingest.ingest(cfg, raw_files, tmp_path / "s.zarr", tmp_path / "s.json")
    ds = xr.open_zarr(tmp_path / "s.zarr")
    back = denormalise(normalised(tmp_path / "s.zarr").values.astype(np.float64), stats)["tp"]
    np.testing.assert_allclose(back, ds.tp.values, rtol=1e-5, atol=1e-6)


def test_region_crop_and_latitude_order(tiny_config, raw_files, tmp_path):
    cfg = load_config({**data_only(tiny_config), "data": {**tiny_config["data"], "region": {"lat": [56.0, 57.5], "lon": [-9.5, -8.0]}}})
    stats = ingest.ingest(cfg, raw_files, tmp_path / "r.zarr", tmp_path / "r.json")
    assert stats["grid"]["latitude"] == [57.5, 57.25, 57.0, 56.75, 56.5, 56.25, 56.0]
    assert stats["grid"]["longitude"][0] == -9.5 and stats["grid"]["longitude"][-1] == -8.0


def test_missing_variable_names_file_and_leaves_nothing(tiny_config, raw_files, tmp_path):
    cfg = load_config({**data_only(tiny_config), "data": {**tiny_config["data"], "source": raw_files[0],
                                               "variables": {"msl": {}}}})
    with pytest.raises(IngestError) as info:
        ingest.ingest(cfg, raw_files, tmp_path / "bad.zarr", tmp_path / "bad.json")
    assert str(info.value) == (f"{raw_files[0]}: variable 'msl' not found (looked for msl, "
                               f"mean_sea_level_pressure, psl; source has: t2m, w, tp)")
    assert not list(tmp_path.glob("bad*"))


def test_unreadable_file_is_named(tiny_config, tmp_path):
    broken = tmp_path / "broken.nc"
    broken.write_bytes(b"CDF\x01 truncated")
    with pytest.raises(IngestError, match="broken.nc: cannot be read"):
        ingest.ingest(tiny_config, [str(broken)], tmp_path / "x.zarr", tmp_path / "x.json")
    assert not (tmp_path / "x.zarr").exists()


def test_values_missing_at_some_times_are_masked_at_those_times(tiny_config, raw_files, tmp_path):
    """A cell missing at some times only (an outage) stays in the grid's mask and is missing at
    those times: NaN in the store and in the normalised split, left out of the statistics; a cell
    missing at every time is masked; a sentinel (missing_value) counts as missing."""
    ds = xr.open_dataset(raw_files[0]).load()
    ds["w"][5, 2, 2] = np.nan  # a train time
    ds["w"][6:9, 3, 4] = -999.0  # three train times, as a sentinel
    ds["tp"][:, 0, 0] = np.nan  # never any data: masked
    holed = tmp_path / "holed.nc"
    ds.to_netcdf(holed)
    cfg = load_config({**data_only(tiny_config), "data": {**tiny_config["data"], "variables": {
        "t2m": {}, "w": {"missing_value": -999.0}, "tp": {"units": "mm", "lower_bound": 0.0}}}})
    stats = ingest.ingest(cfg, [str(holed)], tmp_path / "h.zarr", tmp_path / "h.json")
    out = xr.open_zarr(tmp_path / "h.zarr")
    mask = out["mask"].values.astype(bool)
    assert not mask[0, 0] and mask[2, 2] and mask[3, 4] and mask.sum() == mask.size - 1
    assert stats["grid"]["missing_at_some_times"] == {"t2m": 0, "w": 4, "tp": 0}
    assert np.isnan(out.w.values[5, 2, 2]) and np.isnan(out.w.values[6:9, 3, 4]).all()
    assert np.isfinite(out.w.values[4, 2, 2]) and np.isfinite(out.w.values[9, 3, 4])
    train = ds["w"].sel(time=slice("2000-01-01", "2000-01-31T18:00")).values.astype(np.float64)
    train[:, 0, 0] = np.nan  # the masked cell (no tp there) does not count
    train[train == -999.0] = np.nan
    assert stats["variables"]["w"]["mean"] == pytest.approx(np.nanmean(train), rel=1e-6)
    assert stats["variables"]["w"]["std"] == pytest.approx(np.nanstd(train), rel=1e-6)
    fields = load_split(tmp_path / "h.zarr", "train")
    w = fields[:, 1]
    assert np.isnan(w[5, 2, 2]) and np.isnan(w[6:9, 3, 4]).all() and np.isnan(w).sum() == 4
    assert (fields[:, :, 0, 0] == 0).all()  # masked for good: 0, as before


def test_missing_everywhere_is_refused_without_partial_output(tiny_config, raw_files, tmp_path):
    ds = xr.open_dataset(raw_files[0]).load()
    ds["w"][:] = np.nan
    holed = tmp_path / "holed.nc"
    ds.to_netcdf(holed)
    with pytest.raises(IngestError, match=r"holed.nc: variable .w. is missing \(NaN\) everywhere"):
        ingest.ingest(tiny_config, [str(holed)], tmp_path / "h.zarr", tmp_path / "h.json")
    assert not list(tmp_path.glob("h.zarr*")) and not list(tmp_path.glob("h.json*"))


def test_new_cds_layout_with_valid_time(tiny_config, raw_files, tmp_path):
    """Files from the new CDS name the time dimension valid_time."""
    new = xr.open_dataset(raw_files[0]).load().rename({"time": "valid_time"})
    path = tmp_path / "new_cds.nc"
    new.to_netcdf(path)
    stats = ingest.ingest(tiny_config, [str(path)], tmp_path / "n.zarr", tmp_path / "n.json")
    out = xr.open_zarr(tmp_path / "n.zarr")
    assert "time" in out.dims and stats["splits"]["test"]["n_times"] == 15 * 4
    np.testing.assert_array_equal(out.w.sel(time="2000-02-20").values, new.w.sel(valid_time="2000-02-20").values)


def test_split_outside_data_is_refused(tiny_config, raw_files, tmp_path):
    cfg = load_config({**data_only(tiny_config), "data": {**tiny_config["data"], "source": raw_files[0],
                                               "splits": {**tiny_config["data"]["splits"], "test": ["2001-01-01", "2001-02-01"]}}})
    with pytest.raises(IngestError, match="data.splits.test"):
        ingest.ingest(cfg, raw_files, tmp_path / "s.zarr", tmp_path / "s.json")


def test_unknown_unit_conversion_is_named():
    with pytest.raises(Exception, match="data.variables.tp.units: cannot convert 'm' to 'furlong'"):
        transforms.unit_conversion("m", "furlong", where="data.variables.tp.units")
    assert transforms.unit_conversion("kg m**-2 s**-1", "mm/h") == (3600.0, 0.0)
    assert transforms.unit_conversion("K", None) == (1.0, 0.0)


# --- Real ERA5-family files (../shared/data/era5-samples), skipped when absent -----------------

def _real_config(source, variables, splits):
    return load_config({"data": {"source": source, "variables": variables, "splits": splits}})


def test_real_w5e5_daily_precipitation(samples_dir, tmp_path):
    path = samples_dir / "w5e5-daily-pr-1979-2014.nc"
    cfg = _real_config(str(path), {"pr": {"units": "mm day-1", "lower_bound": 0.0}},
                       {"train": ["1979-01-01", "2004-12-31"], "validation": ["2005-01-01", "2008-12-31"],
                        "test": ["2009-01-01", "2014-12-31"]})
    stats = ingest.ingest(cfg, [str(path)], tmp_path / "w5e5.zarr", tmp_path / "w5e5.json")
    src = xr.open_dataset(path)
    out = xr.open_zarr(tmp_path / "w5e5.zarr")
    assert out.pr.attrs["units"] == "mm day-1"
    # a selected cell and day, and the whole test-period sum, against the source
    cell = dict(time="2010-07-14", latitude=float(src.lat[1]), longitude=float(src.lon[2]))
    expected = float(src.pr.sel(time=cell["time"], lat=cell["latitude"], lon=cell["longitude"])) * 86400
    assert float(out.pr.sel(**cell)) == pytest.approx(expected, rel=1e-6)
    test_sum = src.pr.sel(time=slice("2009-01-01", "2014-12-31")).sum().item() * 86400
    assert float(out.pr.sel(time=out.split == "test").sum()) == pytest.approx(test_sum, rel=1e-5)
    assert stats["variables"]["pr"]["tails"] == "upper"
    assert np.all(np.diff(out.latitude.values) < 0)
    assert stats["splits"]["train"]["n_times"] == len(pd.date_range("1979-01-01", "2004-12-31"))
    train = out.pr.sel(time=out.split == "train").values
    assert stats["variables"]["pr"]["smallest_wet"] == float(train[train > 0].min())


def test_real_wfde5_land_box_across_files(samples_dir, tmp_path):
    files = sorted(str(p) for p in (samples_dir / "wfde5-uk-2017-01").glob("*.nc"))
    cfg = load_config({"data": {
        "source": str(samples_dir / "wfde5-uk-2017-01" / "*.nc"),
        "variables": {"pr": {"units": "mm/h", "lower_bound": 0.0}, "Wind": {}, "Tair": {"units": "degC"}},
        "region": {"lat": [52.0, 54.0], "lon": [-2.5, 0.0]},  # inland England: no sea cells
        "splits": {"train": ["2017-01-01", "2017-01-20T23:00"], "validation": ["2017-01-21", "2017-01-25T23:00"],
                   "test": ["2017-01-26", "2017-01-31T23:00"]}}})
    stats = ingest.ingest(cfg, files, tmp_path / "wfde5.zarr", tmp_path / "wfde5.json")
    out = xr.open_zarr(tmp_path / "wfde5.zarr")
    src = xr.open_dataset(samples_dir / "wfde5-uk-2017-01" / "air_temperature.nc")
    t, lat, lon = "2017-01-10T12:00", 53.25, -1.25
    assert float(out.Tair.sel(time=t, latitude=lat, longitude=lon)) == pytest.approx(
        float(src.Tair.sel(time=t, lat=lat, lon=lon)) - 273.15, abs=1e-4)
    assert out.pr.attrs["units"] == "mm/h" and stats["variables"]["pr"]["tails"] == "upper"
    assert stats["variables"]["Wind"]["units"] == "m s-1"
    assert stats["variables"]["Tair"]["tails"] == "both"


def test_real_wfde5_with_its_land_sea_mask(samples_dir, tmp_path):
    """The whole WFDE5 box: sea cells are NaN in the source and masked in the store; the
    statistics come from land cells of the train split; values and sums match the source."""
    folder = samples_dir / "wfde5-uk-2017-01"
    cfg = load_config({"data": {
        "source": str(folder / "*.nc"),
        "variables": {"pr": {"transform": "log1p", "lower_bound": 0.0}, "Wind": {}, "Tair": {}},
        "splits": {"train": ["2017-01-01", "2017-01-20T23:00"], "validation": ["2017-01-21", "2017-01-25T23:00"],
                   "test": ["2017-01-26", "2017-01-31T23:00"]}}})
    stats = ingest.ingest(cfg, None, tmp_path / "wfde5.zarr", tmp_path / "wfde5.json")
    out = xr.open_zarr(tmp_path / "wfde5.zarr")
    src = xr.open_dataset(folder / "precipitation_flux.nc")
    land = src.pr.notnull().all("time").values[::-1]  # the store's latitude runs north to south
    np.testing.assert_array_equal(out["mask"].values.astype(bool), land)
    assert stats["grid"]["valid_cells"] == land.sum() and 0.3 < land.mean() < 0.6
    assert stats["variables"]["pr"]["units"] == "mm h-1" and out.pr.attrs["source_units"] == "kg m-2 s-1"
    t, lat, lon = "2017-01-12T15:00", 52.25, -1.75
    assert float(out.pr.sel(time=t, latitude=lat, longitude=lon)) == pytest.approx(
        float(src.pr.sel(time=t, lat=lat, lon=lon)) * 3600, rel=1e-6)
    assert float(out.pr.sum()) == pytest.approx(float(src.pr.sum()) * 3600, rel=1e-5)
    train = np.log1p(src.pr.sel(time=slice("2017-01-01", "2017-01-20T23:00")).values.astype(np.float64) * 3600)
    train32 = np.log1p((src.pr.sel(time=slice("2017-01-01", "2017-01-20T23:00")).values * np.float32(3600)
                        ).astype(np.float64))
    assert stats["variables"]["pr"]["mean"] == pytest.approx(np.nanmean(train32), rel=1e-6)
    assert stats["variables"]["pr"]["std"] == pytest.approx(np.nanstd(train), rel=1e-4)
    assert np.all(normalised(tmp_path / "wfde5.zarr").values[:, :, ~land] == 0)
    assert stats["variables"]["Tair"]["units"] == "K" and stats["variables"]["Wind"]["tails"] == "upper"


def test_real_era5_monthly_with_expver_halves(samples_dir, tmp_path):
    """The CDS file with ERA5 (expver 1) and ERA5T (expver 5) halves: merged, nothing missing."""
    path = samples_dir / "ERA5_monthly_t2m_msl_tp.nc"
    cfg = _real_config(str(path), {"t2m": {}, "msl": {"units": "hPa"}, "tp": {}},
                       {"train": ["1979-01-01", "2009-12-31"], "validation": ["2010-01-01", "2014-12-31"],
                        "test": ["2015-01-01", "2022-04-01"]})
    stats = ingest.ingest(cfg, None, tmp_path / "m.zarr", tmp_path / "m.json")
    out = xr.open_zarr(tmp_path / "m.zarr")
    src = xr.open_dataset(path)
    assert stats["grid"]["mask"] is None and out.sizes["time"] == 520
    merged = src.t2m.sel(expver=1).fillna(src.t2m.sel(expver=5))
    assert int(merged.isnull().sum()) == 0
    np.testing.assert_allclose(out.t2m.values, merged.values, rtol=1e-6)
    last = src.tp.sel(time="2022-04-01")  # the newest month exists only as ERA5T
    assert bool(last.sel(expver=1).isnull().all()) and bool(last.sel(expver=5).notnull().all())
    np.testing.assert_allclose(out.tp.sel(time="2022-04-01").values, last.sel(expver=5).values * 1000, rtol=1e-6)
    np.testing.assert_allclose(out.msl.sel(time="1990-07-01").values,
                               src.msl.sel(time="1990-07-01", expver=1).values / 100, rtol=1e-6)
    assert stats["variables"]["tp"]["units"] == "mm" and stats["variables"]["msl"]["units"] == "hPa"
    assert json.loads(out.attrs["provenance"])["expver_merged"] == "1,5"


def test_real_grib_2m_temperature(samples_dir, tmp_path):
    path = samples_dir / "era5-2mt-2019-03-uk.grib"
    cfg = _real_config(str(path), {"t2m": {}}, {"train": ["2019-03-01", "2019-03-20T23:00"],
                                               "validation": ["2019-03-21", "2019-03-25T23:00"],
                                               "test": ["2019-03-26", "2019-03-31T23:00"]})
    stats = ingest.ingest(cfg, [str(path)], tmp_path / "g.zarr", tmp_path / "g.json")
    out = xr.open_zarr(tmp_path / "g.zarr")
    src = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    assert out.sizes["latitude"] == 33 and out.sizes["longitude"] == 49
    np.testing.assert_array_equal(out.t2m.sel(time="2019-03-05T06:00").values,
                                  src.t2m.sel(time="2019-03-05T06:00").values)
    assert stats["variables"]["t2m"]["units"] == "K"


# --- Real MRMS radar frames (../shared/data/radar-samples), skipped when absent -----------------

def test_real_mrms_frames_with_a_coverage_mask_that_changes(radar_dir, tmp_path):
    """Three MRMS GRIB2 frames (one field per file, variable `unknown` from the local parameter
    table, -3 = no radar coverage) over a box at the edge of coverage in British Columbia: cells
    never covered are masked, cells covered in some frames only are missing in the others, and
    the values are the source's."""
    files = sorted(str(p) for p in radar_dir.glob("*.grib2"))[:11:5]  # 00:00, 00:10, 00:20
    cfg = load_config({"data": {
        "source": str(radar_dir / "*.grib2"),
        "variables": {"rain": {"source_name": "unknown", "source_units": "mm h-1", "missing_value": -3,
                               "lower_bound": 0.0}},
        "region": {"lat": [52.0, 53.0], "lon": [-123.0, -122.0]},
        "splits": {"train": ["2019-06-10T00:00", "2019-06-10T00:05"],
                   "validation": ["2019-06-10T00:06", "2019-06-10T00:15"],
                   "test": ["2019-06-10T00:16", "2019-06-10T00:30"]}}})
    stats = ingest.ingest(cfg, files, tmp_path / "mrms.zarr", tmp_path / "mrms.json")
    out = xr.open_zarr(tmp_path / "mrms.zarr")
    source = []
    for path in files:
        with xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""}) as ds:
            box = ds["unknown"].sel(latitude=slice(53.0, 52.0), longitude=slice(237.0, 238.0))
            source.append(box.values.astype(np.float64))
    source = np.stack(source)
    assert out.rain.shape == source.shape == (3, 100, 100)
    covered = source != -3
    np.testing.assert_array_equal(out["mask"].values.astype(bool), covered.any(0))
    partial = covered.any(0) & ~covered.all(0)
    assert partial.sum() > 100  # the coverage edge moves between frames
    assert stats["grid"]["missing_at_some_times"]["rain"] == int((~covered[:, covered.any(0)]).sum())
    stored = out.rain.values.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(stored), ~covered)
    np.testing.assert_allclose(stored[covered], source[covered], rtol=1e-6)
    assert stats["variables"]["rain"]["units"] == "mm h-1" and stats["variables"]["rain"]["source_name"] == "unknown"
    assert stats["variables"]["rain"]["mean"] == pytest.approx(source[0][covered[0]].mean(), rel=1e-6)
    assert str(out.time.values[2]).startswith("2019-06-10T00:20")
