"""Which model is closest to perfect: each metric's orientation."""

import math

import pytest

from htweather.evaluation import ranking

N = 400_000


def test_ranking_orientation():
    assert ranking.distance_from_perfect("exceedance_ratio_p99", 2.0) == pytest.approx(math.log(2))
    assert ranking.distance_from_perfect("exceedance_ratio_p99", 0.5) == pytest.approx(math.log(2))
    assert ranking.distance_from_perfect("exceedance_ratio_p999", 0.0) == math.inf
    assert ranking.distance_from_perfect("quantile_rel_error_0.999", -0.3) == pytest.approx(0.3)
    assert ranking.distance_from_perfect("crps", 0.2) == 0.2
