"""GRIB as it comes: ERA5 ensemble members (one chosen, or all as fields of their time), files
of mixed messages that cfgrib opens only with a filter (data.grib_filter), one pressure level,
and truncated files called truncated in one line. The files are made with eccodes
(conftest.write_grib_ensemble); the real ERA5 GRIB and MRMS frames where present."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import write_grib_ensemble

from htweather.config import load_config
from htweather.data import ingest, sources
from htweather.errors import ConfigError, HtweatherError, IngestError

TIMES = pd.date_range("2001-01-01", periods=12, freq="6h")
SPLITS = {"train": ["2001-01-01", "2001-01-02T18:00"], "validation": ["2001-01-03", "2001-01-03T06:00"],
          "test": ["2001-01-03T12:00", "2001-01-03T18:00"]}


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    path = tmp_path_factory.mktemp("grib") / "era5-ensemble.grib"
    return path, write_grib_ensemble(path, TIMES)


def config(path, **data) -> dict:
    return load_config({"data": {"source": str(path), "splits": SPLITS, "time_chunk": 4,
                                 "variables": {"t@850": {}, "t@500": {}}, **data}})


def test_members_as_samples_keep_each_time_together(ensemble, tmp_path):
    path, values = ensemble
    stats = ingest.ingest(config(path, members="samples"), None, tmp_path / "s.zarr", tmp_path / "s.json")
    store = xr.open_zarr(tmp_path / "s.zarr")
    assert store.sizes["time"] == 12 * 10 and stats["fields_per_time"] == 10
    assert (store.member.values == np.tile(np.arange(10), 12)).all()
    assert (store.time.values == np.repeat(TIMES.values, 10)).all()  # a time's members are neighbours
    labels = store.split.values.reshape(12, 10)
    assert (labels == labels[:, :1]).all()  # ... and share its split
    assert {s: stats["splits"][s]["n_times"] for s in SPLITS} == {"train": 8, "validation": 2, "test": 2}
    assert stats["splits"]["train"]["n_fields"] == 80
    # field 10 * i + m is member m at time i (GRIB packing: 16 bits over the field's range)
    np.testing.assert_allclose(store["t@500"].values[10 * 5 + 7], values[5, 1, 7], atol=0.01)
    np.testing.assert_allclose(store["t@850"].values[3], values[0, 0, 3], atol=0.01)


def test_one_member_chosen(ensemble, tmp_path):
    path, values = ensemble
    ingest.ingest(config(path, members=4), None, tmp_path / "m.zarr", tmp_path / "m.json")
    store = xr.open_zarr(tmp_path / "m.zarr")
    assert store.sizes["time"] == 12 and "member" not in store.coords
    np.testing.assert_allclose(store["t@850"].values, values[:, 0, 4], atol=0.01)


@pytest.mark.parametrize("members, expected", [
    (None, r"has 10 ensemble members \(numbers 0, 1, 2, .*, 9\): set data.members to one member's number "
           r"\(e.g. 0\), or to samples to take every member as a field of its time"),
    (12, r"data.members: 12 is not a member of .*era5-ensemble.grib \(its members: 0, 1, .*, 9\)"),
])
def test_members_unset_or_absent_are_refused_in_one_line(ensemble, members, expected):
    with pytest.raises(IngestError, match=expected):
        ingest.check_source(config(ensemble[0], members=members))


def test_members_as_samples_serve_unconditional_models_only(ensemble):
    with pytest.raises(ConfigError, match=r"data.members: samples .* the forecast model 'fc' needs sequences"):
        load_config({"data": {"source": str(ensemble[0]), "splits": SPLITS, "members": "samples",
                              "variables": {"t@850": {}}},
                     "models": {"fc": {"family": "edm", "nu": 5, "condition_steps": 1}}, "comparisons": []})


def test_mixed_grib_is_refused_naming_the_filter_and_read_with_it(tmp_path):
    """`t` on pressure levels and on a model level in one file: cfgrib's DatasetBuildError with its
    several-line hint becomes one line naming data.grib_filter and cfgrib's choices."""
    path = tmp_path / "mixed.grib"
    values = write_grib_ensemble(path, TIMES, members=1, hybrid_too=True)
    with pytest.raises(IngestError) as error:
        ingest.check_source(config(path))
    assert str(error.value) == (f"{path}: holds GRIB messages of several kinds that cfgrib cannot put in one "
                                f"dataset: choose one with data.grib_filter, e.g. {{typeOfLevel: isobaricInhPa}} or "
                                f"{{typeOfLevel: hybrid}}")
    cfg = config(path, grib_filter={"typeOfLevel": "isobaricInhPa"})
    ingest.ingest(cfg, None, tmp_path / "f.zarr", tmp_path / "f.json")
    np.testing.assert_allclose(xr.open_zarr(tmp_path / "f.zarr")["t@500"].values, values[:, 1, 0], atol=0.01)


def test_one_pressure_level_is_still_a_level(tmp_path):
    """A request for one level: cfgrib gives it as a scalar coordinate, which the layout keeps as
    a level (it was dropped, and 't@850' refused as having no pressure levels)."""
    path = tmp_path / "t850.grib"
    values = write_grib_ensemble(path, TIMES, levels=(850,), members=1)
    cfg = load_config({"data": {"source": str(path), "splits": SPLITS, "variables": {"t@850": {}}}})
    ingest.ingest(cfg, None, tmp_path / "l.zarr", tmp_path / "l.json")
    np.testing.assert_allclose(xr.open_zarr(tmp_path / "l.zarr")["t@850"].values, values[:, 0, 0], atol=0.01)
    cfg = load_config({"data": {"source": str(path), "splits": SPLITS, "variables": {"t@500": {}}}})
    with pytest.raises(IngestError, match=r"level 500 hPa not in the source \(levels: 850\)"):
        ingest.check_source(cfg)


def test_truncated_grib_is_called_truncated(ensemble, tmp_path):
    """cfgrib reads a file cut short as its whole messages only (a shorter series, with a logged
    traceback); here it is refused in one line, whatever the variable asked for."""
    path, _ = ensemble
    data = path.read_bytes()
    cut = tmp_path / "cut.grib"
    cut.write_bytes(data[: len(data) * 2 // 3 + 37])  # messages are of equal length: cut inside one
    with pytest.raises(IngestError, match=r"cut.grib: truncated: GRIB message \d+ at byte \d+ needs \d+ bytes and "
                                          r"the file ends after \d+; copy or download the file again") as error:
        ingest.check_source(config(cut, members="samples"))
    assert "\n" not in str(error.value)
    garbage = tmp_path / "garbage.grib"
    garbage.write_bytes(b"<html>not found</html>" * 10)
    with pytest.raises(IngestError, match=r"garbage.grib: not a GRIB file past byte 0 \(after 0 message\(s\)\)"):
        ingest.check_source(config(garbage))


def test_message_walk_agrees_with_eccodes_on_real_files(samples_dir, tmp_path):
    real = samples_dir / "era5-2mt-2019-03-uk.grib"
    assert sources.check_grib_messages(str(real)) == 744  # eccodes counts 744
    data = real.read_bytes()
    cut = tmp_path / "era5-2mt-cut.grib"
    cut.write_bytes(data[:300000])  # cfgrib reads this as 89 hourly fields, silently
    cfg = load_config({"data": {"source": str(cut), "variables": {"t2m": {}},
                                "splits": {"train": ["2019-03-01", "2019-03-02T23:00"],
                                           "validation": ["2019-03-03", "2019-03-03T11:00"],
                                           "test": ["2019-03-03T12:00", "2019-03-03T23:00"]}}})
    with pytest.raises(HtweatherError, match=r"era5-2mt-cut.grib: truncated: GRIB message 90 at byte"):
        ingest.check_source(cfg)


def test_message_walk_reads_mrms_frames(radar_dir):
    frame = sorted(radar_dir.glob("*.grib2"))[0]
    assert sources.check_grib_messages(str(frame)) == 1


def test_one_file_per_level(tmp_path):
    """The CDS often delivers one file per pressure level: each file holds `t` at its level only."""
    values = {level: write_grib_ensemble(tmp_path / f"t{level}.grib", TIMES, levels=(level,), members=1, seed=level)
              for level in (850, 500)}
    ingest.ingest(config(tmp_path / "t*.grib"), None, tmp_path / "l.zarr", tmp_path / "l.json")
    store = xr.open_zarr(tmp_path / "l.zarr")
    np.testing.assert_allclose(store["t@850"].values, values[850][:, 0, 0], atol=0.01)
    np.testing.assert_allclose(store["t@500"].values, values[500][:, 0, 0], atol=0.01)


def test_a_products_own_member_dimension_is_refused_unless_asked_for(tmp_path):
    """A NetCDF with a `member` dimension (not cfgrib's `number`) follows data.members too: it
    was taken as members-as-samples whatever the setting."""
    rng = np.random.default_rng(0)
    ds = xr.Dataset({"t2m": (("member", "time", "latitude", "longitude"), rng.normal(280, 5, (3, len(TIMES), 4, 5)),
                             {"units": "K"})},
                    coords={"member": [0, 1, 2], "time": TIMES, "latitude": [53.0, 52.0, 51.0, 50.0],
                            "longitude": [0.0, 1.0, 2.0, 3.0, 4.0]})
    path = tmp_path / "members.nc"
    ds.to_netcdf(path)
    cfg = {"data": {"source": str(path), "splits": SPLITS, "variables": {"t2m": {}}}}
    with pytest.raises(IngestError, match=r"has 3 ensemble members \(numbers 0, 1, 2\): set data.members"):
        ingest.check_source(load_config(cfg))
    stats = ingest.ingest(load_config({"data": {**cfg["data"], "members": "samples"}}), None, tmp_path / "m.zarr",
                          tmp_path / "m.json")
    assert stats["fields_per_time"] == 3
