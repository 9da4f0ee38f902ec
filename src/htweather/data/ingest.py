"""Ingestion: reanalysis (files or zarr, local or remote) -> analysis-ready, chunked zarr store
with its normalisation, out of core.

Steps, all lazy (dask) until the store is written:
1. open the source in one layout (`sources`) and pick the config's variables (canonical
   names, pressure levels);
2. check the time axis (order, duplicates, gaps within the splits' span);
3. read sentinels (`missing_value`) as missing; crop to the region (index ranges; lat/lon
   boxes in either longitude convention, across the dateline or Greenwich, or over the 2-D
   coordinates of a projected grid), latitude descending on regular grids (ERA5 order),
   optional coarsening by block means (`resolution` in degrees, or `coarsen` cells);
4. convert units, optionally resample in time (amounts summed, states averaged), keep the
   times of the train/validation/test splits;
5. read the source ONCE: write the physical fields and, from the same chunks, per-cell
   counts and sums, which give the mask of real cells (e.g. land-only products with NaN over
   sea; a cell missing at some times only stays, NaN at those times) and the normalisation
   statistics from the TRAIN split over the real, valid values only;
6. add the mask, the statistics and provenance attributes; consolidate the metadata.

The later stages read the store through `store` (`split_rows(store, split)`: the per-variable transform
standardised with those statistics, 0 at masked cells, computed lazily from the physical
fields). The store is written
under a temporary name and renamed at the end, so a failure leaves no half-written store;
memory is bounded by the chunk size, whatever the input size.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from dask.diagnostics import ProgressBar

from ..config import SPLITS, input_files, is_zarr, split_labels
from ..errors import IngestError
from .. import artifacts
from . import catalog, synthetic, transforms
from .store import cell_areas
from .sources import REGULAR, TASK_BYTES, grid_dims, open_source

log = logging.getLogger(__name__)


def source_list(config: dict, files: list[str] | None = None) -> list[str]:
    """The inputs to read: the given files, else the config's files, local or remote store."""
    if files:
        return list(files)
    source = config["data"]["source"]
    return input_files(config) or ([source] if is_zarr(source) else [])


def check_source(config: dict, scan_values: bool | None = False) -> str | None:
    """What ingestion would reject, found before any job runs: the command line's `check` and
    the workflow's start call this. It runs ingestion's own preparation (`prepare`), which is
    lazy, so the two cannot disagree: every file opened for its metadata and coordinates (no
    field is read, nothing is written), every variable found in some file, the grids, time
    axes and gaps, the region, the units converted, and every split selecting times of the
    source. `scan_values` True also reads the values (`scan`), None reads them where the
    selection is at most SCAN_BYTES; returns a line saying what was scanned, or None. The
    synthetic source, which the workflow writes later, has known units only."""
    data = config["data"]
    if data["source"] == "synthetic":
        where = "the synthetic data"
        step_hours = time_axis(synthetic.times(data["synthetic"]), data["splits"], data["gaps"], where)
        for name, opts in data["variables"].items():
            units_conversion(name, opts, synthetic.ATTRS[name]["units"], step_hours, where)
        return
    sources = source_list(config)
    if not sources:
        raise IngestError(f"data.source: no file matches '{data['source']}'")
    ds = prepare(config, sources)[0]
    try:
        # what a scan reads: the selection before block means (coarsening), at least
        size = 8.0 * sum(ds[v].size for v in data["variables"]) * (data["coarsen"] or 1) ** 2  # float64
        remote = any("://" in s for s in sources)  # whole remote chunks, maybe global fields: never unasked
        if scan_values is None and (size > SCAN_BYTES or remote):
            why = "a remote source" if remote else f"{size / 1e9:.2f} GB selected"
            return (f"values not scanned ({why}; `htweather check --scan` reads them for infinite, all-missing "
                    f"and constant variables)")
        if scan_values is not False:
            start = time.perf_counter()
            scan(ds, data["variables"], sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} files)")
            return f"values scanned ({size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s"
    finally:
        ds.close()
    return None


def check_cell_areas(ds: xr.Dataset, where: str) -> None:
    """Every cell of the selected grid has an area: area weights, spectra and storm areas divide
    by it. A projected grid whose 2-D latitude and longitude do not advance along a row or a
    column (a degenerate grid) has cells of zero area."""
    areas = cell_areas(ds.latitude.values, ds.longitude.values)
    bad = ~(areas > 1e-12 * np.nanmax(areas)) if np.isfinite(areas).any() and np.nanmax(areas) > 0 else \
        np.ones(areas.shape, dtype=bool)
    if ds.latitude.ndim == 1:  # cos(90 deg): the poles' rows of a global grid have no area, rightly
        bad &= ~np.isclose(np.abs(ds.latitude.values), 90.0)[:, None]
    if bad.any() and not (ds.sizes[grid_dims(ds)[0]] == 1 and ds.sizes[grid_dims(ds)[1]] == 1):
        i, j = np.argwhere(bad)[0]
        raise IngestError(f"{where}: {int(bad.sum())} of {bad.size} grid cells have zero area (first at row {i}, "
                          f"column {j}): the grid's latitude and longitude do not advance there (a degenerate grid)")


SCAN_BYTES = 256e6  # `check` reads a selection up to this size (float64); larger ones with --scan


def scan(ds: xr.Dataset, variables: dict, where: str) -> None:
    """What ingestion would find in the values themselves, found by reading them once: an
    infinite value anywhere, a variable all missing or constant over the train split."""
    import dask

    train = ds.isel(time=np.flatnonzero(ds.split.values == "train"))
    jobs = {v: (np.isinf(ds[v]).sum(), train[v].count(), train[v].min(), train[v].max()) for v in variables}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        try:
            found = dask.compute(jobs)[0]
        except Exception as exc:  # backend read errors surface here, inside dask, as in `ingest`
            message = str(exc).splitlines()[0] if str(exc) else ""
            raise IngestError(f"{where}: reading the data failed ({type(exc).__name__}: {message})") from None
    for v, (infinite, count, low, high) in found.items():
        if int(infinite):
            raise IngestError(f"{where}: variable '{v}' (data.variables.{v}) has {int(infinite)} infinite values")
        if not int(count):
            raise IngestError(f"{where}: variable '{v}' (data.variables.{v}) is missing (NaN) everywhere in the "
                              f"train split (data.splits)")
        low, high = float(low), float(high)
        if high - low <= 1e-7 * max(abs(low), abs(high), 1.0):
            raise IngestError(f"{where}: variable '{v}' (data.variables.{v}) is constant over the train split "
                              f"(data.splits): every value is {low:g}")


def select_region(ds: xr.Dataset, region: dict | None, where: str) -> xr.Dataset:
    """Crop to the region: index ranges of the grid's rows and columns (`y`, `x`: [start, stop),
    0-based, in the store's order), then a lat/lon box. On a projected or curvilinear grid the
    box keeps the smallest index window holding every cell whose 2-D latitude and longitude lie
    in it; on a regular grid see `select_latlon_box`."""
    region = region or {}
    dims = grid_dims(ds)
    if dims == REGULAR:  # rows north to south first, so that index ranges count in the store's order
        ds = ds.isel(latitude=np.argsort(-ds.latitude.values, kind="stable"))
    for key, dim in zip(("y", "x"), dims):
        if region.get(key) is not None:
            start, stop = region[key]
            if not 0 <= start < stop <= ds.sizes[dim]:
                raise IngestError(f"data.region.{key}: [{start}, {stop}) is not an index range of the "
                                  f"{ds.sizes[dim]} {dim} cells of {where}")
            ds = ds.isel({dim: slice(start, stop)})
    if dims == REGULAR:
        return select_latlon_box(ds, region, where)
    if region.get("lat") is None and region.get("lon") is None:
        return ds
    lat, lon = ds.latitude.values, ds.longitude.values
    inside = np.ones(lat.shape, dtype=bool)
    if region.get("lat") is not None:
        south, north = sorted(region["lat"])
        inside &= (lat >= south) & (lat <= north)
    if region.get("lon") is not None:
        inside &= east_of(lon, *region["lon"])[1]
    if not inside.any():
        raise IngestError(f"{where}: data.region {region} selects no grid cell (source latitude "
                          f"{np.nanmin(lat):g}..{np.nanmax(lat):g}, longitude {np.nanmin(lon):g}..{np.nanmax(lon):g})")
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    return ds.isel(y=slice(rows[0], rows[-1] + 1), x=slice(cols[0], cols[-1] + 1))


def east_of(lon: np.ndarray, west: float, east: float, tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes' offsets east of `west` (degrees, in [-tol, 360 - tol)) and whether they lie in
    the box running east from `west` to `east`, in either convention ([170, -170] crosses the
    dateline)."""
    width = east - west if 0 < east - west <= 360 else (east - west) % 360
    offset = np.mod(lon - west, 360.0)
    offset = np.where(offset > 360.0 - tol, offset - 360.0, offset)  # a hair west of `west`
    return offset, offset <= width + tol


def select_latlon_box(ds: xr.Dataset, region: dict, where: str) -> xr.Dataset:
    """Crop a regular grid to region = {lat: [south, north], lon: [west, east]} and order
    latitude descending.

    The lon box runs EAST from `west` to `east` in either convention (-180..180 or 0..360),
    whatever the source's: [-10, 5] crosses Greenwich, [170, -170] the dateline. Output
    longitudes are west + ((lon - west) mod 360), increasing and contiguous (they may pass
    180). Without a lon box the source's longitudes are kept, sorted."""
    lat = np.asarray(ds.latitude.values, dtype=float)
    lon = np.asarray(ds.longitude.values, dtype=float)
    # float32 coordinates (old CDS files) miss box edges by ~1e-6: allow a tenth of a cell
    spacing = np.abs(np.diff(np.sort(lon))).min() if lon.size > 1 else 1.0
    tol = 0.1 * min(spacing, np.abs(np.diff(np.sort(lat))).min() if lat.size > 1 else 1.0)
    lat_keep = np.arange(lat.size)
    lon_keep, new_lon = np.argsort(lon, kind="stable"), np.sort(lon)
    region = region or {}
    if region.get("lat") is not None:
        south, north = sorted(region["lat"])
        lat_keep = np.flatnonzero((lat >= south - tol) & (lat <= north + tol))
    if region.get("lon") is not None:
        west, east = region["lon"]
        if east - west > 360:
            raise IngestError(f"data.region.lon: [{west:g}, {east:g}] spans more than 360 degrees")
        offset, inside = east_of(lon, west, east, tol)
        inside = np.flatnonzero(inside)
        inside = inside[np.argsort(offset[inside], kind="stable")]
        # a cyclic column (both 0 and 360, or -180 and 180) would appear twice: keep the first
        wrapped = np.round(np.mod(lon[inside], 360.0) / tol).astype(np.int64) % int(round(360 / tol))
        _, first = np.unique(wrapped, return_index=True)
        lon_keep = inside[np.sort(first)]
        new_lon = west + offset[lon_keep]
    if lat_keep.size == 0 or lon_keep.size == 0:
        raise IngestError(f"{where}: data.region {region} selects no grid cell (source latitude "
                          f"{lat.min():g}..{lat.max():g}, longitude {lon.min():g}..{lon.max():g})")
    lat_keep = lat_keep[np.argsort(-lat[lat_keep], kind="stable")]
    ds = ds.isel(latitude=lat_keep, longitude=lon_keep)
    return ds.assign_coords(longitude=("longitude", new_lon, ds.longitude.attrs))


def coarsen(ds: xr.Dataset, resolution: float | None, where: str, factor: int | None = None) -> xr.Dataset:
    """Block means over blocks of cells: `factor` x `factor` on any grid (data.coarsen), or
    k x k with k = resolution / grid spacing on a regular lat/lon grid (data.resolution; k must
    be a whole number in each direction). A coarse cell is missing where fewer than half of its
    fine cells have data; a remainder at the grid's far edges that fills no block is dropped.
    Coordinates are block means (2-D latitude/longitude too)."""
    dims = grid_dims(ds)
    if factor:
        factors, what = {d: int(factor) for d in dims}, f"data.coarsen: {factor}"
    elif resolution:
        if dims != REGULAR:
            raise IngestError(f"data.resolution: {where} is on a projected grid (dims y, x): coarsen it by a "
                              f"number of cells with data.coarsen instead")
        factors, what = {}, f"data.resolution: {resolution:g}"
        for dim in dims:
            steps = np.abs(np.diff(ds[dim].values.astype(float)))
            if steps.size == 0 or not np.allclose(steps, steps[0], rtol=1e-4):
                raise IngestError(f"{where}: data.resolution needs a regular {dim} spacing")
            k = resolution / steps[0]
            if abs(k - round(k)) > 1e-3 or round(k) < 1:
                raise IngestError(f"data.resolution: {resolution:g} is not a whole multiple of the {dim} "
                                  f"spacing {steps[0]:g} of {where} (data.coarsen takes a number of cells)")
            factors[dim] = int(round(k))
    else:
        return ds
    if all(f == 1 for f in factors.values()):
        return ds
    if any(ds.sizes[d] < f for d, f in factors.items()):
        raise IngestError(f"{what} is coarser than the selected region of {where}")
    blocks = ds.coarsen(factors, boundary="trim", coord_func="mean")
    counts = ds.notnull().coarsen(factors, boundary="trim").sum()
    full = int(np.prod(list(factors.values())))
    out = blocks.mean().where(2 * counts >= full)  # mean skips NaN
    if ds.longitude.ndim == 2:  # a circular mean: a block across the dateline is not at 0 degrees
        radians = np.deg2rad(ds.longitude)
        mean = [np.cos(radians).coarsen(factors, boundary="trim").mean(),
                np.sin(radians).coarsen(factors, boundary="trim").mean()]
        out = out.assign_coords(longitude=(dims, np.rad2deg(np.arctan2(mean[1].values, mean[0].values)),
                                           ds.longitude.attrs))
    for name in out.data_vars:
        out[name].attrs = ds[name].attrs
    return out


def splits_span(splits: dict) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and last time of the train/validation/test splits (None: the data's own ends,
    for interleaved blocks without start or end)."""
    if "blocks" in splits:
        return tuple(pd.Timestamp(splits[k]) if splits.get(k) else None for k in ("start", "end"))
    return (min(pd.Timestamp(splits[s][0]) for s in SPLITS), max(pd.Timestamp(splits[s][1]) for s in SPLITS))


def time_axis(time: pd.DatetimeIndex, splits: dict, gaps: str, where: str) -> float | None:
    """Check the time steps inside the span of the splits for gaps; return the step in hours
    (None for calendar steps such as months). A gap is a step longer than the usual one."""
    lo, hi = splits_span(splits)
    span = time[(time >= (lo or time[0])) & (time <= (hi or time[-1]))] if len(time) else time
    if len(span) < 2:
        return None
    steps = np.diff(span.asi8)
    values, counts = np.unique(steps, return_counts=True)
    usual = values[np.argmax(counts)]
    monthly = usual >= 28 * 86400e9  # calendar months vary between 28 and 31 days
    gap = np.flatnonzero(steps > 32 * 86400e9 if monthly else steps > usual)
    if gap.size and gaps == "error":
        i = int(gap[0])
        raise IngestError(f"{where}: {gap.size} gap(s) in time, the first after {span[i]} "
                          f"(next {span[i + 1]}, usual step {pd.Timedelta(int(usual))}); "
                          f"set data.gaps: allow to ingest anyway")
    if gap.size:
        log.warning("%s: %d gap(s) in time, the first after %s", where, gap.size, span[int(gap[0])])
    if monthly:  # no fixed step in hours
        return None
    return float(usual) / 3600e9


UNKNOWN_UNITS = ("unknown", "none", "")
AMOUNT_UNITS = ("mm", "m")  # per time step: summed when resampling
RATE_UNITS = ("kg m-2 s-1", "mm h-1", "mm day-1")


def units_conversion(name: str, opts: dict, file_units: str | None, step_hours: float | None,
                     where: str) -> tuple[str | None, str | None, float, float]:
    """Variable `name`'s source units (data.variables.NAME.source_units, else the file's; None
    when unknown), the units it is stored in (None: as it comes) and the (scale, offset) from
    one to the other; a conversion ingestion cannot make is an error naming the key."""
    source_units = opts["source_units"] or file_units
    if str(source_units).strip().lower() in UNKNOWN_UNITS:  # cfgrib's name for a local GRIB2 table's units
        source_units = None
    target = opts["units"] or catalog.default_units(name)
    if target and source_units is None:
        log.warning("%s: variable '%s' has no units (set data.variables.%s.source_units); kept as is",
                    where, name, name)
        target = None
    scale, offset = transforms.unit_conversion(source_units, target, where=f"data.variables.{name}.units",
                                               step_hours=step_hours)
    return source_units, target, scale, offset


def aggregation(name: str, units: str, source_units: str | None, how: str = "auto") -> str:
    """How resampling aggregates a variable: "auto" sums amounts per time step (tp in m or mm,
    or a flux stored as mm per step) and averages everything else, rates included."""
    if how != "auto":
        return how
    stored, source = transforms.canonical_units(units), transforms.canonical_units(source_units)
    if stored in AMOUNT_UNITS and (catalog.kind(name) == "amount" or source in RATE_UNITS):
        return "sum"
    return "mean"


def resample(ds: xr.Dataset, freq: str | None, variables: dict, step_hours: float | None, where: str) -> xr.Dataset:
    """Aggregate to `freq`, labelled by the period start: amounts summed and other variables
    (rates included) averaged, over the steps stamped [start, end), or (start, end] for ERA5
    accumulations such as tp, which are stamped at the end of their hour. Periods at the ends
    of the data that are not complete are dropped (a day with 23 of its 24 hours would be a
    wrong daily total)."""
    if not freq:
        return ds
    try:
        period = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise IngestError(f"data.resample: bad frequency {freq!r}") from None
    out, complete = {}, None
    for name, field in ds.data_vars.items():
        how = aggregation(name, field.attrs["units"], field.attrs.get("source_units"), variables[name]["aggregation"])
        # ERA5 accumulations (tp) are stamped at the END of their step, whatever units they get
        closed = "right" if catalog.kind(name) == "amount" else "left"
        agg = field.resample(time=freq, closed=closed, label="left")
        agg = agg.sum(min_count=1) if how == "sum" else getattr(agg, how)()
        agg.attrs = dict(field.attrs, aggregation=f"{how} over {freq}")
        out[name] = agg
        if step_hours:  # which periods hold all their steps
            steps = pd.Series(1, index=pd.DatetimeIndex(field.time.values)).resample(
                freq, closed=closed, label="left").count()
            expected = np.round((steps.index + period - steps.index) / pd.Timedelta(hours=step_hours))
            full = set(steps.index[steps.values == expected.astype(int)])
            complete = full if complete is None else complete & full
    result = xr.Dataset(out)
    if complete is not None:
        labels = pd.DatetimeIndex(result.time.values)
        inside = np.flatnonzero(labels.isin(sorted(complete)))
        keep = np.arange(inside[0], inside[-1] + 1) if inside.size else np.arange(0)
        if len(keep) < len(labels):
            log.warning("%s: dropped %d incomplete %s period(s) at the ends of the data", where,
                        len(labels) - len(keep), freq)
        result = result.isel(time=keep)
    return result


def select_splits(ds: xr.Dataset, splits: dict, where: str) -> xr.Dataset:
    time = pd.DatetimeIndex(ds.time.values)
    label = split_labels(time, splits)
    for split in SPLITS:
        if not (label == split).any():
            chosen = (f"{splits[split][0]} .. {splits[split][1]}" if split in splits
                      else f"the blocks of {splits['blocks']} (pattern {splits['pattern']})")
            raise IngestError(f"data.splits.{split}: {chosen} selects no time of {where} "
                              f"({time[0]} .. {time[-1]})")
    if "blocks" in splits:
        log.info("splits: blocks of %s, pattern %s, guard %s: %s; %d time(s) in guard bands", splits["blocks"],
                 splits["pattern"], splits.get("guard"),
                 ", ".join(f"{s} {(label == s).sum()}" for s in SPLITS), int((label == "").sum()))
    keep = label != ""
    return ds.isel(time=np.flatnonzero(keep)).assign_coords(split=("time", label[keep].astype(str)))


def stack_members(ds: xr.Dataset, where: str) -> xr.Dataset:
    """data.members: samples: the members of each time become fields of that time, one after
    another along the time axis (time-major, so a time's members are neighbours and share its
    split label), with their numbers in the coordinate `member`. The time coordinate then
    repeats each time once per member."""
    if "member" not in ds.dims:
        return ds
    n = ds.sizes["member"]
    stacked = ds.stack(field=("time", "member"))
    time, member, split = (stacked[c].values for c in ("time", "member", "split"))
    stacked = stacked.drop_vars(["field", "time", "member", "split"]).rename({"field": "time"})
    stacked = stacked.assign_coords(time=("time", time), member=("time", member), split=("time", split))
    stacked = stacked.transpose("time", ...)  # stack puts the new dimension last
    for name in stacked.data_vars:
        stacked[name].attrs = dict(ds[name].attrs, members_as_samples=n)
    log.info("%s: %d ensemble members stacked as fields of each time (%d fields)", where, n, stacked.sizes["time"])
    return stacked


def plan_time_chunks(chunks: tuple[int, ...], multiple: int, target: int) -> tuple[int, ...]:
    """Dask chunks along time for writing: boundaries of the source's chunks moved to the
    nearest multiple of the store's chunk (each task must write whole zarr chunks), then
    neighbours merged up to `target` steps. Sources already aligned (files chunked by
    `sources.open_file`, whose lengths are multiples of the store chunk) keep their chunks:
    splitting chunks across old boundaries would make dask hold pieces of many of them at once,
    and memory would grow with the input (measured)."""
    total = int(sum(chunks))
    bounds = np.cumsum(chunks)[:-1]
    snapped = sorted({int(round(b / multiple)) * multiple for b in bounds} - {0} - {total})
    sizes = np.diff([0, *[b for b in snapped if b < total], total]).tolist()
    merged = [sizes[0]]
    for size in sizes[1:]:
        if merged[-1] + size <= target:
            merged[-1] += size
        else:
            merged.append(size)
    return tuple(merged)


def processing_chunk(store_chunk: int, cells: int, target_bytes: float = TASK_BYTES) -> int:
    """Time steps per dask task: a multiple of the store's chunk (so each task writes whole zarr
    chunks) holding about `target_bytes` of float64 per variable. Computing with the small
    training chunks instead would spend the time in task overhead."""
    steps = max(1, int(target_bytes // (8 * cells)))
    return store_chunk * max(1, steps // store_chunk)


def prepare(config: dict, sources: list[str]) -> tuple[xr.Dataset, dict, dict]:
    """The lazy physical dataset (config names, target units, split labels), the per-variable
    metadata and the provenance of the selection."""
    data = config["data"]
    variables = data["variables"]
    where = sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} files)"
    span = splits_span(data["splits"])
    if data["resample"]:  # a resampled period may reach one period beyond the splits
        try:
            period = pd.tseries.frequencies.to_offset(data["resample"])
        except ValueError:
            raise IngestError(f"data.resample: bad frequency {data['resample']!r}") from None
        span = (span[0] - period if span[0] is not None else None, span[1] + 2 * period if span[1] is not None else None)
    ds = open_source(sources, variables, data["storage_options"], time_multiple=data["time_chunk"], time_range=span,
                     members=data["members"], grib_filter=data["grib_filter"])
    step_hours = time_axis(pd.DatetimeIndex(ds.time.values), data["splits"], data["gaps"], where)
    for name, opts in variables.items():  # a sentinel (MRMS: -3, no coverage) is missing, like NaN,
        if opts["missing_value"] is not None:  # before coarsening averages it into real values
            ds[name] = ds[name].where(ds[name] != opts["missing_value"])
    ds = select_region(ds, data["region"], where)
    ds = coarsen(ds, data["resolution"], where, data["coarsen"])
    check_cell_areas(ds, where)

    physical, meta = {}, {}
    for name, opts in variables.items():
        field = ds[name]
        source_units, target, scale, offset = units_conversion(name, opts, field.attrs.get("units"), step_hours,
                                                               where)
        converted = field.astype(np.float64)
        if (scale, offset) != (1.0, 0.0):
            converted = converted * scale + offset
        converted.attrs = {"units": target or source_units or "1", "long_name": field.attrs.get("long_name", name),
                           "source_name": field.attrs.get("source_name", name), "source_units": str(source_units)}
        if "grid_mapping_attrs" in field.attrs:
            converted.attrs["grid_mapping_attrs"] = field.attrs["grid_mapping_attrs"]
        physical[name] = converted
    out = resample(xr.Dataset(physical), data["resample"], variables, step_hours, where)
    out = select_splits(out, data["splits"], where)
    out = stack_members(out, where)
    for name, opts in variables.items():
        meta[name] = {"transform": opts["transform"], "units": out[name].attrs["units"],
                      "source_units": out[name].attrs["source_units"], "source_name": out[name].attrs["source_name"],
                      "lower_bound": opts["lower_bound"], "tails": opts["tails"], "trace": opts["trace"],
                      "dry_below": opts["dry_below"]}
    mapping = next((ds[v].attrs["grid_mapping_attrs"] for v in variables if "grid_mapping_attrs" in ds[v].attrs), None)
    provenance = {"sources": sources if len(sources) <= 50 else sources[:50] + [f"... {len(sources) - 50} more"],
                  "region": data["region"], "resolution": data["resolution"], "coarsen": data["coarsen"],
                  "resample": data["resample"], "grid_dims": list(grid_dims(ds)),
                  "grid_mapping": json.loads(mapping) if mapping else None,
                  "splits": data["splits"], "source_time_step_hours": step_hours,
                  "expver_merged": next((ds[v].attrs["expver_merged"] for v in variables
                                         if "expver_merged" in ds[v].attrs), None),
                  "variables": {n: {k: meta[n][k] for k in ("source_name", "source_units", "units", "transform")}
                                for n in variables}}
    return out, meta, provenance


def ingest(config: dict, files: list[str] | None, store: str | Path, stats_path: str | Path) -> dict:
    """Build the training store and its statistics file; returns the statistics. `files`
    None (or empty) reads the config's data.source."""
    data = config["data"]
    variables = list(data["variables"])
    sources = source_list(config, files)
    if not sources:
        raise IngestError(f"data.source: no file matches '{data['source']}'")
    store, stats_path = Path(store), Path(stats_path)
    ds, meta, provenance = prepare(config, sources)
    where = provenance["sources"][0]
    dims = grid_dims(ds)
    ny, nx = (ds.sizes[d] for d in dims)
    log.info("selected %s time steps x %s x %s grid cells (%s), variables %s", ds.sizes["time"], ny, nx,
             ", ".join(dims), variables)

    chunk = data["time_chunk"]
    work = processing_chunk(chunk, ny * nx)
    first = ds[variables[0]]
    time_chunks = plan_time_chunks(first.chunksizes["time"] if first.chunks else (ds.sizes["time"],), chunk, work)
    # the source's encodings (zarr v3 codecs, NetCDF compression, fill values) do not apply here
    physical = xr.Dataset({v: ds[v].astype(np.float32) for v in variables}).drop_encoding().chunk(
        {"time": time_chunks, dims[0]: -1, dims[1]: -1})
    physical = physical.assign_coords(split=physical.split.compute())  # a small label array, not a dask one
    is_train = physical.split.values == "train"
    accumulators = {}
    for v in variables:
        # statistics accumulate as the chunks go to the store: the source is read once
        accumulators[v] = CellSums(physical[v].data.chunks[0], is_train, meta[v]["transform"],
                                   meta[v]["lower_bound"], physical.split.values == "validation")
        physical[v] = physical[v].copy(data=physical[v].data.map_blocks(
            accumulators[v], dtype=np.float32, meta=np.array((), dtype=np.float32)))
        physical[v].attrs = {k: a for k, a in ds[v].attrs.items() if k != "grid_mapping_attrs"}
        if provenance["grid_mapping"]:  # CF: the variable names its grid mapping variable
            physical[v].attrs["grid_mapping"] = "crs"
        physical[v].encoding = {"chunks": (chunk, ny, nx)}
    physical.attrs = {"created_by": "htweather.data.ingest", "provenance": json.dumps(provenance, default=str)}

    with artifacts.written(store) as tmp:  # the statistics are renamed into place first, then the store
        log.info("reading the source once: writing the fields and per-cell statistics")
        with ProgressBar(dt=1.0), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)  # masked cells
            try:
                physical.to_zarr(tmp, mode="w", consolidated=False, zarr_format=2)
            except Exception as exc:  # backend read errors surface here, inside dask
                if artifacts.no_space(exc, store):
                    raise  # `artifacts.written` says it in one line, after removing what was written
                message = str(exc).splitlines()[0] if str(exc) else ""
                raise IngestError(f"{where}: reading the data failed ({type(exc).__name__}: {message})") from None
        sums = {v: accumulators[v].result() for v in variables}
        mask = _mask(sums, variables, ds.sizes["time"], physical, where)
        stats = _statistics(sums, mask, meta, physical, where)
        stats["provenance"] = provenance
        normalisation = {v: {k: stats["variables"][v][k] for k in ("transform", "mean", "std")} for v in variables}
        grid_mapping = {"crs": xr.DataArray(np.int32(0), attrs={k: (json.dumps(a) if isinstance(a, (dict, list)) else a)
                                                                for k, a in provenance["grid_mapping"].items()
                                                                if k != "name"})} if provenance["grid_mapping"] else {}
        extra = xr.Dataset(
            {"mask": xr.DataArray(mask.astype(np.uint8), dims=dims,
                                  attrs={"description": "1 where the cell has data (real), 0 where masked"}),
             **grid_mapping},
            attrs={**physical.attrs, "channels": json.dumps(variables), "normalisation": json.dumps(normalisation)})
        extra.to_zarr(tmp, mode="a", consolidated=True, zarr_format=2)  # append rewrites the group's attrs
        with artifacts.written(stats_path) as stats_tmp:
            stats_tmp.write_text(json.dumps(stats, indent=2))
    return stats


SUMS = ("missing", "infinite", "bad_transform", "n", "s1", "s2", "p1", "p2", "min", "max", "wet_min",
        "validation_n", "validation_dry")
ADDITIVE = [i for i, name in enumerate(SUMS) if name not in ("min", "max", "wet_min")]


def _block_sums(block: np.ndarray, train: np.ndarray, transform: str,
                lower_bound: float | None = None, validation: np.ndarray | None = None) -> np.ndarray:
    """Per-cell reductions over the time steps of one chunk, in one sweep (float64): missing
    and infinite counts over all times; over train times, count, sum and sum of squares of
    the transformed (s) and physical (p) values; min and max; and, for a variable with a
    lower bound, the smallest train value above it (its trace amount; NaN where none) and,
    over `validation` times, the count of values and of exactly dry ones (at or below the
    bound: the dry fraction that generation's dry threshold is calibrated to).
    Shape (len(SUMS), ny, nx)."""
    x = block.astype(np.float64)
    out = np.empty((len(SUMS),) + x.shape[1:])
    out[0] = np.isnan(x).sum(0)
    out[1] = np.isinf(x).sum(0)
    xt = x[train.ravel()]
    tr = transforms.forward(transform, xt) if transform != "identity" else xt
    ok = np.isfinite(tr)
    clean = bool(ok.all())
    out[2] = 0 if clean else (~ok & ~np.isnan(xt)).sum(0)
    out[3] = ok.sum(0)
    tr = tr if clean else np.where(ok, tr, 0.0)
    out[4] = tr.sum(0)
    out[5] = np.einsum("tij,tij->ij", tr, tr)
    if transform == "identity":
        out[6:8] = out[4:6]
    else:
        xt = xt if clean else np.where(ok, xt, 0.0)
        out[6] = xt.sum(0)
        out[7] = np.einsum("tij,tij->ij", xt, xt)
    out[8] = np.nanmin(x, axis=0)
    out[9] = np.nanmax(x, axis=0)
    out[10] = np.nan
    if lower_bound is not None:
        xt = x[train.ravel()]
        out[10] = np.nanmin(np.where(xt > lower_bound, xt, np.inf), axis=0, initial=np.inf)
        out[10][np.isinf(out[10])] = np.nan
    out[11:13] = 0
    if lower_bound is not None and validation is not None and validation.any():
        xv = x[validation.ravel()]
        out[11] = np.isfinite(xv).sum(0)
        out[12] = (xv <= lower_bound).sum(0)
    return out


class CellSums:
    """Per-cell statistics of one field, accumulated from its chunks as they are written.

    Called by dask on every chunk of the field (map_blocks) just before the chunk goes to the
    store, it returns the chunk unchanged and keeps the chunk's `_block_sums`. A separate dask
    reduction would read the source a second time: dask's store optimises the written graph on
    its own and shares no reads with other computations (measured). Partial sums are combined
    along a fixed binary tree over the chunk index (a chunk meets its sibling as soon as both
    are done), so the result is bit-identical whatever order the threads finish in, and only
    O(log n) partial sums wait in memory even when dask does the first chunk last."""

    def __init__(self, time_chunks: tuple[int, ...], is_train: np.ndarray, transform: str,
                 lower_bound: float | None = None, is_validation: np.ndarray | None = None):
        self.starts = np.cumsum((0,) + tuple(time_chunks))
        self.count = len(time_chunks)
        self.is_train = is_train
        self.is_validation = is_validation
        self.transform = transform
        self.lower_bound = lower_bound
        self.lock = threading.Lock()
        self.nodes: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, block: np.ndarray, block_info=None) -> np.ndarray:
        i = block_info[0]["chunk-location"][0]
        rows = slice(self.starts[i], self.starts[i + 1])
        validation = None if self.is_validation is None else self.is_validation[rows]
        part = _block_sums(block, self.is_train[rows], self.transform, self.lower_bound, validation)
        with self.lock:
            self._insert(0, i, part)
        return block

    def _width(self, level: int) -> int:
        return -(-self.count // 2**level)  # nodes at this level of the tree

    def _insert(self, level: int, index: int, part: np.ndarray) -> None:
        while self._width(level) > 1:
            sibling = index ^ 1
            if sibling < self._width(level):
                other = self.nodes.pop((level, sibling), None)
                if other is None:
                    self.nodes[(level, index)] = part
                    return
                first, second = (part, other) if index < sibling else (other, part)
                first[ADDITIVE] += second[ADDITIVE]
                np.fmin(first[8], second[8], out=first[8])
                np.fmax(first[9], second[9], out=first[9])
                np.fmin(first[10], second[10], out=first[10])
                part = first
            level, index = level + 1, index // 2
        self.nodes[(level, 0)] = part

    def result(self) -> dict[str, np.ndarray]:
        top = max((key for key in self.nodes), default=None)
        if top is None or self._width(top[0]) != 1 or len(self.nodes) != 1:
            raise RuntimeError(f"statistics of {self.count} chunks are incomplete")
        total = self.nodes[top]
        return {name: total[i] for i, name in enumerate(SUMS)}


def _first_cell(where_true: np.ndarray, physical: xr.Dataset) -> str:
    i, j = np.argwhere(where_true)[0]
    if physical.latitude.ndim == 2:
        return (f"y {i}, x {j}: lat {float(physical.latitude[i, j]):.4g}, "
                f"lon {float(physical.longitude[i, j]):.4g}")
    return f"lat {float(physical.latitude[i]):g}, lon {float(physical.longitude[j]):g}"


def _mask(sums: dict, variables: list[str], n_times: int, physical: xr.Dataset, where: str) -> np.ndarray:
    """Real cells: those with data at some time in every variable. A cell missing at every time
    (sea in a land-only product, no radar coverage) is masked for good; a value missing at some
    times only (a radar outage) stays missing in the store and is left out, at those times, of
    the statistics, the loss and the metrics."""
    mask = np.ones(tuple(physical.sizes[d] for d in grid_dims(physical)), dtype=bool)
    for v in variables:
        missing, infinite = sums[v]["missing"], sums[v]["infinite"]
        if infinite.any():
            raise IngestError(f"{where}: variable '{v}' has {int(infinite.sum())} infinite values "
                              f"(first at {_first_cell(infinite > 0, physical)})")
        if (missing == n_times).all():
            raise IngestError(f"{where}: variable '{v}' is missing (NaN) everywhere in the selected region and times")
        mask &= missing < n_times
    if not mask.any():
        raise IngestError(f"{where}: no grid cell has data in all of {', '.join(variables)}")
    if not mask.all():
        log.info("mask: %d of %d grid cells have data", int(mask.sum()), mask.size)
    for v in variables:
        partial = mask & (sums[v]["missing"] > 0)
        if partial.any():
            log.info("variable '%s': %d of the real cells are missing at some times only (%d cell-times, first "
                     "at %s); masked at those times", v, int(partial.sum()), int(sums[v]["missing"][mask].sum()),
                     _first_cell(partial, physical))
    return mask


def _statistics(sums: dict, mask: np.ndarray, meta: dict, physical: xr.Dataset, where: str) -> dict:
    """Mean and std of each transformed variable over the train split and the real cells."""
    variables = list(meta)
    result = {"channels": variables, "variables": {}, "splits": {}}
    for v in variables:
        s = {k: np.asarray(a, dtype=np.float64)[mask] for k, a in sums[v].items()}
        if s["bad_transform"].any():
            raise IngestError(f"{where}: variable '{v}' gives non-finite values after its "
                              f"'{meta[v]['transform']}' transform")
        n = s["n"].sum()
        if n == 0:  # data at validation or test times only: no statistics (they came out NaN before)
            raise IngestError(f"{where}: variable '{v}' (data.variables.{v}) is missing (NaN) everywhere in the "
                              f"train split (data.splits)")
        mean = s["s1"].sum() / n
        std = float(np.sqrt(max(s["s2"].sum() / n - mean**2, 0.0)))
        physical_mean = s["p1"].sum() / n
        physical_std = float(np.sqrt(max(s["p2"].sum() / n - physical_mean**2, 0.0)))
        if std == 0 or std < 1e-7 * max(abs(mean), 1.0):  # one-pass variance: noise ~ sqrt(eps) |mean|
            raise IngestError(f"{where}: variable '{v}' is constant over the train split")
        vmin, vmax = float(s["min"].min()), float(s["max"].max())
        tails = meta[v]["tails"]
        if tails == "auto":
            tails = auto_tails(vmin, physical_mean, physical_std, meta[v]["units"])
            log.info("variable '%s': tails %s (data.variables.%s.tails: auto; %s)", v, tails, v, TAILS_REASON[tails])
        smallest_wet = smallest_wet_value(meta[v], s["wet_min"], v)
        result["variables"][v] = {**meta[v], "tails": tails, "mean": float(mean), "std": std,
                                  "min": vmin, "max": vmax, "smallest_wet": smallest_wet,
                                  "trace": _resolve_auto(meta[v]["trace"], smallest_wet, meta[v]),
                                  "dry_below": _resolve_auto(meta[v]["dry_below"], smallest_wet, meta[v]),
                                  "dry_below_rule": "calibrated" if meta[v]["dry_below"] == "auto" else "fixed",
                                  "validation_dry_fraction": _dry_fraction(s, meta[v])}
    split = physical.split.values
    per_time = physical.sizes["member"] if "member" in physical.dims else (
        int(len(np.unique(physical.member.values))) if "member" in physical.coords else 1)
    result["fields_per_time"] = per_time  # data.members: samples: the members of each time
    for name in SPLITS:
        times = physical.time.values[split == name]
        result["splits"][name] = {"start": str(times[0]), "end": str(times[-1]), "n_times": int(len(times)) // per_time,
                                  "n_fields": int(len(times))}
    provenance = json.loads(physical.attrs["provenance"])
    result["grid"] = {"dims": list(grid_dims(physical)), "grid_mapping": provenance["grid_mapping"],
                      **({"y": physical.y.values.tolist(), "x": physical.x.values.tolist()}
                         if grid_dims(physical) != REGULAR else {}),
                      "latitude": physical.latitude.values.tolist(), "longitude": physical.longitude.values.tolist(),
                      "valid_cells": int(mask.sum()),
                      "missing_at_some_times": {v: int(np.asarray(sums[v]["missing"])[mask].sum()) for v in variables},
                      "mask": None if mask.all() else mask.astype(int).tolist()}
    return result


def smallest_wet_value(meta: dict, wet_min: np.ndarray, name: str) -> float | None:
    """A bounded variable's smallest train value above its lower bound: the data's own
    resolution (the storm generator's drizzle cut, a gauge's 0.1 mm), below which the data hold
    nothing. None for a variable without a lower bound, or never above it."""
    if meta["lower_bound"] is None:
        return None
    finite = wet_min[np.isfinite(wet_min)]
    if not finite.size:
        log.warning("variable '%s' is never above its lower bound in the train split: no smallest wet value", name)
        return None
    return float(finite.min())


def _resolve_auto(setting, smallest_wet: float | None, meta: dict) -> float | None:
    """`trace` / `dry_below`: auto (and `dry_below`'s smallest_wet) is the smallest wet value, a
    number itself, null none; none without a lower bound."""
    if meta["lower_bound"] is None or setting is None:
        return None
    return smallest_wet if setting in ("auto", "smallest_wet") else float(setting)


def _dry_fraction(sums: dict, meta: dict) -> float | None:
    """The validation split's exactly-dry fraction (at or below the lower bound), from the real
    cells' `sums`; None without a lower bound or a validation value."""
    n = sums["validation_n"].sum()
    if meta["lower_bound"] is None or n == 0:
        return None
    return float(sums["validation_dry"].sum() / n)


# Why `auto_tails` chose what it did, for the ingest log
TAILS_REASON = {"lower": "pressure velocity, whose ascent is negative",
                "upper": "bounded below at zero within 3 standard deviations of its mean",
                "both": "neither bounded below near its mean nor a pressure velocity"}
# the units of pressure velocity (omega: ERA5's w, CMIP's wap), after transforms.canonical_units
PRESSURE_VELOCITY_UNITS = {"Pa s-1", "Pa s^-1", "Pa/s", "hPa s-1", "hPa/s", "Pa h-1", "hPa h-1", "hPa d-1", "Pa d-1"}


def auto_tails(minimum: float, mean: float, std: float, units: str | None = None) -> str:
    """Which tail the tail metrics examine (data.variables.NAME.tails: auto), from the physics:
    "lower" for pressure velocity (units of pressure per time: ERA5's `w`, CMIP's `wap`), whose
    updrafts are negative; "upper" for variables bounded below at zero within a few standard
    deviations of their mean (precipitation, wind speed); "both" otherwise (temperature in K or
    degC, pressure, wind components)."""
    if units is not None and transforms.canonical_units(units) in {transforms.canonical_units(u)
                                                                  for u in PRESSURE_VELOCITY_UNITS}:
        return "lower"
    return "upper" if minimum >= 0 and mean < 3 * std else "both"
