"""The tails of the training data, and the Student-t ``nu`` they call for (``nu: auto``).

``choose_nu`` (what ``nu: auto`` runs) fits ``nu`` to the data's exceedance probabilities of
standardised values at 2 to 6 standard deviations (``exceedance_nu``): the range of the tail
that a generator must reproduce. The Hill tail index of the top 0.1 % (``hill_nu``, what
``nu: auto`` ran before) is reported beside it; it is not used to choose, because on real
precipitation the very top sits under a ceiling (radar saturation, block means, a short record)
and looks light where the tail the model must generate is extremely heavy.

Pure numpy + scipy. Conventions for the Hill estimator:

- The tail index ``alpha`` is that of a regularly varying tail, ``P(X > x) ~ x^-alpha``; a
  Student-t with ``nu`` degrees of freedom has ``alpha = nu``, a generalised Pareto with shape
  ``xi > 0`` has ``alpha = 1 / xi``. The Hill estimator estimates ``xi = 1 / alpha``.
- ``tails="upper"`` looks at ``x - median`` (positive variables: precipitation),
  ``tails="both"`` at ``|x - median|`` (symmetric variables: winds, vertical velocity).
- Non-finite values are ignored throughout.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats


def hill_estimator(values, k: int) -> float:
    """Hill's estimate of the tail index ``alpha`` from the ``k`` largest positive values.

    With ``X_(1) >= X_(2) >= ...`` the order statistics of the positive finite values,
    ``xi_hat = (1/k) * sum_{i<=k} log(X_(i) / X_(k+1))`` and ``alpha = 1 / xi_hat``.
    Raises ValueError with fewer than ``k + 1`` positive values.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x) & (x > 0)]
    if x.size < k + 1:
        raise ValueError(f"the Hill estimator with k={k} needs at least {k + 1} positive values, got {x.size}")
    # the k + 1 largest, unsorted except for the threshold X_(k+1) at position 0
    top = np.partition(x, x.size - k - 1)[x.size - k - 1:]
    xi = float(np.mean(np.log(top[1:])) - math.log(top[0]))
    return 1.0 / xi if xi > 0 else math.inf


def _check_tails(tails: str) -> None:
    if tails not in ("upper", "both"):
        raise ValueError(f"tails must be 'upper' or 'both', got {tails!r}")


def gaussian_hill_reference(n: int, k: int, tails: str = "both") -> float:
    """The Hill ``alpha`` a standard normal sample of size ``n`` gives at the same ``k``.

    Mirrors how :func:`hill_nu` treats data: the ``k`` largest of ``x - median`` (upper) or of
    ``|x - median|`` (both). The threshold ``X_(k+1)`` is about ``u = Phi^-1(1 - k/n)`` (upper)
    or ``u = Phi^-1(1 - k/(2n))`` (both; ``|X|`` given ``|X| > u`` has the law of ``X`` given
    ``X > u``), and the top ``k`` are draws of ``X`` given ``X > u``, so
    ``alpha_G = 1 / E[log(X/u) | X > u]`` with, integrating by parts,
    ``E[log(X/u) | X > u] = int_u^inf (1 - Phi(x)) / x dx / (1 - Phi(u))``, computed by
    ``scipy.integrate.quad``. For large ``u``, ``alpha_G ~ u^2``: Hill gives a finite alpha
    even for a light tail, growing slowly as the threshold moves out.
    """
    _check_tails(tails)
    p = k / n if tails == "upper" else k / (2.0 * n)
    if not (k >= 1 and 0 < p < 0.5):
        raise ValueError(f"need 1 <= k and a tail fraction below 1/2, got n={n}, k={k}, tails={tails!r}")
    u = float(stats.norm.isf(p))
    log_sf_u = float(stats.norm.logsf(u))
    # sf(x) / sf(u) through logsf: stays accurate however far out u is
    mean_log, _ = integrate.quad(lambda s: math.exp(stats.norm.logsf(u + s) - log_sf_u) / (u + s),
                                 0.0, math.inf, epsabs=0.0, epsrel=1e-10)
    return 1.0 / mean_log


NU_MIN, NU_MAX = 2.5, 50.0  # finite noise variance with margin; beyond 50 a t is a normal
LEVELS = (2.0, 3.0, 4.0, 5.0, 6.0)  # standard deviations
MIN_EXCEEDANCES = 10  # a level counts only with at least this many values beyond it
_NU_GRID = np.geomspace(NU_MIN, 4 * NU_MAX, 481)


def unit_t_exceedance(levels, nu: float, tails: str) -> np.ndarray:
    """P(Z > k) (upper) or P(|Z| > k) (both) for Z a Student-t(nu) scaled to unit variance
    (Z = T sqrt((nu - 2) / nu)); nu = inf: the standard normal."""
    k = np.asarray(levels, dtype=float)
    sides = 1.0 if tails == "upper" else 2.0
    if math.isinf(nu):
        return sides * stats.norm.sf(k)
    return sides * stats.t.sf(k * math.sqrt(nu / (nu - 2.0)), nu)


def exceedance_nu(values, tails: str, levels=LEVELS, min_count: int = MIN_EXCEEDANCES, nu_min: float = NU_MIN,
                  nu_max: float = NU_MAX) -> dict:
    """Student-t ``nu`` from the exceedance probabilities of the standardised values.

    - ``z = (x - mean) / std`` over the finite values: the scale the model sees (the data are
      standardised per variable), so the question is how often a unit-variance noise must put
      a value beyond k standard deviations.
    - ``p_k = P(z > k)`` (``tails="upper"``) or ``P(|z| > k)`` (``"both"``) at each level k of
      ``levels`` with at least ``min_count`` values beyond it; a normal gives 2.3 %, 0.13 %,
      3e-5, 3e-7, 1e-9 (one side) at 2 to 6.
    - ``nu_fit`` minimises ``sum_k (log p_k - log P_nu(k))^2`` over a grid of nu from nu_min to
      4 nu_max, with ``P_nu`` the same probability for a unit-variance Student-t(nu)
      (``unit_t_exceedance``): log probabilities, so every level counts, the far ones as much as
      the near ones.
    - Heavy when the fitted t is closer than the normal (``loss < loss_gaussian``) and
      ``nu_fit <= nu_max``; then ``nu = max(nu_fit, nu_min)``, else ``nu = inf``. A tail lighter
      than a normal's (a uniform) has no level with values beyond it, or fits best at the top
      of the grid: Gaussian noise.

    Moderate levels rather than the extremes: on a Student-t sample of 1e6 values the fit
    recovers nu = 3, 5, 10, 20 within 5 %; on precipitation whose top is capped the levels below
    the cap still carry the tail. A zero-inflated variable (dry cells) is not a t: the fit then
    gives the t that is closest in log exceedance.

    Returns a dict with ``method``, ``levels`` and ``exceedance`` (the levels used and p_k),
    ``gaussian_exceedance``, ``nu_fit``, ``loss``, ``loss_gaussian``, ``n``, ``heavy``, ``nu``.
    """
    _check_tails(tails)
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    std = float(x.std()) if n else 0.0
    if n < min_count or not std > 0:
        raise ValueError(f"exceedance_nu needs at least {min_count} finite values that are not all equal, "
                         f"got {n} finite values")
    z = (x - x.mean()) / std
    y = z if tails == "upper" else np.abs(z)
    y.sort()
    counts = n - np.searchsorted(y, np.asarray(levels, dtype=float), side="right")
    used = [float(k) for k, c in zip(levels, counts) if c >= min_count]
    p = np.array([c / n for c in counts if c >= min_count])
    out = {"method": "exceedance", "levels": used, "exceedance": p.tolist(),
           "gaussian_exceedance": unit_t_exceedance(used, math.inf, tails).tolist(), "n": n}
    if not used:
        return {**out, "nu_fit": math.inf, "loss": 0.0, "loss_gaussian": 0.0, "heavy": False, "nu": math.inf}
    log_p = np.log(p)
    losses = np.array([np.sum((log_p - np.log(unit_t_exceedance(used, nu, tails))) ** 2) for nu in _NU_GRID])
    best = int(np.argmin(losses))
    loss_gaussian = float(np.sum((log_p - np.log(out["gaussian_exceedance"])) ** 2))
    nu_fit = float(_NU_GRID[best])
    heavy = bool(losses[best] < loss_gaussian and nu_fit <= nu_max)
    return {**out, "nu_fit": nu_fit, "loss": float(losses[best]), "loss_gaussian": loss_gaussian, "heavy": heavy,
            "nu": max(nu_fit, nu_min) if heavy else math.inf}


def exceedance_summary(chosen: dict) -> str:
    """The exceedance probabilities of `exceedance_nu` as multiples of a normal's, in words."""
    if not chosen["levels"]:
        return f"no level of {', '.join(f'{k:g}' for k in LEVELS)} sd has {MIN_EXCEEDANCES} values beyond it"
    ratios = ", ".join(f"{k:g} sd {p / g:.3g}x" for k, p, g in
                       zip(chosen["levels"], chosen["exceedance"], chosen["gaussian_exceedance"]))
    return f"values beyond k sd, against a normal: {ratios}"


def choose_nu(values, tails: str) -> dict:
    """``nu: auto``: ``exceedance_nu``, with Hill's estimate (``hill_nu``) beside it for the
    record (``hill_alpha``, ``hill_alpha_gaussian``, ``hill_nu``; None where it cannot be
    computed)."""
    chosen = exceedance_nu(values, tails)
    try:
        hill = hill_nu(values, tails)
        chosen.update(hill_alpha=hill["alpha"], hill_alpha_gaussian=hill["alpha_gaussian"], hill_nu=hill["nu"])
    except ValueError:
        chosen.update(hill_alpha=None, hill_alpha_gaussian=None, hill_nu=None)
    return chosen


def hill_nu(values, tails: str, fraction: float = 0.001, margin: float = 0.8, nu_min: float = NU_MIN,
            nu_max: float = NU_MAX) -> dict:
    """Student-t degrees of freedom ``nu`` for one variable, from its Hill tail index (what
    ``nu: auto`` chose before ``exceedance_nu``; kept for the record and for comparison).

    Steps and why:

    - ``y = x - median(x)`` (``tails="upper"``) or ``y = |x - median(x)|`` (``"both"``) over the
      ``n`` finite values: Hill's estimator is scale- but not location-invariant, and the
      median is a location that the tails themselves do not move.
    - ``alpha = hill_estimator(y, k)`` with ``k = max(10, round(fraction * n))``: a small
      fraction keeps the threshold far out, where the tail is closest to a power law
      (Hill's bias comes from the departure from it), while weather fields with 1e5 - 1e8
      values still leave ``k`` in the hundreds or more (Hill's relative standard error is
      ``~ 1 / sqrt(k)`` for independent values; spatially correlated fields have fewer
      effective values, so more). ``k >= 10`` avoids a meaningless estimate on small samples.
    - Hill gives a finite ``alpha`` even for a light (Gaussian) tail, about ``u^2`` at a
      threshold of ``u`` standard deviations, so ``alpha`` alone cannot say "heavy". It is
      compared with ``alpha_gaussian = gaussian_hill_reference(n, k, tails)``, what a normal
      sample of the same size gives at the same ``k``; the tail is ``heavy`` when
      ``alpha < margin * alpha_gaussian``. ``margin = 0.8`` leaves room for Hill's sampling
      error (a few standard errors once ``k`` is in the hundreds).
    - A heavy tail gets ``nu = clip(alpha, nu_min, nu_max)``, since a Student-t with ``nu``
      degrees of freedom has tail index ``alpha = nu``; ``nu_min = 2.5`` keeps the noise
      variance finite (it needs ``nu > 2``) with some margin, ``nu_max = 50`` is where a
      Student-t is already indistinguishable from a normal. A light tail gets ``nu = inf``
      (Gaussian noise).

    Hill's second-order bias makes ``alpha`` (so ``nu``) somewhat low for tails that are only
    asymptotically power laws: at ``fraction = 0.001``, a Student-t(5) gives about 4.7 and a
    generalised Pareto with ``xi = 0.2`` about 3.9 (3.7 with 60 % zeros) instead of 5.

    Returns a dict with ``alpha``, ``alpha_gaussian``, ``k``, ``n``, ``heavy`` and ``nu``.
    """
    _check_tails(tails)
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    k = max(10, int(round(fraction * n)))
    y = x - np.median(x) if n else x
    if tails == "both":
        y = np.abs(y)
    n_pos = int(np.count_nonzero(y > 0))
    # at most half the values lie above the median, so this also keeps k / n below 1/2
    if n_pos < k + 1:
        raise ValueError(f"hill_nu with k={k} needs at least {k + 1} finite values beyond the median, "
                         f"got {n_pos} (of n={n} finite values)")
    alpha = hill_estimator(y, k)
    alpha_gaussian = gaussian_hill_reference(n, k, tails)
    heavy = bool(alpha < margin * alpha_gaussian)
    nu = float(np.clip(alpha, nu_min, nu_max)) if heavy else math.inf
    return {"alpha": alpha, "alpha_gaussian": alpha_gaussian, "k": k, "n": n, "heavy": heavy, "nu": nu}
