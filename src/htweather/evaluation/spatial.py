"""Fields, not only marginals: the spatial structure of generated fields against the data's.

Every tail metric in `tails` pools values over cells and members, so a model that scatters the
right values as speckle, or smears each storm into a wide, faint patch, scores as well as one
that makes storms. This module measures the structure, per variable, on whole fields:

- **spectra**: the radially averaged power spectral density of each field (as pysteps' RAPSD,
  binned by physical frequency so that rectangular grids are right too), averaged over fields,
  on the grid's spacing in km (the square root of the mean cell area, so projected grids use
  their own spacing). A limited area is not periodic: the field is mirrored first (its cosine
  transform), so that the jumps between opposite edges do not leak power into the small scales;
  masked and missing cells take the nearest real cell's value. `psd_log_error` is the mean
  |log10(P_gen / P_data)| over the wavenumbers 1 to max(ny, nx) - 1 (wavelengths from twice
  the domain down to just over two cells; k = 0, the mean, is the marginal's business);
  `psd_log_ratio_large` and `psd_log_ratio_small` are the signed means over the lower and upper
  half of them: below 0 the model has too little variance at those scales (too smooth), above 0
  too much (too noisy). The mean spectrum of a heavy-tailed variable is dominated by its few most
  extreme fields, so it varies between samples more than the tail quantiles do.
- **objects** (variables with one tail of interest): connected regions (8-neighbour,
  `scipy.ndimage.label`) of cells beyond a threshold of the data's. Upper tail (precipitation):
  at or above its wet threshold (trace amount, `wet`) and its 99th percentile of all values
  (`p99`). Lower tail (`tails: lower`, e.g. ascent in pressure velocity): at or below its 1st
  percentile (`p01`); areas and peaks are then of the negated field (the ascent's magnitude).
  A variable with both tails has no objects. Per threshold:
  `object_count_ratio` (mean objects per field, generated over data; 1 is right),
  `object_area_rel_error` and `object_area_q99_rel_error` (mean and 99th percentile of the
  objects' areas in km^2), `object_peak_rel_error` and `object_peak_q99_rel_error` (the same of
  the objects' peak values), and SAL's structure component `sal_structure`
  (Wernli et al. 2008): with each object's total R_n and peak R_max,n, a field's scaled volume is
  V = sum_n R_n^2 / R_max,n / sum_n R_n, and S = (V_gen - V_data) / (0.5 (V_gen + V_data)) with V
  averaged over the fields that hold an object. S > 0: objects too large or too flat; S < 0: too
  small or too peaked. `sal_amplitude` is SAL's A on the domain mean (of the real, valid cells):
  (D_gen - D_data) / (0.5 (D_gen + D_data)), for these variables only (a mean near 0 makes it
  meaningless). The `p99` threshold is at least the smallest value above the variable's lower
  bound, so that a mostly dry variable's objects are not the whole domain. Generated fields are not paired with observed ones, so S and A compare
  distributions (the mean over fields), not one forecast with one observation; SAL's location
  component needs pairs and is not computed.
- **areal extremes**: the tail of area-weighted block means over k x k cells (blocks whose cells
  are all real) for each configured k, and of the whole field's mean (`field`): the quantile
  errors and exceedance ratios of `tails`, named `areal_<metric>_<k>x<k>` and
  `areal_<metric>_field`. A model whose storms are too small gets the cell values right and the
  areal means too low.

Object statistics are over the fields that hold objects. When no generated field of a resample
holds one, the model has no storms at all: count ratio 0, area and peak errors −1 and S −2 (the
values of storms of size and peak 0), not undefined ones. A metric is undefined (NaN) only where
the data lack what it measures.

A set of fields is summarised once (`summarise`, per field), so that every metric of any
resample (a count per field: generated members, or the data's time steps) follows from weighted
sums without relabelling (`spatial_metrics`); `evaluate` and `comparisons` take their intervals
that way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from .. import artifacts
from ..data.store import cell_areas, grid_mask, load_stats, test_fields
from ..runtime import derived_seed
from .bootstrap import SortedUnits, bootstrap_intervals, data_opts
from .tables import COLUMNS
from .tails import quantile_metrics_at

log = logging.getLogger(__name__)

# 8-neighbour connectivity: cells that touch at a corner belong to one object (as SAL's and
# pysteps' object detection, scikit-image's default in 2-D)
CONNECTIVITY = np.ones((3, 3), dtype=bool)
OBJECT_PROBABILITY = 0.99  # the `p99` objects: cells at or above the data's 99th percentile
OBJECT_QUANTILE = 0.99     # the tail of the object areas and peaks


def is_spatial(metric: str) -> bool:
    """Whether a metric of metrics.csv is one of this module's."""
    return metric.startswith(("psd_", "object_", "sal_", "areal_"))


def grid_spacing_km(stats: dict) -> float:
    """The grid's spacing in km: the square root of its mean real cell area."""
    areas = cell_areas(stats["grid"]["latitude"], stats["grid"]["longitude"])
    mask = grid_mask(stats)
    return float(np.sqrt(areas[mask].mean() if mask is not None else areas.mean()))


def filled(fields: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(n, ny, nx) fields with each masked or missing cell set to the value of the nearest real
    cell of its field (a Fourier transform needs every cell; a constant fill would add edges
    around the mask, and their power at every wavenumber)."""
    out = np.array(fields, dtype=np.float64)
    bad = ~np.isfinite(out)
    if mask is not None:
        bad |= ~mask[None]
    nearest = {}  # by the pattern of bad cells: a static mask is one pattern
    for i in np.flatnonzero(bad.reshape(len(out), -1).any(axis=1)):
        key = bad[i].tobytes()
        if key not in nearest:
            nearest[key] = None if bad[i].all() else ndimage.distance_transform_edt(
                bad[i], return_distances=False, return_indices=True)
        out[i] = 0.0 if nearest[key] is None else out[i][tuple(nearest[key])]
    return out


def mirrored(fields: np.ndarray) -> np.ndarray:
    """(..., 2 ny, 2 nx): each field and its mirror images, a periodic field without the jumps at
    the edges that a limited area's own periodic extension has (their power would leak into
    every wavenumber and swamp a smooth field's small scales). Its Fourier transform is the
    field's discrete cosine transform (the spectra of limited-area models, Denis et al. 2002)."""
    wide = np.concatenate([fields, fields[..., ::-1]], axis=-1)
    return np.concatenate([wide, wide[..., ::-1, :]], axis=-2)


def _rings(shape: tuple[int, int]) -> np.ndarray:
    """(2 ny, 2 nx): each Fourier coefficient's wavenumber k of the mirrored field, its radial
    frequency in cycles per cell times 2 max(ny, nx), rounded (pysteps' RAPSD bins on a square
    grid; on a rectangular one, physical frequency rather than index distance)."""
    fy, fx = np.fft.fftfreq(2 * shape[0]), np.fft.fftfreq(2 * shape[1])
    return np.round(np.hypot(fy[:, None], fx[None, :]) * 2 * max(shape)).astype(np.int64)


def power_spectra(fields: np.ndarray, mask: np.ndarray | None = None, chunk: int = 256) -> np.ndarray:
    """(n, K) radially averaged power spectral density of each field, |F|^2 / size of the FFT
    of its mirrored extension averaged over the ring of each wavenumber k = 0 .. K - 1,
    K = max(ny, nx): on a square grid exactly `pysteps.utils.spectral.rapsd` of the mirrored field
    (tested)."""
    full = filled(fields, mask)
    rings = _rings(full.shape[1:])
    k = max(full.shape[1:])
    keep = rings < k
    index, size = rings[keep], rings.size
    counts = np.bincount(index, minlength=k)
    out = np.empty((len(full), k))
    for start in range(0, len(full), chunk):
        power = np.abs(np.fft.fft2(mirrored(full[start:start + chunk]))) ** 2 / size
        for i, p in enumerate(power, start):
            out[i] = np.bincount(index, weights=p[keep], minlength=k) / counts
    return out


def wavelengths_km(shape: tuple[int, int], spacing_km: float) -> np.ndarray:
    """The wavelength (km) of each wavenumber of `power_spectra`: 2 max(ny, nx) spacing / k;
    inf at wavenumber 0."""
    with np.errstate(divide="ignore"):
        return 2 * max(shape) * spacing_km / np.arange(max(shape))


@dataclass
class Objects:
    """Connected regions at or above a threshold in a set of fields: per object the field it lies
    in (`unit`), its area (km^2), peak and total; `units`: the number of fields."""
    unit: np.ndarray
    area: np.ndarray
    peak: np.ndarray
    total: np.ndarray
    units: int


def find_objects(fields: np.ndarray, threshold: float, areas: np.ndarray, mask: np.ndarray | None = None) -> Objects:
    """The objects of (n, ny, nx) fields: connected cells >= threshold (masked and missing cells
    never belong to one); `areas`: (ny, nx) cell areas in km^2."""
    unit, area, peak, total = [], [], [], []
    for i, f in enumerate(np.asarray(fields, dtype=np.float64)):
        above = np.isfinite(f) & (f >= threshold)
        if mask is not None:
            above &= mask
        labels, n = ndimage.label(above, structure=CONNECTIVITY)
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        unit.append(np.full(n, i))
        area.append(ndimage.sum_labels(areas, labels, index))
        peak.append(ndimage.maximum(f, labels, index))
        total.append(ndimage.sum_labels(f, labels, index))

    def joined(parts, dtype=np.float64):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    return Objects(joined(unit, np.int64), joined(area), joined(peak), joined(total), len(fields))


def scaled_volumes(objects: Objects) -> np.ndarray:
    """SAL's scaled volume of each field, V = sum_n R_n^2 / R_max,n / sum_n R_n over its objects
    (total R_n, peak R_max,n); NaN for a field with no object."""
    num = np.bincount(objects.unit, objects.total**2 / objects.peak, minlength=objects.units)
    den = np.bincount(objects.unit, objects.total, minlength=objects.units)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def block_means(fields: np.ndarray, k: int | None, areas: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(n, blocks) area-weighted means of the non-overlapping k x k blocks whose cells are all
    real (a partial block at the far edges is left out); a field missing a value in a block has
    NaN there. k None: the whole field's mean over its real cells with a value, (n, 1)."""
    fields = np.asarray(fields, dtype=np.float64)
    real = np.ones(fields.shape[1:], dtype=bool) if mask is None else mask
    w = np.where(real, areas, 0.0)
    if k is None:  # over the real cells that hold a value at that time
        valid = w[None] * np.isfinite(fields)
        total = valid.sum(axis=(1, 2))
        sums = (np.nan_to_num(fields) * valid).sum(axis=(1, 2))
        return np.where(total > 0, sums / np.where(total > 0, total, 1), np.nan)[:, None]
    ny, nx = (fields.shape[1] // k) * k, (fields.shape[2] // k) * k

    def blocks(a):  # (..., ny, nx) -> (..., ny/k, nx/k, k*k)
        a = a[..., :ny, :nx]
        shape = a.shape[:-2] + (ny // k, k, nx // k, k)
        return np.swapaxes(a.reshape(shape), -3, -2).reshape(shape[:-4] + (ny // k, nx // k, k * k))
    whole = blocks(real).all(axis=-1).ravel()
    wb = blocks(w)
    means = (blocks(np.where(real, fields, 0.0)) * wb).sum(axis=-1) / np.where(wb.sum(axis=-1) > 0, wb.sum(axis=-1), 1)
    return means.reshape(len(fields), -1)[:, whole]


def block_label(k: int | None) -> str:
    return "field" if k is None else f"{k}x{k}"


def block_sizes(shape: tuple[int, int], sizes: list[int]) -> list[int | None]:
    """The configured block sizes that fit the grid and are smaller than it, then the whole field."""
    return [k for k in sorted(set(sizes)) if 1 < k <= min(shape) and k < max(shape)] + [None]


@dataclass
class FieldSummary:
    """What the spatial metrics need of one set of fields of one variable, per field."""
    psd: np.ndarray                                          # (n, K)
    mean: np.ndarray                                         # (n,) domain means
    objects: dict[str, Objects] = field(default_factory=dict)  # by threshold name
    blocks: dict[str, SortedUnits] = field(default_factory=dict)  # by block label
    positive: bool = False                                   # an upper-tail variable: SAL's amplitude applies

    @property
    def units(self) -> int:
        return len(self.mean)


@dataclass
class SpatialSpec:
    """The grid and the data's thresholds that every set of fields of one variable is summarised with."""
    areas: np.ndarray                    # (ny, nx) km^2
    mask: np.ndarray | None
    thresholds: dict[str, float]         # object thresholds by name (wet, p99, p01), of sign * field
    sizes: list[int | None]              # block sizes (None: the whole field)
    sign: float = 1.0                    # -1: objects of the negated field (a lower tail)


def spatial_spec(stats: dict, variable: str, data_fields: np.ndarray, sizes: list[int]) -> SpatialSpec:
    """The spec of one variable: objects at the trace amount where the variable has one, and at
    the data's p99 for an upper tail or at its p01 for a lower one (module docstring)."""
    info = stats["variables"][variable]
    mask = grid_mask(stats)
    areas = cell_areas(stats["grid"]["latitude"], stats["grid"]["longitude"])
    thresholds = {}
    if info["tails"] == "lower":
        values = -(data_fields[:, mask] if mask is not None else data_fields)
        values = values[np.isfinite(values)]
        thresholds["p01"] = float(np.quantile(values, OBJECT_PROBABILITY, method="inverted_cdf"))
        return SpatialSpec(areas, mask, thresholds, block_sizes(data_fields.shape[1:], sizes), sign=-1.0)
    if info["tails"] == "upper":
        values = data_fields[:, mask] if mask is not None else data_fields
        values = values[np.isfinite(values)]
        if info.get("trace") is not None:
            thresholds["wet"] = float(info["trace"])
        p99 = float(np.quantile(values, OBJECT_PROBABILITY, method="inverted_cdf"))
        bound = info.get("lower_bound")
        above = values[values > bound] if bound is not None else values[:0]
        if bound is not None and p99 <= bound and above.size:  # mostly at the bound (dry)
            p99 = float(above.min())
        thresholds["p99"] = p99
    return SpatialSpec(areas, mask, thresholds, block_sizes(data_fields.shape[1:], sizes))


def summarise(fields: np.ndarray, spec: SpatialSpec) -> FieldSummary:
    """The per-field summary of (n, ny, nx) fields of one variable."""
    fields = np.asarray(fields, dtype=np.float64)
    whole = block_means(fields, None, spec.areas, spec.mask)[:, 0]
    return FieldSummary(
        psd=power_spectra(fields, spec.mask),
        mean=whole,
        objects={name: find_objects(spec.sign * fields, t, spec.areas, spec.mask) for name, t in spec.thresholds.items()},
        positive=spec.sign > 0 and bool(spec.thresholds),
        blocks={block_label(k): SortedUnits(block_means(fields, k, spec.areas, spec.mask) if k else whole[:, None])
                for k in spec.sizes})


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = weights.sum()
    return float(values @ weights / total) if total > 0 else float("nan")


def weighted_quantile(values: np.ndarray, weights: np.ndarray, p: float) -> float:
    """Inverted-CDF quantile of `values` with integer or real `weights` (as `tails`); NaN when empty."""
    if values.size == 0 or weights.sum() <= 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    index = np.searchsorted(cum, p * cum[-1] * (1 - 1e-12), side="left")
    return float(values[order][min(index, values.size - 1)])


def _relative(g: float, d: float) -> float:
    return (g - d) / abs(d) if d and np.isfinite(d) else float("nan")


def _symmetric(g: float, d: float) -> float:
    """SAL's normalised difference (g - d) / (0.5 (g + d)), in [-2, 2] for positive g, d."""
    return 2 * (g - d) / (g + d) if np.isfinite(g + d) and (g + d) != 0 else float("nan")


def spectrum_metrics(psd_gen: np.ndarray, psd_data: np.ndarray) -> dict[str, float]:
    """The spectral metrics of mean spectra (K,) against the data's (module docstring)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log10(psd_gen[1:] / psd_data[1:])
    if log_ratio.size == 0:
        return {}
    half = max(1, log_ratio.size // 2)
    return {"psd_log_error": float(np.mean(np.abs(log_ratio))),
            "psd_log_ratio_large": float(np.mean(log_ratio[:half])),
            "psd_log_ratio_small": float(np.mean(log_ratio[half:])) if log_ratio.size > half else float("nan")}


def object_statistics(objects: Objects, counts: np.ndarray) -> dict[str, float]:
    """Mean object count per field, mean and q99 of areas and peaks, and the mean scaled
    volume, of a resample (`counts` per field)."""
    w = counts[objects.unit].astype(float)
    volumes = scaled_volumes(objects)
    has = np.isfinite(volumes)
    return {"count": float(np.bincount(objects.unit, minlength=objects.units) @ counts / counts.sum()),
            "area": _weighted_mean(objects.area, w), "area_q": weighted_quantile(objects.area, w, OBJECT_QUANTILE),
            "peak": _weighted_mean(objects.peak, w), "peak_q": weighted_quantile(objects.peak, w, OBJECT_QUANTILE),
            "volume": _weighted_mean(volumes[has], counts[has].astype(float))}


def spatial_metrics(gen: FieldSummary, data: FieldSummary, quantiles: list[float], tails: str,
                    gen_counts: np.ndarray | None = None, data_counts: np.ndarray | None = None) -> dict[str, float]:
    """Every spatial metric of the generated fields against the data's, for a resample given by
    a count per field of each (None: each field once)."""
    cg = np.ones(gen.units, dtype=np.int64) if gen_counts is None else gen_counts
    cd = np.ones(data.units, dtype=np.int64) if data_counts is None else data_counts
    out = spectrum_metrics(cg @ gen.psd / cg.sum(), cd @ data.psd / cd.sum())
    if gen.positive:  # a variable with objects of its upper tail: a positive domain mean
        out["sal_amplitude"] = _symmetric(_weighted_mean(gen.mean, cg.astype(float)),
                                          _weighted_mean(data.mean, cd.astype(float)))
    for name, objects in gen.objects.items():
        g, d = object_statistics(objects, cg), object_statistics(data.objects[name], cd)
        # no generated field with an object: storms of area, peak and volume 0 (relative errors
        # -1, S -2), not undefined ones
        g = {k: (0.0 if np.isnan(v) else v) for k, v in g.items()}
        out[f"object_count_ratio_{name}"] = g["count"] / d["count"] if d["count"] > 0 else float("nan")
        out[f"object_area_rel_error_{name}"] = _relative(g["area"], d["area"])
        out[f"object_area_q99_rel_error_{name}"] = _relative(g["area_q"], d["area_q"])
        out[f"object_peak_rel_error_{name}"] = _relative(g["peak"], d["peak"])
        out[f"object_peak_q99_rel_error_{name}"] = _relative(g["peak_q"], d["peak_q"])
        out[f"sal_structure_{name}"] = _symmetric(g["volume"], d["volume"])
    for label, units in gen.blocks.items():
        found = quantile_metrics_at(units, data.blocks[label], units.cumulative(gen_counts),
                                    data.blocks[label].cumulative(data_counts), quantiles, tails)
        out.update({f"areal_{metric}_{label}": value for metric, value in found.items()})
    return out


def structure_table(config: dict, model: str, ensemble_path: str | Path, store: str | Path, stats_path: str | Path,
                    data: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The `evaluate` step's spatial rows: every spatial metric of one ensemble against the test
    split, with bootstrap intervals (members resampled whole, the data's time steps in blocks)."""
    stats = load_stats(stats_path)
    opts = data_opts(config, stats)
    data = test_fields(store) if data is None else data
    ensemble = artifacts.open_zarr(ensemble_path)
    rng = np.random.default_rng(derived_seed(config["seed"], "evaluate_spatial", model))
    rows = []
    for name in stats["channels"]:
        spec = spatial_spec(stats, name, data[name], opts["spatial"]["block_sizes"])
        gen, ref = summarise(ensemble[name].values, spec), summarise(data[name], spec)
        tails = stats["variables"][name]["tails"]

        def statistic(gen_counts=None, data_counts=None, _g=gen, _d=ref, _tails=tails):
            return spatial_metrics(_g, _d, opts["quantiles"], _tails, gen_counts, data_counts)

        point = statistic()
        intervals = bootstrap_intervals(gen.units, ref.units, statistic, opts["bootstrap"], opts["block_length"],
                                        opts["confidence"], rng)
        log.info("%s / %s: spectrum log error %.3g%s", model, name, point.get("psd_log_error", np.nan),
                 "".join(f", S({t}) {point[f'sal_structure_{t}']:+.2f}" for t in spec.thresholds))
        for metric, value in point.items():
            low, high = intervals.get(metric, (np.nan, np.nan))
            rows.append({"model": model, "variable": name, "metric": metric, "value": value,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=COLUMNS)


def areal_quantiles(summary: FieldSummary, p: float) -> dict[str, float]:
    """The p-quantile of the block means at each block size (by label), each field once."""
    return {label: float(units.quantiles(units.cumulative(), [p])[0]) for label, units in summary.blocks.items()}


def block_extent_km(label: str, shape: tuple[int, int], spacing_km: float) -> float:
    """The side of a block (`block_label`) in km; the whole field's: the square root of its area."""
    if label == "field":
        return float(np.sqrt(shape[0] * shape[1]) * spacing_km)
    return int(label.split("x")[0]) * spacing_km
