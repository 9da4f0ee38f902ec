"""The choice of nu (`nu: auto`: the exceedance fit) and Hill's tail index, on samples with
known tails and on the real samples beside the checkout."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from htweather.models import tail_index

C, LOC, SCALE = -0.2, 10.0, 2.0  # a Frechet-type GEV: xi = -c = 0.2
PERIODS = np.array([10.0, 50.0, 100.0])


def _expected_hill_alpha(dist, p):
    """1 / E[log(X/u) | X > u] at u = dist.isf(p): what Hill converges to at tail fraction p."""
    u = dist.isf(p)
    mean_log, _ = integrate.quad(lambda x: dist.sf(x) / x, u, np.inf)
    return p / mean_log


def test_hill_estimator_hand_computed():
    # top 3 of the positive values: e^3, e^2, e^1 over X_(4) = 1 -> mean log ratio 2 -> alpha 1/2
    values = np.array([math.e, 1.0, math.e**3, -5.0, 0.5, np.nan, math.e**2, 0.0])
    assert tail_index.hill_estimator(values, 3) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match="at least 6 positive"):
        tail_index.hill_estimator(values, 5)


def test_hill_estimator_exact_pareto():
    # exact Pareto: log(X_(i) / X_(k+1)) are iid Exp(mean 1/alpha), so Hill is unbiased for
    # 1/alpha with a relative standard error 1/sqrt(k) = 1 %
    rng = np.random.default_rng(3)
    x = rng.uniform(size=200_000) ** (-1 / 3.0)
    assert tail_index.hill_estimator(x, 10_000) == pytest.approx(3.0, rel=0.03)


def test_hill_estimator_student_t5():
    rng = np.random.default_rng(4)
    n, k = 1_000_000, 1_000
    alpha = tail_index.hill_estimator(np.abs(rng.standard_t(5, size=n)), k)
    # second-order bias: about 4.7 at this k / n; within 25 % of the tail index 5
    assert alpha == pytest.approx(5.0, rel=0.25)
    assert alpha == pytest.approx(_expected_hill_alpha(stats.t(5), k / (2 * n)), rel=0.1)


def test_gaussian_hill_reference_matches_simulation():
    rng = np.random.default_rng(5)
    n, k = 4_000_000, 4_000
    x = rng.standard_normal(n)
    y = x - np.median(x)
    for tails, values in (("both", np.abs(y)), ("upper", y)):
        reference = tail_index.gaussian_hill_reference(n, k, tails)
        assert tail_index.hill_estimator(values, k) == pytest.approx(reference, rel=0.05)
    assert tail_index.gaussian_hill_reference(n, k, "upper") == pytest.approx(
        _expected_hill_alpha(stats.norm(), k / n), rel=1e-6)


def test_gaussian_hill_reference_grows_like_u_squared():
    u = stats.norm.isf(10 / 1e30)
    assert tail_index.gaussian_hill_reference(1e30, 10, "upper") / u**2 == pytest.approx(1.0, abs=0.03)
    alphas = [tail_index.gaussian_hill_reference(n, 10, "both") for n in (1e3, 1e5, 1e7)]
    assert alphas == sorted(alphas)
    with pytest.raises(ValueError):
        tail_index.gaussian_hill_reference(100, 50, "upper")
    with pytest.raises(ValueError, match="tails"):
        tail_index.gaussian_hill_reference(100, 5, "lower")


def test_hill_nu_student_t5_is_heavy():
    rng = np.random.default_rng(6)
    out = tail_index.hill_nu(3.0 + 2.0 * rng.standard_t(5, size=500_000), tails="both")
    assert out["n"] == 500_000 and out["k"] == 500
    assert out["heavy"]
    assert out["nu"] == out["alpha"] == pytest.approx(5.0, rel=0.25)
    assert out["alpha_gaussian"] == pytest.approx(tail_index.gaussian_hill_reference(500_000, 500, "both"))


def test_hill_nu_gaussian_is_not_heavy():
    rng = np.random.default_rng(7)
    x = 280.0 + 5.0 * rng.standard_normal(500_000)  # a temperature-like field, with missing values
    x[::1000] = np.nan
    for tails in ("both", "upper"):
        out = tail_index.hill_nu(x, tails=tails)
        assert out["n"] == 499_500
        assert not out["heavy"] and out["nu"] == math.inf
        assert out["alpha"] == pytest.approx(out["alpha_gaussian"], rel=0.15)


def test_hill_nu_zero_inflated_generalised_pareto():
    # precipitation-like: 60 % exact zeros, then a generalised Pareto with xi = 0.2 (alpha = 5)
    rng = np.random.default_rng(8)
    n = 500_000
    x = stats.genpareto.rvs(0.2, scale=2e-3, size=n, random_state=rng)
    x[rng.uniform(size=n) < 0.6] = 0.0
    out = tail_index.hill_nu(x, tails="upper")
    assert out["heavy"]
    # Hill's second-order bias for a GPD at this threshold (tail fraction k / #positive) puts the
    # expected estimate near 3.7, not 5
    expected = _expected_hill_alpha(stats.genpareto(0.2), out["k"] / np.count_nonzero(x > 0))
    assert out["nu"] == pytest.approx(expected, rel=0.1)
    assert out["nu"] == pytest.approx(5.0, rel=0.3)


def test_hill_nu_clips_to_nu_min():
    # Cauchy: alpha = 1, below the smallest nu with finite variance
    out = tail_index.hill_nu(np.random.default_rng(9).standard_cauchy(100_000), tails="both")
    assert out["heavy"] and out["alpha"] == pytest.approx(1.0, rel=0.15)
    assert out["nu"] == 2.5


def test_hill_nu_errors():
    with pytest.raises(ValueError, match="at least 11 finite values beyond the median"):
        tail_index.hill_nu(np.arange(15.0), tails="upper")
    with pytest.raises(ValueError, match="beyond the median"):
        tail_index.hill_nu(np.zeros(10_000), tails="both")
    with pytest.raises(ValueError, match="beyond the median"):
        tail_index.hill_nu(np.full(50, np.nan), tails="both")
    with pytest.raises(ValueError, match="tails"):
        tail_index.hill_nu(np.arange(1000.0), tails="lower")


# --- nu: auto, the exceedance fit ---------------------------------------------------------------

def test_unit_t_exceedance_known_values():
    k = np.array([2.0, 4.0])
    np.testing.assert_allclose(tail_index.unit_t_exceedance(k, math.inf, "upper"), stats.norm.sf(k))
    np.testing.assert_allclose(tail_index.unit_t_exceedance(k, 5.0, "both"),
                               2 * stats.t.sf(k * math.sqrt(5 / 3), 5))
    # a unit-variance t with many degrees of freedom is a normal
    np.testing.assert_allclose(tail_index.unit_t_exceedance(k, 1e6, "upper"), stats.norm.sf(k), rtol=1e-4)


@pytest.mark.parametrize("nu", [3.0, 5.0, 10.0])
def test_exceedance_fit_recovers_the_student_t(nu):
    x = 4.0 + 0.5 * np.random.default_rng(int(nu)).standard_t(nu, size=1_000_000)
    out = tail_index.choose_nu(x, tails="both")
    assert out["heavy"] and out["nu"] == pytest.approx(nu, rel=0.1)


def _zero_inflated_gpd(n=500_000, seed=8):
    rng = np.random.default_rng(seed)
    x = stats.genpareto.rvs(0.2, scale=2e-3, size=n, random_state=rng)
    x[rng.uniform(size=n) < 0.6] = 0.0
    return x


def test_capped_zero_inflated_pareto_is_heavy_where_hill_calls_it_light():
    """The radar case: the very top sits under a ceiling (saturation, block means), so the top
    0.1 % look light to Hill, while the tail below the ceiling is extremely heavy."""
    x = _zero_inflated_gpd()
    capped = np.minimum(x, np.quantile(x, 0.997))
    assert not tail_index.hill_nu(capped, tails="upper")["heavy"]
    out = tail_index.choose_nu(capped, tails="upper")
    assert out["heavy"] and out["nu"] < 4 and out["hill_nu"] == math.inf
    assert out["exceedance"][-1] > 100 * out["gaussian_exceedance"][-1]
    assert tail_index.choose_nu(x, tails="upper")["heavy"]


def test_light_tails_get_gaussian_noise():
    rng = np.random.default_rng(11)
    for x, tails in ((280.0 + 5.0 * rng.standard_normal(1_000_000), "both"),
                     (rng.standard_normal(1_000_000), "upper"), (rng.uniform(size=1_000_000), "both")):
        out = tail_index.choose_nu(x, tails=tails)
        assert not out["heavy"] and out["nu"] == math.inf


def test_synthetic_variables():
    """The copula generator's marginals (t2m Normal: light; w 0.2 t(5) and tp zero-inflated GPD:
    heavy) on 400 independent 16 x 16 fields, and the storm generator's (the default: rain and
    updrafts from storm cells heavy, temperature light) on 3000 steps."""
    from htweather.config import load_config
    from htweather.data import synthetic

    spec = load_config({"data": {"synthetic": {"generator": "copula"}}})["data"]["synthetic"]
    fields = synthetic.physical_independent(spec, 400, np.random.default_rng(3))
    assert tail_index.choose_nu(fields["t2m"], "both")["nu"] == math.inf
    w = tail_index.choose_nu(fields["w"], "both")
    assert w["heavy"] and w["nu"] == pytest.approx(5.0, rel=0.3)
    assert tail_index.choose_nu(fields["tp"], "upper")["heavy"]

    spec = load_config({})["data"]["synthetic"]
    fields = synthetic.physical_sequence(spec, 3000, np.random.default_rng(3))
    assert tail_index.choose_nu(fields["t2m"], "both")["nu"] == math.inf
    assert tail_index.choose_nu(fields["w"], "both")["nu"] < 6
    assert tail_index.choose_nu(fields["tp"], "upper")["nu"] < 4


@pytest.mark.parametrize("path,variable,tails,heavy", [
    ("wfde5-uk-2017-01/precipitation_flux.nc", "pr", "upper", True),
    ("w5e5-daily-pr-1979-2014.nc", "pr", "upper", True),
    ("wfde5-uk-2017-01/air_temperature.nc", "Tair", "both", False),
    ("ERA5_monthly_t2m_msl_tp.nc", "t2m", "both", False),
])
def test_real_samples(samples_dir, path, variable, tails, heavy):
    import xarray as xr

    with xr.open_dataset(samples_dir / path) as ds:
        out = tail_index.choose_nu(ds[variable].values, tails)
    assert out["heavy"] == heavy
    assert (out["nu"] < 4) if heavy else math.isinf(out["nu"])


def test_real_radar_rain_is_heavy(radar_dir):
    import xarray as xr

    path = sorted(radar_dir.glob("*.grib2"))[0]
    with xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""}) as ds:
        rain = ds["unknown"].values[::4, ::4]
    rain = np.where(rain == -3, np.nan, rain)  # -3: no radar coverage
    out = tail_index.choose_nu(rain, "upper")
    assert out["heavy"] and out["nu"] == tail_index.NU_MIN
