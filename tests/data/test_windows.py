"""Windows of consecutive time steps: gaps and edges break them."""

import numpy as np
import pandas as pd

from htweather.data.windows import regular_windows


def test_regular_windows_skip_gaps_and_edges():
    times = pd.DatetimeIndex(list(pd.date_range("2000-01-01", periods=5, freq="6h"))
                             + list(pd.date_range("2000-01-03", periods=4, freq="6h")))
    # history 1 before the target: targets 1..4 and 6..8 (5 follows a gap)
    np.testing.assert_array_equal(regular_windows(times, before=1, after=0), [1, 2, 3, 4, 6, 7, 8])
    np.testing.assert_array_equal(regular_windows(times, before=1, after=2), [1, 2, 6])
    assert regular_windows(times[:2], before=2, after=1).size == 0
