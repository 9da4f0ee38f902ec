"""The storm-cell generator (``data.synthetic.generator: storms``, the default): extremes that are
spatially compact, intermittent and moving, as convective weather is.

Each time step (6-hourly by default) new storm cells are born at random places of a domain
padded so that cells drift in from outside (Poisson, ``birth_rate`` per step); each lives a
geometric number of steps (mean ``lifetime``), moves with the advection plus a velocity of its
own, and has a Gaussian footprint of radius ``radius`` cells, a peak rain amount drawn from a
generalised Pareto (``intensity``: heavy-tailed) and a life cycle that grows and decays
(sin(pi (age + 1) / (life + 1))). Then

- ``tp`` [m]: the sum of the cells' footprints, 0 below ``drizzle_mm`` (dry between cells);
- ``w`` [Pa s-1]: a weak Gaussian background (``w.scale`` times the latent field of the copula
  generator) plus an updraft under every cell, ``-updraft * sqrt(peak rain)`` over a footprint
  1.5 times narrower: negative (ascent) and heavy-tailed where it rains, Gaussian elsewhere;
- ``t2m`` [K]: a Gaussian background (``t2m.mean``, ``t2m.std``) cooled under the rain by
  ``cooling`` K per mm (cold pools).

The variables are coupled through the cells, and no per-variable transform makes a field
Gaussian: a rain field is mostly zeros with a few compact blobs, whatever its marginal. There
is no closed form for the marginals: `SimulatedMarginal` estimates them from a long simulation
of the true process (``truth_steps`` time steps); the truth ensemble and the truth sequences are
fresh simulations with their own seeds.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .latent import gaussian_sequence


def simulate(spec: dict, n_times: int, rng: np.random.Generator, spin_up: int | None = None) -> dict[str, np.ndarray]:
    """`n_times` consecutive fields (time, nlat, nlon) of t2m [K], w [Pa s-1] and tp [m] of the
    storm process, after `spin_up` steps (default: 10 lifetimes) from an empty sky."""
    s = spec["storms"]
    nlat, nlon = spec["nlat"], spec["nlon"]
    r_min, r_max = s["radius"]
    margin = 3.0 * r_max
    spin_up = int(10 * s["lifetime"]) if spin_up is None else spin_up
    total = spin_up + n_times
    advection = np.asarray(spec["advection"], dtype=float)
    yy, xx = np.meshgrid(np.arange(nlat, dtype=float), np.arange(nlon, dtype=float), indexing="ij")
    intensity = stats.genpareto(c=s["intensity"]["shape"], scale=s["intensity"]["scale_mm"])
    # cells: y, x, velocity y, velocity x, radius, peak rain (mm), age, life
    cells = np.zeros((0, 8))
    rain = np.zeros((n_times, nlat, nlon))
    lift = np.zeros((n_times, nlat, nlon))
    for t in range(total):
        born = rng.poisson(s["birth_rate"])
        if born:
            new = np.empty((born, 8))
            new[:, 0] = rng.uniform(-margin, nlat + margin, born)
            new[:, 1] = rng.uniform(-margin, nlon + margin, born)
            new[:, 2:4] = advection + s["speed_spread"] * rng.standard_normal((born, 2))
            new[:, 4] = rng.uniform(r_min, r_max, born)
            new[:, 5] = intensity.rvs(size=born, random_state=rng)
            new[:, 6] = 0
            new[:, 7] = rng.geometric(1.0 / s["lifetime"], born)
            cells = np.concatenate([cells, new])
        if t >= spin_up and len(cells):
            envelope = np.sin(np.pi * (cells[:, 6] + 1) / (cells[:, 7] + 1))
            d2 = (yy[None] - cells[:, 0, None, None]) ** 2 + (xx[None] - cells[:, 1, None, None]) ** 2
            footprint = np.exp(-d2 / (2 * cells[:, 4, None, None] ** 2))
            peak = cells[:, 5] * envelope
            rain[t - spin_up] = np.einsum("c,cij->ij", peak, footprint)
            # the updraft core: sqrt of the peak over a footprint 1.5 times narrower
            lift[t - spin_up] = np.einsum("c,cij->ij", np.sqrt(peak), footprint ** (1.5**2))
        cells[:, 0:2] += cells[:, 2:4]
        cells[:, 6] += 1
        cells = cells[cells[:, 6] < cells[:, 7]]
    rain = np.where(rain < s["drizzle_mm"], 0.0, rain)
    background = gaussian_sequence(spec, n_times, rng, fields=2)
    w = spec["w"]["scale"] * background[:, 1] - s["updraft"] * lift
    t2m = spec["t2m"]["mean"] + spec["t2m"]["std"] * background[:, 0] - s["cooling"] * rain
    return {"t2m": t2m, "w": w, "tp": rain * 1e-3}


def independent(spec: dict, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`n` fields far enough apart in one simulation to be independent draws of the stationary
    process: 4 lifetimes of the cells, and a background correlation of persistence^gap."""
    gap = max(4 * int(np.ceil(spec["storms"]["lifetime"])), 12)
    fields = simulate(spec, n * gap, rng)
    return {v: x[::gap] for v, x in fields.items()}


class SimulatedMarginal:
    """A marginal distribution known only through a large sample (flattened values): inverted-
    CDF quantiles, the empirical CDF and survival function, a histogram density and the sample
    moments; scipy-like methods, as the report uses them."""

    kind = "long simulation of the true process"

    def __init__(self, values: np.ndarray):
        self.values = np.sort(np.asarray(values, dtype=float).ravel())
        self.n = self.values.size

    def cdf(self, x):
        return np.searchsorted(self.values, np.asarray(x, dtype=float), side="right") / self.n

    def sf(self, x):
        return 1.0 - self.cdf(x)

    def ppf(self, q):
        index = np.ceil(np.asarray(q, dtype=float) * self.n).astype(int) - 1
        return self.values[np.clip(index, 0, self.n - 1)]

    def isf(self, s):
        return self.ppf(1.0 - np.asarray(s, dtype=float))

    def pdf(self, x, bins: int = 400):
        """Density of the values above the lowest (a dry atom at 0 is left out, as for the GPD)."""
        lo, hi = self.values[0], self.values[-1]
        edges = np.linspace(lo, hi, bins + 1)
        counts, _ = np.histogram(self.values[self.values > lo] if lo == 0 else self.values, bins=edges)
        density = counts / (self.n * np.diff(edges))
        where = np.clip(np.searchsorted(edges, np.asarray(x, dtype=float), side="right") - 1, 0, bins - 1)
        return np.where((np.asarray(x) < lo) | (np.asarray(x) > hi), 0.0, density[where])

    def stats(self, moments: str = "mvsk"):
        v = self.values
        return v.mean(), v.var(), stats.skew(v), stats.kurtosis(v)
