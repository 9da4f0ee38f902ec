"""Projected and curvilinear grids: a CORDEX-style rotated-pole NetCDF and an HRRR-like Lambert
conformal NetCDF, built here with known values, ingested: 2-D coordinates and grid mapping kept,
values, sums and masks as in the source, regions by lat/lon box (the bounding index window) or by
index ranges, coarsening by a factor, and cell-area weights against the projections' own areas."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from htweather.config import load_config
from htweather.data import ingest
from htweather.data.store import area_weights, cell_areas, grid_coords, grid_dims
from htweather.errors import IngestError

from conftest import GRID_SPLITS as SPLITS, GRID_TIME as TIME, rotated_to_geographic


@pytest.fixture
def cordex(tmp_path):
    """pr on a 0.5 deg rotated-pole grid, 8 x 12, dims (time, rlat, rlon), 2-D lat/lon, a
    `rotated_pole` grid mapping, six sea cells NaN at every time."""
    rlat, rlon = -2.0 + 0.5 * np.arange(8), -3.0 + 0.5 * np.arange(12)
    lat, lon = rotated_to_geographic(*np.meshgrid(rlat, rlon, indexing="ij"))
    rng = np.random.default_rng(0)
    pr = rng.gamma(0.4, 2e-4, size=(len(TIME), 8, 12))
    pr[:, :2, :3] = np.nan
    ds = xr.Dataset(
        {"pr": (("time", "rlat", "rlon"), pr, {"units": "kg m-2 s-1", "grid_mapping": "rotated_pole"}),
         "rotated_pole": ((), 0, {"grid_mapping_name": "rotated_latitude_longitude",
                                  "grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0})},
        coords={"time": TIME, "rlat": ("rlat", rlat, {"standard_name": "grid_latitude"}),
                "rlon": ("rlon", rlon, {"standard_name": "grid_longitude"}),
                "lat": (("rlat", "rlon"), lat), "lon": (("rlat", "rlon"), lon)})
    path = tmp_path / "pr_EUR-44_rotated.nc"
    ds.to_netcdf(path)
    return path, ds


def _ingest(path, tmp_path, **data):
    cfg = load_config({"data": {"source": str(path), "variables": {"pr": {"units": "mm h-1"}},
                                "splits": SPLITS, **data}})
    stats = ingest.ingest(cfg, [str(path)], tmp_path / "s.zarr", tmp_path / "s.json")
    return stats, xr.open_zarr(tmp_path / "s.zarr")


def test_rotated_pole_grid_keeps_its_coordinates_values_and_mask(cordex, tmp_path):
    path, src = cordex
    stats, out = _ingest(path, tmp_path)
    assert grid_dims(stats) == ("y", "x") and out.pr.dims == ("time", "y", "x")
    np.testing.assert_array_equal(out.y.values, src.rlat.values)
    np.testing.assert_allclose(out.latitude.values, src.lat.values)
    np.testing.assert_allclose(out.longitude.values, src.lon.values)
    assert stats["grid"]["grid_mapping"]["grid_mapping_name"] == "rotated_latitude_longitude"
    assert stats["grid"]["grid_mapping"]["grid_north_pole_latitude"] == 39.25
    assert out.pr.attrs["grid_mapping"] == "crs"  # CF: the store's own grid mapping variable
    assert out.crs.attrs["grid_mapping_name"] == "rotated_latitude_longitude"
    np.testing.assert_array_equal(out["mask"].values.astype(bool), ~np.isnan(src.pr.values[0]))
    np.testing.assert_allclose(out.pr.values, src.pr.values * 3600, rtol=1e-6)  # kg m-2 s-1 -> mm h-1
    assert float(out.pr.sum()) == pytest.approx(float(src.pr.sum()) * 3600, rel=1e-5)
    coords = grid_coords(stats)
    assert np.asarray(coords["latitude"][1]).shape == (8, 12)


def test_rotated_pole_cell_areas_follow_the_rotated_latitude(cordex, tmp_path):
    """A rotation keeps areas: each cell of the rotated grid has area R^2 cos(rlat) drlat drlon."""
    path, src = cordex
    stats, _ = _ingest(path, tmp_path)
    expected = 6371.0**2 * np.cos(np.deg2rad(src.rlat.values))[:, None] * np.deg2rad(0.5) ** 2 * np.ones((1, 12))
    np.testing.assert_allclose(cell_areas(stats["grid"]["latitude"], stats["grid"]["longitude"]), expected,
                               rtol=2e-3)
    weights = area_weights(stats)
    real = ~np.isnan(src.pr.values[0])
    assert weights[~real].sum() == 0 and weights[real].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(weights[real], (expected / expected[real].mean())[real], rtol=2e-3)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_rotated_pole_coarsened_by_a_factor(cordex, tmp_path):
    """coarsen: 2 gives 4 x 6 block means; the block with 2 of its 4 cells at sea keeps the mean
    of the other two, the one with no data stays masked."""
    path, src = cordex
    stats, out = _ingest(path, tmp_path, coarsen=2)
    blocks = src.pr.values.reshape(len(TIME), 4, 2, 6, 2) * 3600
    expected = np.nanmean(blocks, axis=(2, 4))
    counts = (~np.isnan(blocks)).sum(axis=(2, 4))
    expected = np.where(2 * counts >= 4, expected, np.nan)
    assert out.pr.shape == (len(TIME), 4, 6)
    np.testing.assert_allclose(out.pr.values, expected, rtol=1e-6)
    assert out["mask"].values[0, 0] == 0 and out["mask"].values[0, 1] == 1  # 2 sea cells of 4: kept
    np.testing.assert_allclose(out.latitude.values, src.lat.values.reshape(4, 2, 6, 2).mean(axis=(1, 3)))


def test_rotated_pole_regions_by_box_and_by_index(cordex, tmp_path):
    path, src = cordex
    lat, lon = src.lat.values, src.lon.values
    box = {"lat": [50.0, 52.0], "lon": [15.0, 20.0]}
    inside = (lat >= 50) & (lat <= 52) & (lon >= 15) & (lon <= 20)
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    _, out = _ingest(path, tmp_path, region=box)
    np.testing.assert_allclose(out.latitude.values, lat[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    assert 0 < out.sizes["y"] < 8 and 0 < out.sizes["x"] < 12  # a window, not the whole grid
    _, by_index = _ingest(path, tmp_path / "i", region={"y": [2, 6], "x": [1, 9]})
    np.testing.assert_allclose(by_index.pr.values, src.pr.values[:, 2:6, 1:9] * 3600, rtol=1e-6)
    with pytest.raises(IngestError, match=r"data.region.x: \[4, 20\) is not an index range of the 12 x cells"):
        _ingest(path, tmp_path / "bad", region={"x": [4, 20]})
    with pytest.raises(IngestError, match="projected grid .* data.coarsen"):
        _ingest(path, tmp_path / "res", resolution=1.0)


def lambert_to_geographic(x_km, y_km, lat0=38.5, lon0=-97.5):
    """Inverse of the tangent Lambert conformal conic (sphere, R = 6371 km), as HRRR's grid."""
    R, phi0 = 6371.0, np.deg2rad(lat0)
    n = np.sin(phi0)
    F = np.cos(phi0) * np.tan(np.pi / 4 + phi0 / 2) ** n / n
    rho0 = R * F / np.tan(np.pi / 4 + phi0 / 2) ** n
    rho = np.sign(n) * np.hypot(x_km, rho0 - y_km)
    theta = np.arctan2(x_km, rho0 - y_km)
    phi = 2 * np.arctan((R * F / rho) ** (1 / n)) - np.pi / 2
    return np.rad2deg(phi), lon0 + np.rad2deg(theta / n)


def lambert_scale(lat, lat0=38.5):
    phi, phi0 = np.deg2rad(lat), np.deg2rad(lat0)
    n = np.sin(phi0)
    return np.cos(phi0) / np.cos(phi) * (np.tan(np.pi / 4 + phi0 / 2) / np.tan(np.pi / 4 + phi / 2)) ** n


def test_lambert_conformal_grid_like_hrrr(tmp_path):
    """3 km cells on dims (y, x) in metres with 2-D latitude/longitude and a CF grid mapping:
    ingested, cropped to a lat/lon box, cell areas dx dy / k^2 (k the projection's scale)."""
    x = (np.arange(32) - 16) * 3000.0
    y = (np.arange(24) - 12) * 3000.0 + 200e3
    lat, lon = lambert_to_geographic(*np.meshgrid(x / 1e3, y / 1e3, indexing="xy"))
    rng = np.random.default_rng(1)
    rate = rng.gamma(0.3, 1.0, size=(len(TIME), 24, 32))
    ds = xr.Dataset(
        {"pr": (("time", "y", "x"), rate, {"units": "mm h-1", "grid_mapping": "lambert"}),
         "lambert": ((), 0, {"grid_mapping_name": "lambert_conformal_conic", "standard_parallel": 38.5,
                             "longitude_of_central_meridian": -97.5, "latitude_of_projection_origin": 38.5})},
        coords={"time": TIME, "x": ("x", x, {"units": "m"}), "y": ("y", y, {"units": "m"}),
                "latitude": (("y", "x"), lat), "longitude": (("y", "x"), lon)})
    path = tmp_path / "hrrr_like.nc"
    ds.to_netcdf(path)
    stats, out = _ingest(path, tmp_path)
    assert stats["grid"]["grid_mapping"]["grid_mapping_name"] == "lambert_conformal_conic"
    np.testing.assert_allclose(out.pr.values, rate, rtol=1e-6)
    areas = cell_areas(stats["grid"]["latitude"], stats["grid"]["longitude"])
    expected = 3.0 * 3.0 / lambert_scale(lat) ** 2
    np.testing.assert_allclose(areas[1:-1, 1:-1], expected[1:-1, 1:-1], rtol=5e-3)
    box = {"lat": [40.0, 40.2], "lon": [-97.6, -97.4]}
    inside = (lat >= 40.0) & (lat <= 40.2) & (lon >= -97.6) & (lon <= -97.4)
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    _, cropped = _ingest(path, tmp_path / "box", region=box)
    np.testing.assert_allclose(cropped.x.values, x[cols[0]:cols[-1] + 1])
    np.testing.assert_allclose(cropped.pr.values, rate[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], rtol=1e-6)


def test_regular_grid_areas_are_cos_latitude():
    lat, lon = np.array([60.0, 50.0, 40.0]), np.array([0.0, 1.0, 2.0, 3.0])
    areas = cell_areas(lat, lon)
    np.testing.assert_allclose(areas / areas.mean(), (np.cos(np.deg2rad(lat)) / np.cos(np.deg2rad(lat)).mean())
                               [:, None] * np.ones((1, 4)), rtol=1e-12)


def test_a_grid_across_the_dateline_keeps_its_areas_and_block_longitudes():
    """Longitudes that wrap from 179.x to -179.x between neighbouring cells (a rotated or polar
    grid over the dateline): the cell areas see no 360-degree jump, and coarsening averages the
    longitudes on the circle, not to 0."""
    rlat, rlon = -2.0 + 0.5 * np.arange(8), -3.0 + 0.5 * np.arange(12)
    lat, lon = rotated_to_geographic(*np.meshgrid(rlat, rlon, indexing="ij"), pole_lat=40.0, pole_lon=0.0)
    assert lon.min() < -170 and lon.max() > 170  # the grid straddles the dateline
    expected = 6371.0**2 * np.cos(np.deg2rad(rlat))[:, None] * np.deg2rad(0.5) ** 2 * np.ones((1, 12))
    np.testing.assert_allclose(cell_areas(lat, lon), expected, rtol=2e-3)
    ds = xr.Dataset({"pr": (("time", "y", "x"), np.ones((2, 8, 12)))},
                    coords={"y": rlat, "x": rlon, "latitude": (("y", "x"), lat), "longitude": (("y", "x"), lon)})
    coarse = ingest.coarsen(ds, None, "test", factor=2)
    blocks = np.deg2rad(lon).reshape(4, 2, 6, 2)
    circular = np.rad2deg(np.arctan2(np.sin(blocks).mean(axis=(1, 3)), np.cos(blocks).mean(axis=(1, 3))))
    np.testing.assert_allclose(coarse.longitude.values, circular)
    assert np.abs(coarse.longitude.values).min() > 150  # no block mean near 0


def test_consecutive_runs_cut_a_split_at_its_gaps():
    from htweather.data.windows import consecutive_runs

    times = pd.DatetimeIndex(["2019-06-10T00:00", "2019-06-10T00:02", "2019-06-10T00:04", "2019-06-10T00:10",
                              "2019-06-10T00:12", "2019-06-10T00:20"])
    assert consecutive_runs(times) == [slice(0, 3), slice(3, 5), slice(5, 6)]
    assert consecutive_runs(times[:3]) == [slice(0, 3)]


def test_lambert_conformal_grib2_through_cfgrib(tmp_path):
    """HRRR's layout as GRIB2: one Lambert-conformal message per file (3 km, tangent at
    38.5 N, 262.5 E), written here with eccodes. cfgrib gives dims y, x with 2-D latitude and
    longitude; the store keeps them, the values and the GRIB grid definition."""
    eccodes = pytest.importorskip("eccodes")
    nx, ny = 32, 24
    rng = np.random.default_rng(2)
    fields, files = [], []
    for hour in range(8):
        h = eccodes.codes_grib_new_from_samples("GRIB2")
        for key, value in [("gridType", "lambert"), ("Nx", nx), ("Ny", ny), ("LaDInDegrees", 38.5),
                           ("LoVInDegrees", 262.5), ("Latin1InDegrees", 38.5), ("Latin2InDegrees", 38.5),
                           ("DxInMetres", 3000), ("DyInMetres", 3000),
                           ("latitudeOfFirstGridPointInDegrees", 36.0), ("longitudeOfFirstGridPointInDegrees", 260.0),
                           ("dataDate", 20190610), ("dataTime", hour * 100),
                           ("discipline", 0), ("parameterCategory", 1), ("parameterNumber", 7)]:  # PRATE
            if isinstance(value, str):
                eccodes.codes_set_string(h, key, value)
            else:
                (eccodes.codes_set_double if isinstance(value, float) else eccodes.codes_set_long)(h, key, value)
        values = rng.gamma(0.3, 2.0, size=ny * nx)
        eccodes.codes_set_values(h, values)
        files.append(tmp_path / f"hrrr.t{hour:02d}z.grib2")
        with open(files[-1], "wb") as f:
            eccodes.codes_write(h, f)
        eccodes.codes_release(h)
        fields.append(values.reshape(ny, nx))
    cfg = load_config({"data": {"source": str(tmp_path / "*.grib2"),
                                "variables": {"rain": {"source_name": "prate", "source_units": "mm h-1"}},
                                "splits": {"blocks": "2h", "pattern": ["train", "validation", "test"]}}})
    stats = ingest.ingest(cfg, [str(f) for f in files], tmp_path / "s.zarr", tmp_path / "s.json")
    out = xr.open_zarr(tmp_path / "s.zarr")
    assert out.rain.dims == ("time", "y", "x") and out.latitude.shape == (ny, nx)
    with xr.open_dataset(files[0], engine="cfgrib", backend_kwargs={"indexpath": ""}) as src:
        np.testing.assert_allclose(out.latitude.values, src.latitude.values)
        np.testing.assert_allclose(out.rain.values[0], src.prate.values, rtol=1e-6)
    np.testing.assert_allclose(out.rain.values, np.stack(fields), rtol=1e-3, atol=1e-3)  # GRIB packing
    assert stats["grid"]["grid_mapping"]["gridType"] == "lambert"
    assert stats["grid"]["grid_mapping"]["LaDInDegrees"] == 38.5
    areas = cell_areas(out.latitude.values, out.longitude.values)
    expected = 3.0 * 3.0 / lambert_scale(out.latitude.values) ** 2
    np.testing.assert_allclose(areas[1:-1, 1:-1], expected[1:-1, 1:-1], rtol=5e-3)
    assert [stats["splits"][s]["n_times"] for s in ("train", "validation", "test")] == [4, 2, 2]


def test_a_sentinel_is_missing_before_coarsening(cordex, tmp_path):
    """missing_value is read as missing before the block means: a -3 (MRMS: no coverage) is
    left out of its block's mean rather than averaged into it."""
    path, src = cordex
    pr = src.pr.values.copy()
    pr[:, 4, 4] = -3.0
    src.assign(pr=(src.pr.dims, pr, src.pr.attrs)).to_netcdf(tmp_path / "sentinel.nc")
    cfg = load_config({"data": {"source": str(tmp_path / "sentinel.nc"), "splits": SPLITS, "coarsen": 2,
                                "variables": {"pr": {"missing_value": -3}}}})
    ingest.ingest(cfg, None, tmp_path / "s.zarr", tmp_path / "s.json")
    out = xr.open_zarr(tmp_path / "s.zarr")
    block = np.where(pr[:, 4:6, 4:6] == -3.0, np.nan, pr[:, 4:6, 4:6])
    np.testing.assert_allclose(out.pr.values[:, 2, 2], np.nanmean(block, axis=(1, 2)) * 3600, rtol=1e-6)  # mm h-1
    assert (out.pr.values[:, 2, 2] > 0).all()
