"""Extreme-value statistics: block maxima and GEV return levels with bootstrap intervals.

Pure numpy + scipy.stats. Conventions this module fixes:

- GEV shape follows SciPy's ``genextreme``: shape ``c = -xi``, so ``c < 0`` (``xi > 0``) is the
  heavy-tailed Frechet case, ``c = 0`` Gumbel, ``c > 0`` (``xi < 0``) the bounded Weibull case.
  Parameters travel as the tuple ``(c, loc, scale)``.
- A return period ``T`` is counted in blocks: the T-block return level is exceeded by one block
  maximum with probability ``1 / T``.
- Non-finite values are ignored throughout.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

# Below this many finite block maxima a three-parameter GEV fit is not worth reporting.
MIN_MAXIMA = 10
_EULER_GAMMA = 0.5772156649015329


def block_maxima(values, block: int) -> np.ndarray:
    """Maxima of consecutive non-overlapping blocks of ``block`` steps along axis 0.

    ``M_j = max(values[j * block : (j + 1) * block])`` for ``j < time // block``: the output has
    shape ``(time // block, ...)``, an incomplete last block is dropped. NaNs are ignored; a block
    whose values are all NaN gives NaN.
    """
    x = np.asarray(values, dtype=float)
    if int(block) != block or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    block = int(block)
    nblocks = x.shape[0] // block
    blocks = x[: nblocks * block].reshape((nblocks, block) + x.shape[1:])
    # fmax.reduce skips NaN like nanmax but without its all-NaN RuntimeWarning
    return np.fmax.reduce(blocks, axis=1)


def _finite_maxima(maxima) -> np.ndarray:
    m = np.asarray(maxima, dtype=float).ravel()
    m = m[np.isfinite(m)]
    if m.size < MIN_MAXIMA:
        raise ValueError(f"a GEV fit needs at least {MIN_MAXIMA} finite block maxima, got {m.size}")
    return m


def _gumbel_moments(m: np.ndarray) -> tuple[float, float]:
    # Gumbel: var = (pi * scale)^2 / 6, mean = loc + gamma * scale
    scale = math.sqrt(6.0) * float(np.std(m)) / math.pi
    if not scale > 0:
        raise ValueError("block maxima are all equal: a GEV fit is undefined")
    return float(np.mean(m)) - _EULER_GAMMA * scale, scale


def _simplex(x0, step: float = 0.1) -> np.ndarray:
    # Nelder-Mead's default simplex perturbs zero components by only 0.00025, and the
    # standardised starts (c, loc, log scale ~ 0) are all near zero: it then stops early
    x0 = np.asarray(x0, dtype=float)
    return x0 + np.vstack([np.zeros(x0.size), step * np.eye(x0.size)])


def _fmin(func, x0, args=(), disp=0):
    # the optimizer genextreme.fit calls: its default fmin, with a usable simplex
    return optimize.fmin(func, x0, args=args, disp=disp, initial_simplex=_simplex(x0), xtol=1e-6, ftol=1e-9)


def fit_gev(maxima) -> tuple[float, float, float]:
    """Maximum-likelihood GEV fit ``(c, loc, scale)`` (SciPy convention, ``c = -xi``).

    ``scipy.stats.genextreme.fit`` on the finite maxima, started at the Gumbel moment estimates
    ``scale0 = sqrt(6) * sd / pi``, ``loc0 = mean - 0.5772 * scale0``, ``c0 = 0``. The data are
    standardised by ``(loc0, scale0)`` before fitting (and the estimates mapped back:
    ``loc = loc0 + scale0 * loc_z``, ``scale = scale0 * scale_z``) because the optimiser's
    tolerances are absolute: maxima in metres of precipitation would otherwise stop far from
    the optimum. Raises ValueError with fewer than 10 finite maxima. (Bootstrap refits start at
    the full-sample estimate instead: see `return_levels_with_ci`.)
    """
    m = _finite_maxima(maxima)
    loc0, scale0 = _gumbel_moments(m)
    c, loc_z, scale_z = stats.genextreme.fit((m - loc0) / scale0, 0.0, loc=0.0, scale=1.0, optimizer=_fmin)
    return float(c), loc0 + scale0 * float(loc_z), scale0 * float(scale_z)


def _periods(periods) -> np.ndarray:
    t = np.atleast_1d(np.asarray(periods, dtype=float))
    if np.any(~(t > 1)):
        raise ValueError(f"return periods must be > 1 block, got {periods!r}")
    return t


def return_levels(params, periods) -> np.ndarray:
    """T-block return levels ``z_T = genextreme.ppf(1 - 1/T, c, loc, scale)``, array over periods.

    ``z_T`` is exceeded by a block maximum with probability ``1 / T``, i.e. on average once
    every ``T`` blocks.
    """
    c, loc, scale = params
    return stats.genextreme.ppf(1.0 - 1.0 / _periods(periods), c, loc=loc, scale=scale)


def _gev_nll(theta, z: np.ndarray) -> float:
    # Closed-form GEV negative log-likelihood in (c, loc, log scale): about 7x cheaper than
    # genextreme.nnlf, which matters for hundreds of bootstrap refits.
    c, loc, log_scale = theta
    y = (z - loc) / math.exp(log_scale)
    if abs(c) < 1e-9:
        return z.size * log_scale + float(np.sum(y + np.exp(-y)))
    t = 1.0 - c * y
    if np.any(t <= 0):
        return math.inf  # a maximum outside the support
    log_t = np.log(t)
    # log pdf = -log scale + (1/c - 1) log t - t^(1/c)
    return z.size * log_scale - (1.0 / c - 1.0) * float(np.sum(log_t)) + float(np.sum(np.exp(log_t / c)))


def _refit(z: np.ndarray, start: np.ndarray) -> np.ndarray:
    # Nelder-Mead as in fit_gev; looser tolerances, far below the bootstrap spread
    res = optimize.minimize(_gev_nll, start, args=(z,), method="Nelder-Mead",
                            options={"initial_simplex": _simplex(start), "xatol": 1e-4, "fatol": 1e-6})
    return res.x if np.isfinite(res.fun) else np.full(3, np.nan)


def _mixture_levels(t: np.ndarray, p0, c, loc, scale, lower_bound) -> np.ndarray:
    """Return levels when a fraction p0 of the maxima sit at the lower bound (e.g. dry blocks of
    precipitation) and the rest follow GEV(c, loc, scale): solve p0 + (1 - p0) G(z) = 1 - 1/T,
    i.e. z = G^-1((1 - 1/T - p0) / (1 - p0)), and z = the bound where 1 - 1/T <= p0."""
    q = (1.0 - 1.0 / t - p0) / (1.0 - p0)
    levels = stats.genextreme.ppf(np.clip(q, 0.0, 1.0), c, loc=loc, scale=scale)
    return np.where(q > 0, levels, lower_bound if lower_bound is not None else np.nan)


def return_levels_with_ci(maxima, periods, replicates: int = 200, confidence: float = 0.95,
                          rng=None, rows: bool = False, lower_bound: float | None = None) -> dict:
    """Return levels of a GEV fit with percentile-bootstrap confidence intervals.

    ``level = return_levels(fit_gev(maxima), periods)``. For ``b = 1..replicates`` the maxima
    are resampled with replacement, the GEV refitted by maximum likelihood (started at the
    full-sample estimate, which keeps it to a few milliseconds) and ``z_T^(b)`` computed;
    ``ci_low`` / ``ci_high`` are the ``(1 -/+ confidence) / 2`` quantiles of the ``z_T^(b)``.
    Replicates whose refit fails are dropped. ``replicates == 0`` gives NaN intervals.

    ``rows=True``: ``maxima`` is (blocks, cells), e.g. the block maxima of every grid cell, and the
    bootstrap resamples whole rows, so that the cells of one block (spatially dependent) stay
    together; the fit uses every finite value.

    ``lower_bound``: maxima at or below it form an atom (a block with no rain has maximum 0) that
    no continuous GEV can fit; the GEV is fitted to the maxima above it and the levels come from
    the mixture (see `_mixture_levels`). ``params`` then describe the part above the bound and
    ``atom`` is its probability.

    Returns a dict with ``level``, ``ci_low``, ``ci_high`` (arrays over periods), ``params``
    ``(c, loc, scale)`` and ``atom``. ``rng`` is a ``numpy.random.Generator`` or a seed.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if replicates < 0:
        raise ValueError(f"replicates must be >= 0, got {replicates!r}")
    t = _periods(periods)
    table = np.asarray(maxima, dtype=float)
    table = table.reshape(len(table), -1) if rows else table.reshape(-1, 1)

    def split(values: np.ndarray) -> tuple[np.ndarray, float]:
        finite = values[np.isfinite(values)]
        if lower_bound is None:
            return finite, 0.0
        above = finite[finite > lower_bound]
        return above, 1.0 - above.size / max(finite.size, 1)

    m, atom = split(table.ravel())
    m = _finite_maxima(m)
    params = fit_gev(m)
    level = _mixture_levels(t, atom, *params, lower_bound)
    ci_low = np.full(t.shape, np.nan)
    ci_high = np.full(t.shape, np.nan)
    if replicates > 0:
        rng = np.random.default_rng(rng)
        # refit in the units fit_gev standardises to, for the same reason
        loc0, scale0 = _gumbel_moments(m)
        c, loc, scale = params
        start = np.array([c, (loc - loc0) / scale0, math.log(scale / scale0)])
        boot = []
        for _ in range(replicates):
            above, p0 = split(table[rng.integers(0, len(table), len(table))].ravel())
            if above.size < MIN_MAXIMA:
                continue
            fit = _refit((above - loc0) / scale0, start)
            if np.all(np.isfinite(fit)):
                boot.append(_mixture_levels(t, p0, fit[0], loc0 + scale0 * fit[1], scale0 * math.exp(fit[2]),
                                            lower_bound))
        if boot:
            tail = (1.0 - confidence) / 2.0
            ci_low, ci_high = np.quantile(np.array(boot), [tail, 1.0 - tail], axis=0)
    return {"level": level, "ci_low": ci_low, "ci_high": ci_high, "params": params, "atom": atom}
