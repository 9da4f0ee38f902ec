"""Paired comparisons: the interval formula on known cases, the weighted tail KS against scipy,
and, by simulation on cheap stand-in generators (no network), that the intervals are honest:
two copies of one generator are `indistinguishable` in at least 93 of 100 repetitions, and a
generator whose tail is 10 % too light is found `worse`."""

import numpy as np
import pytest
from scipy import stats

from htweather.evaluation import comparisons
from htweather.evaluation.bootstrap import SortedUnits
from htweather.tail_metrics import key_metrics

OPTS = {"quantiles": [0.99, 0.999], "tail_probability": 0.99, "bootstrap": 60, "block_length": 8,
        "confidence": 0.95}
KEY_METRICS = ["exceedance_ratio_p99", "exceedance_ratio_p999", "quantile_rel_error_0.99",
               "quantile_rel_error_0.999", "tail_ks"]


def test_errors_are_distances_from_the_ideal_value():
    assert comparisons.error("exceedance_ratio_p99", 0.7) == pytest.approx(0.3)
    assert comparisons.error("exceedance_ratio_p999", 1.4) == pytest.approx(0.4)
    assert comparisons.error("quantile_rel_error_0.999", -0.2) == pytest.approx(0.2)
    assert comparisons.error("tail_ks", 0.1) == pytest.approx(0.1)
    assert comparisons.error("crps", 0.5) == 0.5 and comparisons.error("twcrps_p99", 0.01) == 0.01


def test_interval_is_welch_t_with_the_data_term():
    a, b = np.array([0.10, 0.14, 0.12]), np.array([0.30, 0.26, 0.28])
    data = np.random.default_rng(0).normal(0, 0.01, 400)
    out = comparisons.interval(a, b, data, 0.95)
    seed = a.var(ddof=1) / 3 + b.var(ddof=1) / 3
    v = seed + data.var(ddof=1)
    nu = v**2 / ((a.var(ddof=1) / 3) ** 2 / 2 + (b.var(ddof=1) / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, nu) * np.sqrt(v)
    assert out["difference"] == pytest.approx(-0.16)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((-0.16 - half, -0.16 + half))
    assert out["verdict"] == "better" and out["seed_variance"]
    assert comparisons.interval(b, a, data)["verdict"] == "worse"
    assert comparisons.interval(a, a + 0.001, data)["verdict"] == "indistinguishable"


def test_one_replicate_uses_the_sampling_variance_and_says_so():
    out = comparisons.interval([0.1], [0.2], [0.0, 0.0], 0.95, model_within=0.0004, baseline_within=0.0005)
    half = stats.norm.ppf(0.975) * np.sqrt(0.0009)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((-0.1 - half, -0.1 + half))
    assert not out["seed_variance"]


def test_tail_metrics_without_resampling_equal_the_plain_ones():
    rng = np.random.default_rng(1)
    gen, data = rng.standard_t(5, (200, 50)), rng.standard_t(5, (300, 50))
    for tails in ("upper", "lower", "both"):
        g, d = SortedUnits(gen), SortedUnits(data)
        values = comparisons.tail_metric_values(g, d, g.cumulative(), d.cumulative(), [0.99, 0.999], 0.99, tails)
        plain = key_metrics(gen.ravel(), data.ravel(), tails, 0.99)
        assert set(plain) <= set(values), tails
        for name, value in plain.items():
            assert values[name] == pytest.approx(value), (tails, name)
        assert ("exceedance_ratio_p99" in values) == (tails != "lower")
        assert ("exceedance_ratio_p001" in values) == (tails != "upper")


def test_weighted_ks_equals_ks_of_the_repeated_sample():
    rng = np.random.default_rng(2)
    gen, data = np.sort(rng.normal(size=300)), np.sort(rng.normal(0.2, 1, 200))
    weights = rng.integers(0, 4, 200)
    expected = stats.ks_2samp(gen, np.repeat(data, weights)).statistic
    assert comparisons._weighted_ks(gen, data, weights) == pytest.approx(expected)


# --- the simulation --------------------------------------------------------------------------
# Stand-ins for trained generators: generalised Pareto values (precipitation-like, upper tail)
# on fields of CELLS cells with a weak field-wide factor, the test data AR(1) in time like the
# default's (lag-one correlation 0.8); each "training run" has its own tail scale (training-seed
# variance), then an ensemble of independent members of the default size.

XI = 0.2
MEMBERS, REPLICATES = 256, 3   # the default sampling.members; 3 replicates per model
SEED_SPREAD = 0.01             # each run's tail scale is off by a factor exp(N(0, 0.01^2))


def fields(n: int, cells: int, xi: float, scale: float, rng, persistence: float = 0.0) -> np.ndarray:
    """(n, cells) GPD(xi, scale) values: a Gaussian copula with 5 % of the variance shared by the
    whole field, AR(1) in time with lag-one correlation `persistence`."""
    latent = np.empty((n, cells + 1))
    latent[0] = rng.normal(size=cells + 1)
    shocks = rng.normal(size=(n, cells + 1)) * np.sqrt(1 - persistence**2)
    for t in range(1, n):
        latent[t] = persistence * latent[t - 1] + shocks[t]
    z = np.sqrt(0.05) * latent[:, :1] + np.sqrt(0.95) * latent[:, 1:]
    return stats.genpareto.ppf(stats.norm.cdf(z), xi, scale=scale)


def verdicts(model_xi: float, repetitions: int, cells: int, times: int, resamples: int, seed: int):
    rng = np.random.default_rng(seed)
    opts = {**OPTS, "bootstrap": resamples}
    runs = lambda xi: [fields(MEMBERS, cells, xi, np.exp(rng.normal(0, SEED_SPREAD)), rng) for _ in range(REPLICATES)]
    out = {m: [] for m in KEY_METRICS}
    for _ in range(repetitions):
        data = fields(times, cells, XI, 1.0, rng, persistence=0.8)
        result = comparisons.compare_tails(runs(model_xi), runs(XI), data, "upper", opts, rng)
        for m in KEY_METRICS:
            out[m].append(result[m]["verdict"])
    return out


@pytest.mark.slow
def test_two_copies_of_one_generator_are_indistinguishable_in_at_least_93_of_100():
    found = verdicts(XI, 100, cells=256, times=800, resamples=60, seed=11)
    coverage = {m: v.count("indistinguishable") for m, v in found.items()}
    print("indistinguishable in 100 repetitions:", coverage)
    assert all(c >= 93 for c in coverage.values()), coverage


@pytest.mark.slow
def test_a_tail_10_percent_too_light_is_found_worse_in_most_repetitions():
    """The generator's GPD shape is 10 % smaller (0.18 against 0.2): 28 % too little mass beyond
    the data's 99.9th percentile. Fields of the default's 32 x 32 cells and test split length."""
    found = verdicts(0.9 * XI, 30, cells=1024, times=2000, resamples=40, seed=12)
    power = {m: v.count("worse") for m, v in found.items()}
    print("found worse in 30 repetitions:", power)
    assert all(v.count("better") == 0 for v in found.values()), found
    assert power["exceedance_ratio_p999"] > 15 and power["quantile_rel_error_0.999"] > 15, power
