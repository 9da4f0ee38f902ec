"""Spatial structure of fields (evaluation.spatial) on fields with known answers, and the
forecasts' FSS and SEEPS against pysteps and scores."""

import contextlib
import io

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage
from scores.categorical import seeps as scores_seeps

from htweather.evaluation import forecasts, spatial


def pysteps(module):
    """A pysteps module (the reference implementation; in the test extra), quietly: it prints
    where its configuration file is on import."""
    with contextlib.redirect_stdout(io.StringIO()):
        return pytest.importorskip(f"pysteps.{module}")


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def unit_spec(shape, thresholds=None, sizes=(2,), mask=None):
    return spatial.SpatialSpec(np.ones(shape), mask, thresholds or {}, spatial.block_sizes(shape, list(sizes)))


def power_law_fields(rng, n, size, beta):
    """Gaussian random fields whose power falls as k^-beta."""
    ky, kx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    k = np.hypot(kx, ky)
    k[0, 0] = np.inf
    noise = np.fft.fft2(rng.normal(size=(n, size, size)))
    return np.real(np.fft.ifft2(noise * k ** (-beta / 2)))


# --- spectra -------------------------------------------------------------------------------

def test_white_noise_has_a_flat_spectrum_at_its_variance(rng):
    # white noise: E|F_k|^2 / N = sigma^2 off the axes. On the 4 half-axes the mirror doubles a
    # cosine coefficient's power, which adds about 4 / (2 pi k) to the ring of wavenumber k's
    # 2 pi k points: flat at sigma^2 but for that
    psd = spatial.power_spectra(rng.normal(scale=2.0, size=(300, 32, 32))).mean(axis=0)
    k = np.arange(4, psd.size)
    assert psd[4:] == pytest.approx(4.0 * (1 + 2 / (np.pi * k)), rel=0.06)


def test_power_law_field_has_its_slope(rng):
    psd = spatial.power_spectra(power_law_fields(rng, 60, 64, beta=3.0)).mean(axis=0)
    k = np.arange(psd.size)
    slope = np.polyfit(np.log(k[2:24]), np.log(psd[2:24]), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.15)


def test_spectrum_metrics_sign_and_size():
    data = np.array([5.0, 8.0, 4.0, 2.0, 1.0])
    assert spatial.spectrum_metrics(data, data) == {"psd_log_error": 0.0, "psd_log_ratio_large": 0.0,
                                                    "psd_log_ratio_small": 0.0}
    smooth = data * np.array([1, 1, 1, 0.1, 0.1])  # a tenth of the small scales' power
    found = spatial.spectrum_metrics(smooth, data)
    assert found["psd_log_ratio_large"] == 0.0
    assert found["psd_log_ratio_small"] == pytest.approx(-1.0)
    assert found["psd_log_error"] == pytest.approx(0.5)


def test_wavelengths_on_the_grid_spacing():
    # 16 cells of 25 km, mirrored to 32: wavenumber 1 is twice the domain (800 km), the last
    # (15) is 800 / 15 km, close to two cells (50 km, the shortest a grid resolves)
    wavelengths = spatial.wavelengths_km((16, 16), 25.0)
    assert wavelengths.size == 16 and np.isinf(wavelengths[0])
    assert wavelengths[1] == pytest.approx(800.0) and wavelengths[15] == pytest.approx(800 / 15)


def test_a_smooth_field_has_no_small_scale_power_from_its_edges(rng):
    # a plane tilted across the domain: periodic extension would jump at the edges, the mirror does not
    y, x = np.indices((32, 32))
    psd = spatial.power_spectra((3.0 * x + y)[None].astype(float))[0]
    assert psd[16:].max() < 1e-3 * psd[1]


def test_grid_spacing_of_a_regular_grid_at_the_equator():
    lat = np.arange(-1.0, 1.01, 0.25)
    stats = {"grid": {"latitude": lat.tolist(), "longitude": np.arange(0, 2.01, 0.25).tolist()}}
    assert spatial.grid_spacing_km(stats) == pytest.approx(6371 * np.deg2rad(0.25), rel=0.01)


def test_spectra_equal_pysteps_rapsd_on_a_square_grid(rng):
    rapsd = pysteps("utils.spectral").rapsd
    fields = rng.gamma(0.5, 2.0, (3, 24, 24))
    expected = [rapsd(spatial.mirrored(f), fft_method=np.fft) for f in fields]
    assert np.allclose(spatial.power_spectra(fields), expected, rtol=1e-12)


def test_a_wave_on_a_rectangular_grid_peaks_at_its_wavelength():
    # 16 x 32 cells of 10 km, a wave of 8 cells (80 km) along y only: pysteps' RAPSD would put it
    # at the ring of its index distance, 16 cells; binned by frequency it is at 80 km
    y = np.arange(16)[:, None] * np.ones((1, 32))
    psd = spatial.power_spectra(np.cos(2 * np.pi * y / 8)[None])[0]
    assert spatial.wavelengths_km((16, 32), 10.0)[np.argmax(psd[1:]) + 1] == pytest.approx(80.0)


def test_masked_cells_add_little_edge():
    # a tilted plane with a masked corner: the nearest real values fill it; the mean of the real
    # cells would put a step around the corner and raise the small scales' power 250-fold
    y, x = np.indices((32, 32))
    plane = (3.0 * x + y)[None].astype(float)
    mask = np.ones((32, 32), bool)
    mask[:8, :8] = False
    whole, masked = spatial.power_spectra(plane)[0], spatial.power_spectra(np.where(mask, plane, 1e3), mask)[0]
    assert masked[16:].mean() < 10 * whole[16:].mean()
    assert masked[1] == pytest.approx(whole[1], rel=0.2)


# --- objects -------------------------------------------------------------------------------

def disc(shape, centre, radius, value=1.0):
    y, x = np.indices(shape)
    return np.where((y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2, value, 0.0)


def test_a_disc_is_one_object_with_its_area_and_peak():
    field = disc((20, 20), (10, 10), 3)
    field[10, 10] = 10.0
    objects = spatial.find_objects(field[None], 0.5, np.full((20, 20), 2.0))
    cells = int((disc((20, 20), (10, 10), 3) > 0).sum())
    assert cells == 29
    assert objects.unit.tolist() == [0]
    assert objects.area.tolist() == [2.0 * cells]  # km^2: 2 per cell here
    assert objects.peak.tolist() == [10.0]
    assert objects.total.tolist() == [cells - 1 + 10.0]


def test_objects_are_8_connected_and_counted_per_field():
    field = np.zeros((6, 6))
    field[1, 1] = field[2, 2] = 1.0      # corner to corner: one object
    field[4, 4] = 1.0                    # apart: another
    objects = spatial.find_objects(np.stack([field, np.zeros((6, 6)), field]), 0.5, np.ones((6, 6)))
    assert objects.unit.tolist() == [0, 0, 2, 2]
    assert sorted(objects.area[:2].tolist()) == [1.0, 2.0]


def test_scaled_volume_by_hand():
    field = np.zeros((5, 5))
    field[0, 0] = 4.0                    # R 4, R_max 4: R^2 / R_max = 4
    field[3, 3] = field[3, 4] = 2.0      # R 4, R_max 2: 8
    objects = spatial.find_objects(np.stack([field, np.zeros((5, 5))]), 1.0, np.ones((5, 5)))
    volumes = spatial.scaled_volumes(objects)
    assert volumes[0] == pytest.approx((4 + 8) / (4 + 4))
    assert np.isnan(volumes[1])


def test_sal_amplitude_agrees_with_pysteps(rng):
    gen, obs = rng.gamma(0.5, 2.0, (1, 24, 24)), rng.gamma(0.5, 3.0, (1, 24, 24))
    spec = unit_spec((24, 24), {"p99": 1.0})
    found = spatial.spatial_metrics(spatial.summarise(gen, spec), spatial.summarise(obs, spec), [0.99], "upper")
    assert found["sal_amplitude"] == pytest.approx(pysteps("verification.salscores").sal_amplitude(gen[0], obs[0]))


# --- what the metrics say about known kinds of error -----------------------------------------

def storms(rng, n, size=32):
    """Fields of a few compact storms: peaked discs on a dry background."""
    out = np.zeros((n, size, size))
    for f in out:
        for _ in range(rng.integers(1, 4)):
            centre, radius = rng.integers(4, size - 4, 2), rng.uniform(2, 4)
            y, x = np.indices((size, size))
            f += 10 * np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * radius**2))
    return out


def test_identical_fields_score_perfectly(rng):
    data = storms(rng, 40)
    spec = unit_spec((32, 32), {"wet": 0.1, "p99": 5.0}, sizes=(2, 4))
    s = spatial.summarise(data, spec)
    found = spatial.spatial_metrics(s, s, [0.99, 0.999], "upper")
    assert found["psd_log_error"] == 0.0 and found["sal_amplitude"] == 0.0
    for t in ("wet", "p99"):
        assert found[f"object_count_ratio_{t}"] == 1.0 and found[f"sal_structure_{t}"] == 0.0
        assert found[f"object_area_rel_error_{t}"] == 0.0 and found[f"object_peak_q99_rel_error_{t}"] == 0.0
    for label in ("2x2", "4x4", "field"):
        assert found[f"areal_quantile_rel_error_0.99_{label}"] == 0.0


def test_smudged_storms_are_too_wide_and_speckle_too_small(rng):
    data, gen = storms(rng, 60), storms(rng, 60)
    spec = unit_spec((32, 32), {"wet": 0.1, "p99": 5.0}, sizes=(4,))
    ref = spatial.summarise(data, spec)
    # the same storms, smeared: wider objects, lower peaks, too little small-scale power
    smudged = spatial.spatial_metrics(spatial.summarise(ndimage.gaussian_filter(gen, (0, 3, 3)), spec), ref,
                                      [0.99], "upper")
    assert smudged["sal_structure_wet"] > 0.2 and smudged["object_area_rel_error_wet"] > 0.2
    assert smudged["object_peak_rel_error_wet"] < -0.2 and smudged["psd_log_ratio_small"] < -0.5
    # every field's cells shuffled: the marginal is right, the storms are speckle
    speckle = rng.permuted(gen.reshape(60, -1), axis=1).reshape(gen.shape)
    found = spatial.spatial_metrics(spatial.summarise(speckle, spec), ref, [0.99], "upper")
    assert found["object_count_ratio_wet"] > 3 and found["sal_structure_p99"] < -0.5
    assert found["psd_log_ratio_small"] > 0.5
    # with the right values scattered, the means over 4 x 4 cells never get as high as the data's
    assert found["areal_quantile_rel_error_0.99_4x4"] < -0.3


def test_resample_counts_equal_repeated_fields(rng):
    gen, data = storms(rng, 12), storms(rng, 15)
    spec = unit_spec((32, 32), {"wet": 0.1, "p99": 5.0}, sizes=(2, 4))
    cg, cd = rng.integers(0, 3, 12), rng.integers(0, 3, 15)
    counted = spatial.spatial_metrics(spatial.summarise(gen, spec), spatial.summarise(data, spec), [0.99], "upper",
                                      cg, cd)
    repeated = spatial.spatial_metrics(spatial.summarise(np.repeat(gen, cg, axis=0), spec),
                                       spatial.summarise(np.repeat(data, cd, axis=0), spec), [0.99], "upper")
    assert counted.keys() == repeated.keys()
    for metric in counted:
        assert counted[metric] == pytest.approx(repeated[metric], rel=1e-9, nan_ok=True), metric


# --- areal means -----------------------------------------------------------------------------

def test_block_means_by_hand_with_a_mask():
    field = np.arange(16.0).reshape(1, 4, 4)
    means = spatial.block_means(field, 2, np.ones((4, 4)))
    assert means.tolist() == [[2.5, 4.5, 10.5, 12.5]]
    mask = np.ones((4, 4), bool)
    mask[0, 0] = False  # the first block is no longer whole: left out
    assert spatial.block_means(field, 2, np.ones((4, 4)), mask).tolist() == [[4.5, 10.5, 12.5]]
    areas = np.ones((4, 4))
    areas[:2] = 3.0  # the upper rows weigh three times as much in the field's mean
    whole = spatial.block_means(field, None, areas)[0, 0]
    assert whole == pytest.approx((3 * np.arange(8).sum() + np.arange(8, 16).sum()) / 32)


def test_block_sizes_fit_the_grid():
    assert spatial.block_sizes((16, 16), [2, 4, 8, 32]) == [2, 4, 8, None]
    assert spatial.block_sizes((4, 4), [2, 4, 8]) == [2, None]  # 4 x 4 is the whole field


def test_weighted_quantile_is_the_inverted_cdf_of_repeated_values(rng):
    values, weights = rng.normal(size=50), rng.integers(0, 4, 50)
    for p in (0.5, 0.9, 0.99):
        assert spatial.weighted_quantile(values, weights, p) == np.quantile(np.repeat(values, weights), p,
                                                                           method="inverted_cdf")


# --- forecasts: FSS and SEEPS ----------------------------------------------------------------

def test_fss_of_a_field_against_itself_is_one(rng):
    obs = rng.gamma(0.5, 2.0, (3, 20, 20))
    num, den = forecasts.fss_sums(obs, obs[..., None], 2.0, 5)
    assert 1 - num.sum() / den.sum() == 1.0


@pytest.mark.parametrize("scale", [1, 3, 5])
def test_fss_agrees_with_pysteps(rng, scale):
    obs, ens = rng.gamma(0.5, 2.0, (2, 24, 24)), rng.gamma(0.5, 2.0, (2, 24, 24, 3))
    obs[0, :3, :3] = np.nan  # missing values count as below the threshold in both
    spatialscores = pysteps("verification.spatialscores")
    num, den = forecasts.fss_sums(obs, ens, 3.0, scale)
    reference = spatialscores.fss_init(3.0, scale)
    for t in range(2):
        for m in range(3):
            spatialscores.fss_accum(reference, ens[t, ..., m], obs[t])
    # pooled over start times and members: each member's sums, averaged over members
    assert 1 - num.sum() / den.sum() == pytest.approx(spatialscores.fss_compute(reference), rel=1e-12)


def test_seeps_averages_the_members_scores_from_scores(rng):
    data = np.where(rng.random((200, 6, 6)) < 0.5, 0.0, rng.gamma(1.0, 2.0, (200, 6, 6)))
    climate = forecasts.seeps_climate(data, 0.1)
    obs, ens = data[:4], data[10:14][..., None] * np.array([1.0, 0.5])
    found = forecasts.seeps_points(obs, ens, 0.1, climate)
    dims = ("t", "y", "x")
    by_member = [scores_seeps(xr.DataArray(ens[..., m], dims=dims), xr.DataArray(obs, dims=dims),
                              xr.DataArray(climate[0], dims=dims[1:]), xr.DataArray(climate[1], dims=dims[1:]),
                              dry_light_threshold=0.1, preserve_dims="all").values for m in range(2)]
    assert np.allclose(found, np.mean(by_member, axis=0), equal_nan=True)
    assert np.nanmax(forecasts.seeps_points(obs, obs[..., None], 0.1, climate)) == 0.0


def test_no_generated_storm_is_the_worst_score_not_an_undefined_one(rng):
    data = storms(rng, 10)
    spec = unit_spec((32, 32), {"p99": 5.0})
    found = spatial.spatial_metrics(spatial.summarise(np.zeros_like(data), spec), spatial.summarise(data, spec),
                                    [0.99], "upper")
    assert found["object_count_ratio_p99"] == 0.0 and found["sal_structure_p99"] == -2.0
    assert found["object_area_rel_error_p99"] == -1.0 and found["object_peak_q99_rel_error_p99"] == -1.0


def test_seeps_by_hand():
    # one cell dry half the time (p1 = 0.5, so p3 = 1/6), light/heavy threshold 5 mm; the
    # observation is heavy (10 mm). SEEPS's penalty (Rodwell et al. 2010) for a dry forecast is
    # (1/p3 + 1/(1 - p1)) / 2 = 4, for a light one 1/(2 p3) = 3: the members' mean is 3.5
    climate = (np.array([[0.5]]), np.array([[5.0]]))
    found = forecasts.seeps_points(np.array([[[10.0]]]), np.array([[[[0.0, 3.0]]]]), 0.1, climate)
    assert found.shape == (1, 1, 1) and found[0, 0, 0] == pytest.approx(3.5)


def test_seeps_climate_leaves_out_cells_never_or_always_dry():
    data = np.zeros((10, 1, 3))
    data[:, 0, 1] = 2.0             # always wet
    data[:5, 0, 2] = [1, 2, 3, 4, 6]  # dry half the time
    dry, heavy = forecasts.seeps_climate(data, 0.1)
    assert np.isnan(dry[0, 0]) and np.isnan(dry[0, 1]) and dry[0, 2] == 0.5
    assert heavy[0, 2] == pytest.approx(np.quantile([1, 2, 3, 4, 6], 2 / 3))


def test_objects_of_a_mostly_dry_variable_are_not_the_whole_domain(rng):
    # 99.5 % of the values at the lower bound: the data's p99 is 0, so the p99 objects start at
    # the smallest wet value instead
    data = np.zeros((40, 10, 10))
    data.reshape(-1)[rng.choice(data.size, 20, replace=False)] = rng.uniform(1, 5, 20)
    stats = {"grid": {"latitude": np.arange(10.0).tolist(), "longitude": np.arange(10.0).tolist()},
             "variables": {"pr": {"tails": "upper", "lower_bound": 0.0}}}
    spec = spatial.spatial_spec(stats, "pr", data, [2])
    assert spec.thresholds["p99"] == data[data > 0].min()


def test_domain_mean_and_amplitude_skip_missing_values(rng):
    data = storms(rng, 20)
    spec = unit_spec((32, 32), {"p99": 5.0})
    holed = data.copy()
    holed[3, 0, 0] = np.nan  # one missing value in one field
    found = spatial.spatial_metrics(spatial.summarise(holed, spec), spatial.summarise(data, spec), [0.99], "upper")
    assert abs(found["sal_amplitude"]) < 1e-3
    # a variable without an upper tail has no storms and no amplitude (its mean may be near 0)
    assert "sal_amplitude" not in spatial.spatial_metrics(spatial.summarise(data, unit_spec((32, 32))),
                                                          spatial.summarise(data, unit_spec((32, 32))), [0.99], "both")
