"""Ensemble CRPS throughput: htweather.evaluation.scores against properscoring with and without numba.

Builds one set of arrays (fixed seed; observations and members normal, rounded to 0.01 so
that there are ties, float64, members on the last axis, unsorted), then times, best of a few
repeats:

- htweather: `htweather.evaluation.scores.crps_ensemble` (sort-based, O(M log M) per point, chunked);
- properscoring + numba: `properscoring.crps_ensemble`, its default path when numba imports
  (a numba gufunc after np.sort; the path taken is named by
  `properscoring._crps._crps_ensemble_core.__name__`);
- properscoring without numba: `properscoring._crps._crps_ensemble_vectorized`, the function
  `_crps_ensemble_core` falls back to when numba is missing. It is O(M^2) in time and memory
  per point, so it runs on the first `--slow-points` points only; its throughput is per point.

A second table does the same for the climatological case of the evaluation step (one ensemble
per grid cell scoring every observed time): `htweather.evaluation.scores.crps_climatology`, which sorts
each cell's ensemble once and binary-searches each observation
(`htweather.evaluation.scores.crps_against_sorted`), against properscoring with the ensemble repeated
for every time.

It prints points/s, the ratio to properscoring + numba and the largest relative difference to
htweather on the same points, and exits non-zero if any difference exceeds 1e-9. Not a test:
run it by hand.

  python benchmarks/crps_throughput.py --points 200000 --members 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import properscoring
from properscoring import _crps

from htweather.evaluation.scores import crps_against_sorted, crps_climatology, crps_ensemble

TOLERANCE = 1e-9


def best_time(function, repeats: int) -> tuple[float, np.ndarray]:
    """(best wall seconds over `repeats` calls, result of the last call)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - t0)
    return best, result


def max_relative_difference(values: np.ndarray, reference: np.ndarray) -> float:
    scale = np.abs(reference)
    difference = np.abs(values - reference)
    both_zero = (scale == 0) & (difference == 0)
    return float(np.max(np.where(both_zero, 0.0, difference / np.where(scale == 0, 1.0, scale))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200_000, help="forecast points (observations)")
    parser.add_argument("--members", type=int, default=32, help="ensemble members per point")
    parser.add_argument("--slow-points", type=int, default=5_000,
                        help="points given to the O(M^2) no-numba path (at most --points)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clim-times", type=int, default=2196, help="climatological case: observed times")
    parser.add_argument("--clim-cells", type=int, default=256, help="climatological case: grid cells")
    parser.add_argument("--clim-members", type=int, default=256, help="climatological case: members")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    mean = rng.normal(0.0, 3.0, size=args.points)
    observations = np.round(mean + rng.standard_normal(args.points), 2)
    forecasts = np.round(mean[:, None] + rng.standard_normal((args.points, args.members)), 2)
    slow = min(args.slow_points, args.points)
    core = getattr(_crps._crps_ensemble_core, "__name__", repr(_crps._crps_ensemble_core))
    print(f"{args.points} points x {args.members} members, float64, unsorted; best of {args.repeats}; "
          f"{os.cpu_count()} CPU cores; properscoring default path: {core}")
    if core != "_crps_ensemble_gufunc":
        # its default path would then be the O(M^2) one, on all points: nothing to compare with
        sys.exit("properscoring did not find numba (install numba): no fast path to compare with")

    t_ours, ours = best_time(lambda: crps_ensemble(observations, forecasts), args.repeats)
    t_numba, numba = best_time(lambda: properscoring.crps_ensemble(observations, forecasts), args.repeats)
    weights = np.ones_like(forecasts[:slow])
    t_slow, plain = best_time(
        lambda: _crps._crps_ensemble_vectorized(observations[:slow], forecasts[:slow], weights), args.repeats)

    rows = [  # (name, points timed, seconds, max relative difference to htweather)
        ("htweather.evaluation.scores", args.points, t_ours, 0.0),
        (f"properscoring + numba ({core})", args.points, t_numba, max_relative_difference(numba, ours)),
        ("properscoring, no numba (vectorized)", slow, t_slow, max_relative_difference(plain, ours[:slow])),
    ]
    reference = args.points / t_numba
    print(f"{'path':<46} {'points':>8} {'best s':>9} {'points/s':>11} {'x numba':>8} {'max rel diff':>13}")
    for name, points, seconds, difference in rows:
        rate = points / seconds
        print(f"{name:<46} {points:8d} {seconds:9.4f} {rate:11.3e} {rate / reference:8.2f} {difference:13.2e}")
    worst = max(difference for *_, difference in rows)

    # Climatological CRPS: `cells` ensembles of `clim_members`, each scoring `times` observations.
    times, cells, clim_members = args.clim_times, args.clim_cells, args.clim_members
    ensemble = rng.gamma(2.0, size=(clim_members, cells))
    observed = np.round(rng.gamma(2.0, size=(times, cells)), 2)
    t_clim, clim = best_time(lambda: crps_climatology(ensemble, observed), args.repeats)
    sorted_members = np.sort(ensemble, axis=0).T
    per_point = np.stack([crps_against_sorted(observed[:, c], sorted_members[c]) for c in range(cells)], axis=1)

    def properscoring_climatology():
        forecast = np.ascontiguousarray(np.broadcast_to(ensemble.T, (times, cells, clim_members)))
        return properscoring.crps_ensemble(observed, forecast)

    t_ps, ps = best_time(properscoring_climatology, args.repeats)
    points = times * cells
    print(f"\nclimatological: {cells} cells x {clim_members} members, each scoring {times} times ({points} points)")
    print(f"{'path':<46} {'points':>8} {'best s':>9} {'points/s':>11} {'x numba':>8} {'max rel diff':>13}")
    for name, seconds, difference in [("htweather.evaluation.scores.crps_climatology", t_clim,
                                       abs(clim - ps.mean()) / ps.mean()),
                                      (f"properscoring + numba ({core})", t_ps,
                                       max_relative_difference(ps, per_point))]:
        rate = points / seconds
        print(f"{name:<46} {points:8d} {seconds:9.4f} {rate:11.3e} {rate / (points / t_ps):8.2f} {difference:13.2e}")
        worst = max(worst, difference)
    if worst > TOLERANCE:
        sys.exit(f"disagreement: max relative difference {worst:.2e} > {TOLERANCE:g}")


if __name__ == "__main__":
    main()
