"""Baselines that change the data or the preconditioning: EDM + INC, EDM + softlog, EDM + PCP."""

import numpy as np
import pytest
from scipy import stats

from htweather.models import input_maps
from htweather.models.input_maps import InverseCDF, SoftLog, channel_sigma_data


@pytest.fixture
def fields():
    """(time, channel, lat, lon): a Student-t(4) channel and a 60 % dry exponential channel."""
    rng = np.random.default_rng(1)
    heavy = rng.standard_t(4, size=(400, 6, 5))
    rain = np.where(rng.uniform(size=(400, 6, 5)) < 0.6, 0.0, rng.exponential(size=(400, 6, 5)))
    return np.stack([heavy, rain], axis=1)


def test_inverse_cdf_gaussianises_the_training_data(fields):
    inc = InverseCDF.fit(fields)
    z = inc.forward(fields)
    # the continuous channel becomes standard normal
    assert stats.kstest(z[:, 0].ravel(), "norm").statistic < 0.01
    # the dry atom goes to one score: the middle of its probability block, Phi^-1(p_dry / 2)
    dry = fields[:, 1] == 0
    p_dry = dry.mean()
    np.testing.assert_allclose(z[:, 1][dry], stats.norm.ppf(p_dry / 2), atol=2e-3)
    assert z[:, 1][~dry].min() > stats.norm.ppf(p_dry) - 1e-3


def test_inverse_cdf_round_trip_and_cap_at_training_extremes(fields):
    inc = InverseCDF.fit(fields)
    back = inc.inverse(inc.forward(fields))
    wet = fields[:, 1] > 0
    np.testing.assert_allclose(back[:, 0], fields[:, 0], atol=2e-3 * np.ptp(fields[:, 0]))
    np.testing.assert_allclose(back[:, 1][wet], fields[:, 1][wet], atol=2e-3 * np.ptp(fields[:, 1]))
    assert np.all(back[:, 1][~wet] == 0)
    # scores far beyond the training range map to the training extremes, never beyond
    extreme = np.full((1, 2, 6, 5), 9.0)
    np.testing.assert_array_equal(inc.inverse(extreme)[0, 0], fields[:, 0].max())
    np.testing.assert_array_equal(inc.inverse(-extreme)[0, 1], 0.0)


def test_inverse_cdf_state_round_trip_and_mask(fields):
    mask = np.ones((6, 5), dtype=bool)
    mask[0, :] = False
    poisoned = fields.copy()
    poisoned[:, :, 0, :] = 1e6  # masked cells must not enter the CDF
    inc = InverseCDF.fit(poisoned, mask)
    assert inc.table[0].max() < 1e3
    again = InverseCDF.from_state(inc.state())
    np.testing.assert_array_equal(again.forward(fields), inc.forward(fields))


def test_channel_sigma_data_is_each_channels_standard_deviation():
    rng = np.random.default_rng(2)
    normal = rng.normal(0, 2.0, size=(2000, 1, 10, 10))
    t4 = rng.standard_t(4, size=(2000, 1, 10, 10))
    t4 = t4 / t4.std()  # standardised, as the store's fields are
    # mostly dry rain, standardised: its interquartile range is 0, its standard deviation 1
    rain = np.where(rng.random((2000, 1, 10, 10)) < 0.8, 0.0, rng.gamma(0.5, 3.0, (2000, 1, 10, 10)))
    rain = (rain - rain.mean()) / rain.std()
    assert np.subtract(*np.quantile(rain, [0.75, 0.25])) == 0
    sd = channel_sigma_data(np.concatenate([normal, t4, rain], axis=1))
    assert sd[0] == pytest.approx(2.0, rel=0.02)
    assert sd[1] == pytest.approx(1.0, rel=1e-6)
    assert sd[2] == pytest.approx(1.0, rel=1e-6)  # not the floor a robust scale of the bulk would hit


def test_softlog_is_the_signed_log_restandardised_and_inverts_exactly(fields):
    soft = SoftLog.fit(fields)
    y = soft.forward(fields)
    for c in range(2):  # re-standardised on the training data
        assert abs(y[:, c].mean()) < 1e-5 and abs(y[:, c].std() - 1) < 1e-5
    raw = np.sign(fields[:, 0]) * np.log1p(np.abs(fields[:, 0]))
    np.testing.assert_allclose(y[:, 0], (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(soft.inverse(y), fields, rtol=1e-5, atol=1e-5)
    # unbounded, unlike INC: a value beyond the training range maps back beyond it
    far = np.full((1, 2, 6, 5), 40.0)
    np.testing.assert_allclose(soft.inverse(soft.forward(far)), far, rtol=1e-5)
    # the log compresses a Student-t(4) tail: far lighter kurtosis than the input's
    assert stats.kurtosis(y[:, 0].ravel()) < 0.5 * stats.kurtosis(fields[:, 0].ravel())


def test_input_maps_by_name_and_from_their_state(fields):
    assert input_maps.fit("standard", fields) is None and input_maps.from_state(None) is None
    for name, kind in (("inc", InverseCDF), ("softlog", SoftLog)):
        fitted = input_maps.fit(name, fields)
        again = input_maps.from_state(fitted.state())
        assert isinstance(again, kind)
        np.testing.assert_array_equal(again.forward(fields), fitted.forward(fields))
    legacy = InverseCDF.fit(fields).state()
    del legacy["kind"]  # a model file written before softlog existed
    assert isinstance(input_maps.from_state(legacy), InverseCDF)


def test_pcp_on_standardised_fields_is_edm():
    """EDM + PCP resolves sigma_data from the training fields: on standardised fields, mostly dry
    rain included, every channel's is 1 (EDM's), not a 0.05 floor."""
    from htweather.models import assemble

    rng = np.random.default_rng(3)
    t2m = rng.normal(size=(500, 1, 8, 8))
    rain = np.where(rng.random((500, 1, 8, 8)) < 0.85, 0.0, rng.gamma(0.4, 4.0, (500, 1, 8, 8)))
    fields = np.concatenate([t2m, rain], axis=1)
    fields = (fields - fields.mean(axis=(0, 2, 3), keepdims=True)) / fields.std(axis=(0, 2, 3), keepdims=True)
    spec = assemble.ModelSpec(name="edm_pcp", family="edm", nu=[np.inf, np.inf], sigma_data=None,
                              variables=["t2m", "tp"], architecture={})
    resolved, _, _ = assemble.resolve(spec, fields.astype(np.float32), None, {"t2m": "both", "tp": "upper"})
    np.testing.assert_allclose(resolved.sigma_data, [1.0, 1.0], rtol=1e-5)
