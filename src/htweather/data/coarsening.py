"""A downscaling task from one store: the fine fields and their coarse version, made by a stated
operator, and the coarse field brought back to the fine grid as the condition.

- Coarsening, C(x): the area-weighted mean of each non-overlapping `factor` x `factor` block of
  cells, on any grid the store holds (cell areas from `store.cell_areas`: cos-latitude on a
  regular grid, each cell's own area on a projected one). Masked cells carry no weight; a block
  with no real cell is NaN.
- Back to the fine grid, U(c): bilinear interpolation between the coarse cells' centres (flat
  beyond the outermost centres), then corrected block by block so that C(U(c)) = c exactly:
  additively (u + c - C(u)) for an unbounded variable; multiplicatively (u c / C(u)) for one
  with a lower bound of 0 (precipitation), so that a dry block stays dry and no amount turns
  negative. U(c) is what the deterministic interpolation baseline predicts, and what every
  downscaling model is given as its condition (in its own units, like the field it generates).

The operator works in physical units: a block mean of precipitation is a block mean of amounts,
not of their cube roots.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .store import cell_areas, denormalise, grid_mask, normalise


def check_factor(shape: tuple[int, int], factor: int, where: str = "downscaling.factor") -> None:
    if factor < 2:
        raise ConfigError(f"{where}: {factor} is not a coarsening factor (2 or more)")
    if shape[0] % factor or shape[1] % factor:
        raise ConfigError(f"{where}: the {shape[0]} x {shape[1]} grid does not split into {factor} x {factor} blocks")


def _blocks(a: np.ndarray, factor: int) -> np.ndarray:
    """(..., H, W) -> (..., H/f, W/f, f*f)."""
    *lead, h, w = a.shape
    a = a.reshape(*lead, h // factor, factor, w // factor, factor)
    return np.swapaxes(a, -3, -2).reshape(*lead, h // factor, w // factor, factor * factor)


def _spread(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Each coarse cell's value over its block: (..., h, w) -> (..., h f, w f)."""
    return np.repeat(np.repeat(coarse, factor, axis=-2), factor, axis=-1)


def block_mean(fields: np.ndarray, factor: int, areas: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(..., H, W) -> (..., H/f, W/f): area-weighted block means over the real cells with a
    value; NaN where a block has none."""
    check_factor(fields.shape[-2:], factor)
    fields = np.asarray(fields, dtype=np.float64)
    weights = np.broadcast_to(np.where(mask, areas, 0.0) if mask is not None else areas, fields.shape)
    weights = np.where(np.isfinite(fields), weights, 0.0)
    w, x = _blocks(weights, factor), _blocks(np.nan_to_num(fields), factor)
    total = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * x).sum(axis=-1) / total, np.nan)


def _bilinear(coarse: np.ndarray, factor: int) -> np.ndarray:
    """(..., h, w) -> (..., h f, w f): linear in each direction between the coarse cells'
    centres, constant beyond the outermost ones."""
    out = coarse
    for axis in (-2, -1):
        n = out.shape[axis]
        centre = (np.arange(n * factor) + 0.5) / factor - 0.5  # fine centres in coarse index units
        centre = np.clip(centre, 0, n - 1)
        low = np.floor(centre).astype(int)
        high = np.minimum(low + 1, n - 1)
        t = centre - low
        shape = [1] * out.ndim
        shape[axis] = -1
        out = np.take(out, low, axis=axis) * (1 - t).reshape(shape) + np.take(out, high, axis=axis) * t.reshape(shape)
    return out


def upsample(coarse: np.ndarray, factor: int, areas: np.ndarray, mask: np.ndarray | None = None,
             lower_bound: float | None = None) -> np.ndarray:
    """(..., h, w) -> (..., h f, w f) whose block means (`block_mean`, same areas and mask) are
    `coarse` exactly; see the module's docstring. A NaN coarse cell (no real cell in it) is NaN
    over its block; for its neighbours' interpolation it holds the field's mean over its real
    blocks (their own block means are exact whatever it holds)."""
    coarse = np.asarray(coarse, dtype=np.float64)
    missing = np.isnan(coarse)
    filled = np.where(missing, np.nanmean(coarse, axis=(-2, -1), keepdims=True) if missing.any() else 0.0, coarse)
    smooth = _bilinear(np.nan_to_num(filled), factor)
    if lower_bound is not None:
        smooth = np.maximum(smooth, lower_bound)
    return conserve(smooth, coarse, factor, areas, mask, lower_bound)


def conserve(fields: np.ndarray, coarse: np.ndarray, factor: int, areas: np.ndarray, mask: np.ndarray | None = None,
             lower_bound: float | None = None) -> np.ndarray:
    """Fine `fields` (..., H, W) corrected block by block so that their block means are `coarse`
    (..., H/f, W/f) exactly: additively for an unbounded variable, multiplicatively above
    `lower_bound` for a bounded one (a block with nothing above the bound takes the coarse value
    over the whole block). `upsample` is the interpolation corrected this way; applied to
    generated fields it is the hard constraint of Harder et al. (2023). The multiplicative
    correction has no cap: a block wet in one cell of 16 puts all its mass there."""
    fields = np.asarray(fields, dtype=np.float64)
    means = _spread(block_mean(fields, factor, areas, mask), factor)
    target = _spread(np.asarray(coarse, dtype=np.float64), factor)
    if lower_bound is None:
        out = fields + (target - means)
    else:  # scale each block's shape above the bound
        base = lower_bound
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (target - base) / (means - base)
        out = np.where(means - base > 0, base + (fields - base) * ratio, target)
    if mask is not None:
        out = np.where(mask, out, np.nan)
    return out


class Coarsening:
    """The downscaling operator on one store's grid: `coarsen` (fine -> coarse, physical units),
    `upsample` (coarse -> fine), and `condition` (normalised fine fields -> the model's condition:
    the coarsened-and-upsampled fields, normalised as the store's fields are)."""

    def __init__(self, stats: dict, factor: int):
        self.stats, self.factor = stats, factor
        grid = stats["grid"]
        self.areas = cell_areas(grid["latitude"], grid["longitude"])
        self.mask = grid_mask(stats)
        check_factor(self.areas.shape, factor)

    def lower_bound(self, variable: str) -> float | None:
        return self.stats["variables"][variable].get("lower_bound")

    def coarsen(self, fields: np.ndarray) -> np.ndarray:
        """(..., H, W) physical -> (..., H/f, W/f) block means."""
        return block_mean(fields, self.factor, self.areas, self.mask)

    def spread(self, coarse: np.ndarray) -> np.ndarray:
        """Each coarse cell's value over its block of the fine grid (no interpolation)."""
        return _spread(coarse, self.factor)

    def upsample(self, coarse: np.ndarray, variable: str) -> np.ndarray:
        return upsample(coarse, self.factor, self.areas, self.mask, self.lower_bound(variable))

    def conserve(self, fields: np.ndarray, coarse: np.ndarray, variable: str) -> np.ndarray:
        """Fine physical `fields` (..., H, W) whose block means are made `coarse` (`conserve`)."""
        return conserve(fields, coarse, self.factor, self.areas, self.mask, self.lower_bound(variable))

    def interpolated(self, physical: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Physical fine fields per variable -> U(C(x)) per variable (physical)."""
        return {v: self.upsample(self.coarsen(x), v) for v, x in physical.items()}

    def condition(self, normalised_fields: np.ndarray) -> np.ndarray:
        """(time, C, H, W) normalised -> (time, C, H, W) float32: U(C(x)) normalised (0 at
        masked cells and where a block had no value, as missing values are in training)."""
        physical = denormalise(np.asarray(normalised_fields, dtype=np.float64), self.stats)
        upsampled = self.interpolated(physical)
        norm = {v: self.stats["variables"][v] for v in self.stats["channels"]}
        real = self.mask if self.mask is not None else np.ones(self.areas.shape, dtype=bool)
        return np.nan_to_num(normalise(upsampled, norm, real))
