"""Scores against the paired truth: SAL's location term, flat rank histograms for an ensemble
drawn from the truth's own distribution, and the field metrics of perfect and biased ensembles."""

import numpy as np
import pytest

from htweather.data.coarsening import Coarsening
from htweather.evaluation import scores
from htweather.evaluation.downscaling import (FIELD_RETURN_PERIODS, RANK_TOLERANCE, field_metrics,
                                               field_peak_return_levels, sal_location)
from htweather.evaluation.forecasts import rank_flatness


def blob(shape, centre, radius=2.0, peak=5.0):
    yy, xx = np.indices(shape)
    return peak * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * radius**2))


def test_sal_location_of_a_shifted_object_is_the_shift_over_the_diagonal():
    shape = (32, 32)
    observed, generated = blob(shape, (10, 10)), blob(shape, (10, 18))
    # one object each: L2 = 0, L1 = |shift| / the grid's diagonal
    assert sal_location(generated, observed) == pytest.approx(8 / np.hypot(31, 31), rel=1e-6)
    assert sal_location(observed, observed) == 0.0
    assert np.isnan(sal_location(np.zeros(shape), observed))


def test_sal_location_counts_the_spread_of_objects_about_their_centre():
    shape = (32, 32)
    one = blob(shape, (16, 16))
    two = blob(shape, (16, 8)) + blob(shape, (16, 24))  # same centre of mass, objects 8 cells from it
    l2 = 2 * 8 / np.hypot(31, 31)
    assert sal_location(two, one) == pytest.approx(l2, rel=1e-3)


def test_an_ensemble_drawn_from_the_truths_own_distribution_has_a_flat_rank_histogram():
    rng = np.random.default_rng(0)
    # rain-like: an atom at 0 (ties broken at random) and a heavy tail
    def draw(shape):
        return rng.pareto(3.0, shape) * (rng.random(shape) < 0.4)
    truth, ensemble = draw((200, 16, 16)), draw((200, 16, 16, 8))
    counts = scores.rank_histogram(truth, ensemble, rng)
    assert rank_flatness(counts) < RANK_TOLERANCE / 5
    # and a too narrow one is not flat
    narrow = 0.3 * ensemble + 0.7 * ensemble.mean(axis=-1, keepdims=True)
    assert rank_flatness(scores.rank_histogram(truth, narrow, rng)) > RANK_TOLERANCE


STATS = {"grid": {"latitude": list(np.linspace(55, 51.125, 32)), "longitude": list(np.linspace(-3, 0.875, 32))},
         "variables": {"tp": {"lower_bound": 0.0, "units": "mm"}}, "channels": ["tp"]}


def test_field_metrics_are_zero_for_the_truth_itself_and_see_a_bias():
    rng = np.random.default_rng(1)
    truth = np.stack([blob((32, 32), rng.uniform(4, 28, 2), peak=rng.pareto(3) + 1) for _ in range(40)])
    truth = np.where(truth > 0.1, truth, 0.0)
    coarsening = Coarsening(STATS, 4)
    perfect = field_metrics(truth, np.repeat(truth[:, None], 3, axis=1), coarsening, "tp")
    for metric in ("block_mean_rel_error", "cell_quantile_rel_error_0.99", "quantile_rel_error_0.999",
                   "dry_fraction_error", "sal_location", "psd_log_error", "field_max_return_level_rel_error_10"):
        assert perfect[metric] == pytest.approx(0.0, abs=1e-12), metric
    assert np.isnan(perfect["field_max_return_level_rel_error_100"])  # 40 fields: no 100-field level
    doubled = field_metrics(truth, 2 * truth[:, None], coarsening, "tp")
    assert doubled["block_mean_rel_error"] == pytest.approx(1.0)
    assert doubled["cell_quantile_rel_error_0.99"] == pytest.approx(1.0)
    assert doubled["sal_location"] == pytest.approx(0.0, abs=1e-12)  # same places


def test_per_cell_quantiles_of_an_ensemble_from_the_truths_own_distribution_are_unbiased():
    rng = np.random.default_rng(7)
    def draw(shape):  # rain-like: dry atom, heavy tail, the same at every cell
        return rng.pareto(3.0, shape) * (rng.random(shape) < 0.4)
    truth, ensemble = draw((128, 32, 32)), draw((128, 8, 32, 32))
    found = field_metrics(truth, ensemble, Coarsening(STATS, 4), "tp")
    # pooling the 8 x 128 members per cell would read +31 % at q99.9 and +5 % at q99
    assert abs(found["cell_quantile_rel_error_0.99"]) < 0.03
    assert abs(found["cell_quantile_rel_error_0.999"]) < 0.06


def test_fields_beyond_twice_the_training_maximum_are_counted():
    rng = np.random.default_rng(2)
    truth = rng.gamma(0.5, 2.0, (10, 32, 32))
    ensemble = rng.gamma(0.5, 2.0, (10, 4, 32, 32))
    top = float(truth.max())
    ensemble[3, 1, 5, 5] = 2.5 * top   # one absurd field of 40
    ensemble[6, 0, 9, 9] = 1.5 * top   # beyond the maximum, not beyond twice it
    found = field_metrics(truth, ensemble, Coarsening(STATS, 4), "tp", training_max=top)
    assert found["fields_beyond_training_max"] == pytest.approx(1 / 40)


def test_field_peak_return_levels_recover_a_known_gev():
    """Peaks drawn from a GEV with known parameters (xi = 0.2): the fitted 10- and 100-field levels
    within 3.5 standard deviations of the true ones. Over 40 samples of 4000 peaks the relative
    errors were unbiased (means -0.002, -0.003) with standard deviations 0.010 and 0.029 (over
    200 samples of 128 peaks, as many as the storms config's downscaled times: means +0.001,
    +0.004, standard deviations 0.06 and 0.17)."""
    from scipy import stats
    c, loc, scale = -0.2, 10.0, 3.0
    peaks = stats.genextreme.rvs(c, loc=loc, scale=scale, size=4000, random_state=np.random.default_rng(4))
    true = stats.genextreme.ppf(1 - 1 / np.array(FIELD_RETURN_PERIODS), c, loc=loc, scale=scale)
    errors = field_peak_return_levels(peaks, lower_bound=None) / true - 1
    assert np.all(np.abs(errors) < 3.5 * np.array([0.010, 0.029])), errors


def test_field_max_return_levels_of_a_scaled_ensemble_are_off_by_the_scale():
    """Every member 1.3 times the truth: each field's peak 1.3 times the truth's, so every return
    level (the GEV fit is scale-equivariant) 30 % high; fields with no rain at the bound."""
    rng = np.random.default_rng(5)
    truth = np.stack([blob((32, 32), rng.uniform(4, 28, 2), peak=rng.pareto(3) + 1) * (rng.random() < 0.8)
                      for _ in range(300)])
    found = field_metrics(truth, np.repeat(1.3 * truth[:, None], 2, axis=1), Coarsening(STATS, 4), "tp")
    for period in FIELD_RETURN_PERIODS:
        assert found[f"field_max_return_level_rel_error_{period}"] == pytest.approx(0.3, abs=0.01), period


def test_etccdi_indices_of_a_known_daily_series():
    """One cell, 2001 and 2002: wet days of 2 mm every other day, an 11-day dry spell, a 5-day wet
    spell of 3 mm, and one day of 40 mm in 2002."""
    import pandas as pd
    from htweather.evaluation.downscaling import etccdi_indices

    times = pd.date_range("2001-01-01", "2002-12-31", freq="D")
    rain = np.where(np.arange(len(times)) % 2 == 0, 2.0, 0.0)
    rain[100:110] = 0.0   # 2001: an 11-day dry spell (day 99 is dry already)
    rain[200:205] = 3.0   # 2001: 5 wet days in a row
    rain[400] = 40.0      # 2002: the wettest day
    found = etccdi_indices(rain[:, None], times, "mm day-1")
    np.testing.assert_array_equal(found["rx1day"][:, 0], [3.0, 40.0])
    np.testing.assert_array_equal(found["cdd"][:, 0], [11, 1])
    np.testing.assert_array_equal(found["cwd"][:, 0], [5, 1])
    year = rain[:365]
    assert found["sdii"][0, 0] == pytest.approx(year[year >= 1].mean())


def test_etccdi_errors_are_zero_for_the_truth_and_see_doubled_amounts():
    import pandas as pd
    from htweather.evaluation.downscaling import consecutive_days, etccdi_errors

    times = pd.date_range("2003-01-01", periods=730, freq="D")
    rng = np.random.default_rng(6)
    truth = np.where(rng.random((730, 4, 4)) < 0.4, 1.0 + rng.gamma(0.8, 5.0, (730, 4, 4)), 0.0)  # wet days >= 1 mm
    assert consecutive_days(times) and not consecutive_days(times[::2])
    same = etccdi_errors(truth, np.repeat(truth[:, None], 3, axis=1), times, "mm/d")
    assert set(same) == {"etccdi_rx1day_rel_error", "etccdi_sdii_rel_error", "etccdi_cdd_rel_error",
                         "etccdi_cwd_rel_error"}
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    doubled = etccdi_errors(truth, 2 * truth[:, None], times, "mm/d")  # the same wet days, twice the rain
    assert doubled["etccdi_rx1day_rel_error"] == pytest.approx(1.0)
    assert doubled["etccdi_sdii_rel_error"] == pytest.approx(1.0)
    assert doubled["etccdi_cdd_rel_error"] == 0 and doubled["etccdi_cwd_rel_error"] == 0


def test_etccdi_indices_are_for_precipitation_in_a_rate_or_a_daily_amount():
    from htweather.evaluation.downscaling import daily_rain_rate

    rain = {"lower_bound": 0.0, "trace": 0.1}
    assert daily_rain_rate({**rain, "units": "mm"}) == "mm/d"  # daily totals
    assert daily_rain_rate({**rain, "units": "mm day-1"}) == "mm day-1"
    assert daily_rain_rate({**rain, "units": "kg m-2 s-1"}) == "kg m-2 s-1"
    assert daily_rain_rate({"lower_bound": 0.0, "trace": None, "units": "m s-1"}) is None  # a wind speed
    assert daily_rain_rate({**rain, "units": "K"}) is None


def test_a_masked_cell_leaves_the_etccdi_errors_as_they_are():
    import pandas as pd
    from htweather.evaluation.downscaling import etccdi_errors

    times = pd.date_range("2003-01-01", periods=730, freq="D")
    rng = np.random.default_rng(7)
    truth = np.where(rng.random((730, 4, 4)) < 0.4, 1.0 + rng.gamma(0.8, 5.0, (730, 4, 4)), 0.0)
    ensemble = np.where(rng.random((730, 2, 4, 4)) < 0.3, 1.0 + rng.gamma(0.8, 5.0, (730, 2, 4, 4)), 0.0)
    masked_truth, masked_ensemble = truth.copy(), ensemble.copy()
    masked_truth[:, 0, 0] = np.nan  # sea: NaN at every time, on both sides
    masked_ensemble[:, :, 0, 0] = np.nan
    # the other 15 cells alone
    real = etccdi_errors(truth.reshape(730, 16)[:, 1:], ensemble.reshape(730, 2, 16)[:, :, 1:], times, "mm/d")
    found = etccdi_errors(masked_truth, masked_ensemble, times, "mm/d")
    for metric, value in real.items():
        assert found[metric] == pytest.approx(value, rel=1e-9), metric
    assert found["etccdi_cdd_rel_error"] != 0
