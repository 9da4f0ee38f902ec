"""The embedded ERA5-style data: CDS layout, determinism; the copula generator's closed-form
marginals and correlation; the storm generator's intermittent, coupled, heavy-tailed fields."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from htweather.data import synthetic


@pytest.fixture
def spec(tiny_config):
    """The copula generator on the tiny grid (closed-form marginals to test against)."""
    return {**tiny_config["data"]["synthetic"], "generator": "copula"}


@pytest.fixture
def written(spec, tmp_path):
    files = synthetic.write_netcdf(spec, tmp_path, seed=3)
    return files, xr.open_mfdataset(files, engine="netcdf4")


def test_files_look_like_cds_netcdf(written, spec):
    files, ds = written
    assert [f.name for f in files] == ["era5_synthetic_2000.nc"]
    for name in ("t2m", "w", "tp"):
        assert ds[name].dims == ("time", "latitude", "longitude")
        assert ds[name].dtype == np.float32
    assert ds.t2m.attrs["units"] == "K" and ds.tp.attrs["units"] == "m" and ds.w.attrs["units"] == "Pa s**-1"
    assert ds.latitude.attrs["units"] == "degrees_north"
    assert np.all(np.diff(ds.latitude.values) < 0), "ERA5 latitude runs north to south"
    assert ds.sizes["latitude"] == spec["nlat"] and ds.sizes["longitude"] == spec["nlon"]
    raw = xr.open_dataset(files[0], decode_times=False)
    assert raw.time.attrs["units"].startswith("hours since 1900-01-01")


def test_deterministic_by_seed(spec, tmp_path):
    a = synthetic.write_netcdf(spec, tmp_path / "a", seed=5)[0]
    b = synthetic.write_netcdf(spec, tmp_path / "b", seed=5)[0]
    c = synthetic.write_netcdf(spec, tmp_path / "c", seed=6)[0]
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db, xr.open_dataset(c) as dc:
        assert da.identical(db)
        assert not np.array_equal(da.w.values, dc.w.values)


@pytest.fixture(scope="module")
def large_sample():
    from htweather.config import load_config

    spec = load_config({"data": {"synthetic": {"generator": "copula"}}})["data"]["synthetic"]
    latent = synthetic.latent_sequence(spec, 1500, np.random.default_rng(0))
    return spec, latent, synthetic.to_physical(latent, spec)


def test_marginals_match_closed_form(large_sample):
    spec, _, fields = large_sample
    for name in ("t2m", "w"):
        values = fields[name][:, ::3, ::3].ravel()
        assert stats.kstest(values, synthetic.marginal(spec, name).cdf).statistic < 0.01
    tp = fields["tp"].ravel()
    dist = synthetic.marginal(spec, "tp")
    assert np.mean(tp == 0) == pytest.approx(spec["tp"]["dry_fraction"], abs=0.01)
    wet = tp[tp > 0][::3]
    assert stats.kstest(wet, dist.wet.cdf).statistic < 0.01
    np.testing.assert_allclose(np.quantile(tp, [0.9, 0.99]), dist.ppf([0.9, 0.99]), rtol=0.05)


def test_heavy_and_light_tails(large_sample):
    _, _, fields = large_sample
    assert abs(stats.kurtosis(fields["t2m"].ravel())) < 0.1
    assert stats.kurtosis(fields["w"].ravel()) > 3      # Student-t(5): excess kurtosis 6
    assert stats.skew(fields["tp"].ravel()) > 3


def test_spatial_and_temporal_correlation(large_sample):
    spec, latent, _ = large_sample
    z = latent[:, 0]
    L = spec["correlation_length"]
    lag = int(L)
    r_space = np.corrcoef(z[:, :, lag:].ravel(), z[:, :, :-lag].ravel())[0, 1]
    assert r_space == pytest.approx(np.exp(-(lag / L) ** 2), abs=0.03)
    dy, dx = spec["advection"]
    # the field drifts by the advection per step and persists with lag-one correlation phi
    moved = z[1:, :, dx:] if dx else z[1:]
    before = z[:-1, :, :-dx] if dx else z[:-1]
    assert np.corrcoef(moved.ravel(), before.ravel())[0, 1] == pytest.approx(spec["persistence"], abs=0.03)
    # precipitation goes with ascent (negative w)
    assert np.corrcoef(latent[:, 1].ravel(), latent[:, 2].ravel())[0, 1] == pytest.approx(-spec["tp"]["coupling"], abs=0.03)


def test_zero_inflated_gpd_moments_match_monte_carlo():
    dist = synthetic.ZeroInflatedGPD(0.5, 0.1, 2.0)
    rng = np.random.default_rng(1)
    x = np.where(rng.random(2_000_000) < 0.5, 0.0, stats.genpareto(c=0.1, scale=2.0).rvs(2_000_000, random_state=rng))
    m = dist.moment_summary()
    assert m["mean"] == pytest.approx(x.mean(), rel=0.01)
    assert m["var"] == pytest.approx(x.var(), rel=0.02)
    assert m["skewness"] == pytest.approx(stats.skew(x), rel=0.05)
    assert dist.cdf(0.0) == pytest.approx(0.5) and dist.cdf(-1.0) == 0.0
    assert dist.isf(1e-9) == pytest.approx(dist.wet.isf(2e-9))


def test_truth_ensemble_in_ingested_units(spec, tiny_config):
    ds = synthetic.truth_ensemble(spec, tiny_config["data"]["variables"], members=50, seed=1)
    assert ds.tp.attrs["units"] == "mm"
    assert ds.sizes == {"member": 50, "latitude": spec["nlat"], "longitude": spec["nlon"]}
    assert float(ds.tp.min()) == 0.0
    # mm, not m: the wet-day median is of order the GPD scale in mm
    wet = ds.tp.values[ds.tp.values > 0]
    assert 0.1 < np.median(wet) < 2.0


def test_truth_sequences_have_the_closed_form_marginals_and_persist(spec, tiny_config):
    """The true process' sequences (the reference for return levels): independent chains, each a
    persistent series whose values follow the closed-form marginals in the ingested units."""
    variables = tiny_config["data"]["variables"]
    ds = synthetic.truth_sequences(spec, variables, chains=3, steps=400, seed=5)
    assert ds.w.dims == ("chain", "step", "latitude", "longitude") and ds.tp.attrs["units"] == "mm"
    w = ds.w.values
    assert stats.kstest(w.ravel(), synthetic.marginal(spec, "w").cdf).statistic < 0.03
    tp = ds.tp.values.ravel()
    assert np.mean(tp == 0) == pytest.approx(spec["tp"]["dry_fraction"], abs=0.03)
    # lag-one autocorrelation at a fixed cell is far from 0 (persistent), chains are independent
    z = (w - w.mean()) / w.std()
    lag1 = np.mean(z[:, 1:] * z[:, :-1])
    assert lag1 > 0.3
    assert abs(np.mean(z[0] * z[1])) < 0.1


# --- the storm generator (the default) ---------------------------------------------------------

@pytest.fixture(scope="module")
def storm_sample():
    from htweather.config import load_config

    spec = load_config({})["data"]["synthetic"]
    assert spec["generator"] == "storms"
    return spec, synthetic.physical_sequence(spec, 3000, np.random.default_rng(0))


def test_storm_rain_is_intermittent_compact_and_heavy_tailed(storm_sample):
    from scipy import ndimage

    spec, fields = storm_sample
    tp = fields["tp"] * 1000  # mm
    wet = tp > 0
    assert 0.1 < wet.mean() < 0.35  # dry between the cells
    assert (~wet.any(axis=(1, 2))).mean() > 0.05  # some time steps are dry everywhere
    # compact: a wet area is a few blobs of a few cells, not the whole field
    sizes = [np.bincount(ndimage.label(w)[0].ravel())[1:] for w in wet[::10] if w.any()]
    assert np.median(np.concatenate(sizes)) < 0.25 * wet[0].size
    assert stats.kurtosis(tp.ravel()) > 50
    assert np.quantile(tp, 0.9999) > 4 * np.quantile(tp, 0.99)


def test_storm_variables_are_coupled_and_no_transform_makes_rain_gaussian(storm_sample):
    spec, fields = storm_sample
    tp, w, t2m = fields["tp"], fields["w"], fields["t2m"]
    rainy = tp > np.quantile(tp[tp > 0], 0.9)
    assert w[rainy].mean() < -3 * spec["w"]["scale"]  # strong ascent under heavy rain
    assert t2m[rainy].mean() < t2m[tp == 0].mean()  # cold pools
    assert stats.skew(w.ravel()) < -0.5 and stats.kurtosis(w.ravel()) > 3  # heavy, on the ascent side
    assert abs(stats.kurtosis(t2m.ravel())) < 0.3  # temperature stays nearly Gaussian
    # Gaussianising the rain's marginal (as INC does) leaves a field that is not Gaussian: the
    # mean of a Gaussian field is Gaussian, the mean of the Gaussianised rain field is skewed
    # (a few compact wet blobs in a dry field), far more than the copula generator's
    z = stats.norm.ppf((stats.rankdata(tp.ravel()).reshape(tp.shape) - 0.5) / tp.size)
    mean = z.mean(axis=(1, 2))
    assert stats.kstest((mean - mean.mean()) / mean.std(), "norm").statistic > 0.1
    assert stats.skew(mean) > 1.0


def test_storm_cells_move_with_the_advection(storm_sample):
    spec, fields = storm_sample
    rain = fields["tp"]
    dy, dx = spec["advection"]
    moved = np.corrcoef(rain[1:, :, dx:].ravel(), rain[:-1, :, :-dx].ravel())[0, 1]
    against = np.corrcoef(rain[1:, :, :-dx].ravel(), rain[:-1, :, dx:].ravel())[0, 1]
    assert moved > against + 0.1


def test_storm_truth_is_a_long_simulation_of_the_same_process(storm_sample, tiny_config):
    spec, fields = storm_sample
    truth = synthetic.marginal(spec, "tp", "mm")
    assert truth.kind == "long simulation of the true process" and truth.n == spec["storms"]["truth_steps"] * 256
    data = fields["tp"].ravel() * 1000
    for p in (0.9, 0.99, 0.999):
        assert truth.ppf(p) == pytest.approx(np.quantile(data, p, method="inverted_cdf"), rel=0.15)
    assert truth.cdf(0.0) == pytest.approx(np.mean(data == 0), abs=0.02)
    ens = synthetic.truth_ensemble(spec, tiny_config["data"]["variables"], members=200, seed=2)
    assert ens.sizes["member"] == 200 and ens.tp.attrs["units"] == "mm"
    assert stats.ks_2samp(ens.w.values.ravel(), fields["w"].ravel()).statistic < 0.05
