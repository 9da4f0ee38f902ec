"""Forecast start times: spread over the test split, each with its history and lead steps."""

import numpy as np
import pandas as pd
import pytest

from htweather.errors import ConfigError
from htweather.generation import forecast


def test_start_indices_spread_over_the_split():
    times = pd.date_range("2000-01-01", periods=100, freq="6h")
    starts = forecast.start_indices(times, history=2, lead=3, count=5)
    assert starts[0] == 1 and starts[-1] == 96 and len(starts) == 5
    assert np.all(np.diff(starts) > 20)
    np.testing.assert_array_equal(forecast.start_indices(times, history=2, lead=3, count="all"), np.arange(1, 97))
    with pytest.raises(ConfigError, match="forecast.lead_steps: the test split has no 5 consecutive"):
        forecast.start_indices(times[:3], history=2, lead=3, count=5)
