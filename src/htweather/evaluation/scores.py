"""Proper scores and calibration of ensembles: every CRPS of the pipeline (an ensemble forecast
per point, one ensemble against many observations, the climatological CRPS of an unconditional
ensemble), rank histograms, spread/skill, Brier score, and the area weights of the means.

Pure numpy. Conventions:

- ``observations`` has shape (...), ``ensemble`` has shape (..., M): members on the LAST axis.
- Gridded inputs end in (lat, lon): observations (..., lat, lon), ensemble (..., lat, lon, M).
  ``weights`` is None (equal weights), shape (lat,) (e.g. `latitude_weights`) or (lat, lon),
  broadcast against the trailing grid axes.
- Computations are in float64. A NaN observation marks a missing or masked cell: its score is
  NaN in the per-point functions and it is left out (its weight dropped) in the means.
- NaN members are not dropped (unlike properscoring): they make that point's CRPS NaN.
"""

from __future__ import annotations

import numpy as np

# Points per chunk are chosen so that one chunk holds about this many float64 members
# (8 MiB): bounded temporary memory whatever the ensemble size, and a chunk that stays in
# cache between the sort and the sums (measured ~15 % faster than 32 MiB chunks).
_CHUNK_ELEMENTS = 2**20


def _flat_pairs(observations, ensemble) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(observations as (N,) float64, ensemble as (N, M), shape of the points)."""
    observations = np.asarray(observations, dtype=np.float64)
    ensemble = np.asarray(ensemble)
    if ensemble.ndim == 0 or ensemble.shape[:-1] != observations.shape:
        raise ValueError(f"ensemble shape {ensemble.shape} must be observations shape "
                         f"{observations.shape} plus a trailing member axis")
    if ensemble.shape[-1] == 0:
        raise ValueError("ensemble has no members")
    return observations.reshape(-1), ensemble.reshape(-1, ensemble.shape[-1]), observations.shape


def _chunk_points(members: int) -> int:
    return max(1, _CHUNK_ELEMENTS // members)


def crps_ensemble(observations, ensemble, *, fair: bool = False, issorted: bool = False) -> np.ndarray:
    """Per-point CRPS of an ensemble forecast, shape (...).

    CRPS = (1/M) sum_i |x_i - y| - (1/(2 M^2)) sum_ij |x_i - x_j|, where the pair sum is
    computed in O(M log M) from the sorted members x_(1) <= ... <= x_(M):

        (1/2) sum_ij |x_i - x_j| = sum_i (2i - M - 1) x_(i)        (i 1-based).

    ``fair=True`` gives the fair CRPS (Ferro 2014), unbiased for the CRPS of the distribution
    the members are drawn from: the pair term is divided by 2 M (M - 1) instead of 2 M^2
    (needs M >= 2). ``issorted=True`` skips the sort (members already ascending on the last
    axis). Agrees with properscoring.crps_ensemble (no weights) to rounding.
    """
    obs, ens, shape = _flat_pairs(observations, ensemble)
    n_points, members = ens.shape
    if fair and members < 2:
        raise ValueError("the fair CRPS needs at least 2 members")
    spread_norm = members * (members - 1) if fair else members * members
    rank_weights = 2.0 * np.arange(1, members + 1) - members - 1
    out = np.empty(n_points)
    step = _chunk_points(members)
    buffer = np.empty((min(step, n_points), members))
    for start in range(0, n_points, step):
        stop = min(start + step, n_points)
        # Members relative to the observation: the subtraction keeps each row's order (it is
        # monotone), and removes a large common offset (e.g. temperatures in K) from the sums.
        d = np.subtract(ens[start:stop], obs[start:stop, None], out=buffer[:stop - start])
        if not issorted:
            d.sort(axis=-1)
        # einsum rather than `d @ rank_weights` and `d.sum(-1)`: on short rows it is several
        # times faster than OpenBLAS's matrix-vector product and numpy's pairwise row sums
        spread = np.einsum("pm,m->p", d, rank_weights)
        np.abs(d, out=d)
        out[start:stop] = np.einsum("pm->p", d) / members - spread / spread_norm
    return out.reshape(shape)


def twcrps_ensemble(observations, ensemble, threshold: float, *, fair: bool = False) -> np.ndarray:
    """Per-point threshold-weighted CRPS (Gneiting & Ranjan 2011) with the weight 1{z > t}: the
    CRPS restricted to the values above `threshold`, the score forecast verifiers use for
    extremes. With the chaining function v(z) = max(z, t) it is the CRPS of the members mapped
    by v against v(observation) (Allen et al. 2023), so it is 0 where the members and the
    observation all lie at or below t. Same conventions as `crps_ensemble`."""
    obs = np.maximum(np.asarray(observations, dtype=np.float64), threshold)
    return crps_ensemble(np.where(np.isnan(observations), np.nan, obs),
                         np.maximum(np.asarray(ensemble, dtype=np.float64), threshold), fair=fair)


def crps_against_sorted(observations, members, *, fair: bool = False) -> np.ndarray:
    """CRPS of many observations (N,) against ONE ensemble, `members` (M,) sorted ascending.

    With k = #{x_i < y} and S_k the sum of the k smallest members,
    mean_i |x_i - y| = (k y - S_k + (S_M - S_k) - (M - k) y) / M: a binary search per
    observation, O((N + M) log M) in all, where `crps_ensemble` would cost O(N M log M). The
    spread term is the same for every observation. Same values as `crps_ensemble`."""
    y = np.asarray(observations, dtype=np.float64)
    x = np.asarray(members, dtype=np.float64)
    m = x.size
    if fair and m < 2:
        raise ValueError("the fair CRPS needs at least 2 members")
    prefix = np.concatenate([[0.0], np.cumsum(x)])
    k = np.searchsorted(x, y, side="left")
    below, total = prefix[k], prefix[-1]
    mean_abs = (k * y - below + (total - below) - (m - k) * y) / m
    spread = np.dot(2 * np.arange(1, m + 1) - m - 1, x) / (m * (m - 1) if fair else m * m)
    return mean_abs - spread


def crps_climatology(ensemble: np.ndarray, observations: np.ndarray) -> float:
    """Mean CRPS of an unconditional ensemble used as a climatological forecast of every
    observed field, grid point by grid point.

    ensemble: (members, *grid); observations: (times, *grid). The ensemble at a grid point is the
    same for every time, so it is sorted once and each observation costs a binary search
    (`crps_against_sorted`), not a pass over the members. A missing observation (NaN) is left out."""
    members = np.sort(ensemble.reshape(ensemble.shape[0], -1).astype(np.float64), axis=0).T  # (cells, M)
    obs = observations.reshape(observations.shape[0], -1).astype(np.float64)  # (times, cells)
    valid = ~np.isnan(obs)
    total = sum(float(crps_against_sorted(obs[valid[:, cell], cell], members[cell]).sum())
                for cell in range(obs.shape[1]))
    return total / np.count_nonzero(valid)


def crps_fast_path() -> bool:
    """Whether properscoring found numba (else crps_ensemble is O(members^2) per point)."""
    from properscoring import _crps

    return getattr(_crps._crps_ensemble_core, "__name__", "") == "_crps_ensemble_gufunc"


def latitude_weights(latitude) -> np.ndarray:
    """cos(latitude), latitude in degrees, normalised to mean 1 over the given latitudes.

    w_j = cos(phi_j) / ((1/n) sum_k cos(phi_k)). cos(+-90 deg) is about 6e-17 in floating
    point: values below 1e-12 are set to exactly 0, so the poles get no weight.
    """
    latitude = np.asarray(latitude, dtype=np.float64)
    if latitude.ndim != 1:
        raise ValueError("latitude must be 1-D")
    if np.any(np.abs(latitude) > 90.0):
        raise ValueError("latitudes must lie in [-90, 90] degrees")
    weights = np.cos(np.deg2rad(latitude))
    weights[weights < 1e-12] = 0.0
    if not weights.sum() > 0:
        raise ValueError("all latitudes are poles: the weights have no mass")
    return weights / weights.mean()


def _grid_weights(weights, values: np.ndarray) -> np.ndarray:
    """Weights as (lat, lon) (or 1 when None), checked against values (..., lat, lon)."""
    if weights is None:
        return np.ones(values.shape[-2:] if values.ndim >= 2 else values.shape)
    weights = np.asarray(weights, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError("weighted values need trailing (lat, lon) axes")
    if weights.ndim == 1:
        weights = weights[:, None]  # latitude weights: one per row
    if weights.ndim != 2 or np.broadcast_shapes(weights.shape, values.shape[-2:]) != values.shape[-2:]:
        raise ValueError(f"weights of shape {weights.shape} do not fit the grid {values.shape[-2:]}")
    return np.broadcast_to(weights, values.shape[-2:])


def weighted_mean(values, weights=None) -> float:
    """Weighted mean over all points of values (..., lat, lon), NaN cells left out.

    mean = sum_{t,j,k} w_jk v_tjk [v_tjk not NaN] / sum_{t,j,k} w_jk [v_tjk not NaN],
    with w of shape (lat,) (taken per row) or (lat, lon); ``weights=None`` is the plain
    nanmean. NaN when no cell has weight.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = _grid_weights(weights, values)
    valid = ~np.isnan(values)
    # Sum over the leading axes first, so that the weights multiply a (lat, lon) array only.
    leading = tuple(range(values.ndim - weights.ndim))
    total = np.sum(np.where(valid, values, 0.0), axis=leading)
    count = np.sum(valid, axis=leading)
    mass = float(np.sum(weights * count))
    return float(np.sum(weights * total)) / mass if mass > 0 else float("nan")


def rank_histogram(observations, ensemble, rng: np.random.Generator) -> np.ndarray:
    """Counts of the observation's rank among its M members, int64 array of length M + 1.

    rank = #{i: x_i < y} + U, U uniform on the integers {0, ..., #{i: x_i = y}}, drawn with
    ``rng``: ties (e.g. many zero precipitation values) are broken at random, so that a
    calibrated ensemble has a flat histogram even for a variable with an atom. NaN observations
    are skipped.
    """
    obs, ens, _ = _flat_pairs(observations, ensemble)
    members = ens.shape[1]
    counts = np.zeros(members + 1, dtype=np.int64)
    step = _chunk_points(members)
    for start in range(0, obs.size, step):
        y = obs[start:start + step]
        x = ens[start:start + step]
        keep = ~np.isnan(y)
        y, x = y[keep, None], x[keep]
        below = np.count_nonzero(x < y, axis=-1)
        ties = np.count_nonzero(x == y, axis=-1)
        rank = below + rng.integers(0, ties + 1)  # high is exclusive: 0..ties inclusive
        counts += np.bincount(rank, minlength=members + 1)
    return counts


def variance_and_squared_error(observations, ensemble) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the members' variance s^2 (ddof=1) and the squared error (xbar - y)^2 of the
    ensemble mean; both NaN where the observation is NaN."""
    observations = np.asarray(observations, dtype=np.float64)
    ensemble = np.asarray(ensemble, dtype=np.float64)
    if ensemble.shape[:-1] != observations.shape:
        raise ValueError("ensemble must have the observations' shape plus a member axis")
    if ensemble.shape[-1] < 2:
        raise ValueError("the spread needs at least 2 members")
    squared_error = (ensemble.mean(axis=-1) - observations) ** 2
    variance = np.where(np.isnan(observations), np.nan, ensemble.var(axis=-1, ddof=1))
    return variance, squared_error


def spread_skill_ratio(mean_variance: float, mean_squared_error: float, members: int) -> float:
    """sqrt((M + 1) / M) * spread / rmse. For a calibrated ensemble E[(xbar - y)^2] =
    (1 + 1/M) E[s^2], so the factor (Fortin et al. 2014) makes the ratio 1 whatever M."""
    return float(np.sqrt((members + 1) / members) * np.sqrt(mean_variance) / np.sqrt(mean_squared_error))


def spread_skill(observations, ensemble, weights=None) -> dict[str, float]:
    """Spread, skill and their ratio for observations (..., lat, lon), ensemble (..., lat, lon, M).

    spread = sqrt(weighted mean of s^2), s^2 the members' variance (ddof=1);
    rmse = sqrt(weighted mean of (xbar - y)^2), xbar the ensemble mean;
    ratio = `spread_skill_ratio`. Cells with a NaN observation are left out of both.
    """
    variance, squared_error = variance_and_squared_error(observations, ensemble)
    mean_variance, mse = weighted_mean(variance, weights), weighted_mean(squared_error, weights)
    return {"spread": float(np.sqrt(mean_variance)), "rmse": float(np.sqrt(mse)),
            "ratio": spread_skill_ratio(mean_variance, mse, np.shape(ensemble)[-1])}


def brier_points(observations, ensemble, threshold: float) -> np.ndarray:
    """(p - o)^2 per point: p = (1/M) #{i: x_i > threshold} (forecast probability),
    o = [y > threshold] (outcome); NaN where the observation is NaN."""
    observations = np.asarray(observations, dtype=np.float64)
    ensemble = np.asarray(ensemble)
    if ensemble.shape[:-1] != observations.shape:
        raise ValueError("ensemble must have the observations' shape plus a member axis")
    probability = np.mean(ensemble > threshold, axis=-1)
    outcome = np.where(np.isnan(observations), np.nan, observations > threshold)
    return (probability - outcome) ** 2


def brier_score(observations, ensemble, threshold: float, weights=None) -> float:
    """Brier score of the exceedance of ``threshold``: weighted mean of `brier_points`."""
    return weighted_mean(brier_points(observations, ensemble, threshold), weights)
