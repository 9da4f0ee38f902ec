"""Opening reanalysis in the forms it comes in, lazily, into one layout.

Sources: NetCDF as the CDS writes it (old layout: ``time``, ``level``, maybe an ``expver``
dimension; new layout: ``valid_time``, ``pressure_level``, ``number`` and ``expver`` as
coordinates), GRIB through cfgrib, CF-style products (``lat``/``lon``), and zarr stores,
local or remote (``gs://...`` with ``storage_options={"token": "anon"}`` for the public
ARCO-ERA5 and WeatherBench2 stores). Every source comes out with dimensions ``time``,
optionally ``level`` (hPa), and its two grid dimensions: ``latitude``, ``longitude`` on a
regular lat/lon grid (with only those as coordinates), or ``y``, ``x`` on a projected or
curvilinear grid (HRRR and WRF on Lambert conformal, radar composites, CORDEX on rotated poles
with ``rlat``, ``rlon``), whose 2-D ``latitude(y, x)`` and ``longitude(y, x)`` are kept as
coordinates and whose CF ``grid_mapping`` is kept in each variable's attributes
(``grid_mapping_attrs``, JSON). Nothing is loaded: the arrays are dask arrays, read chunk by
chunk when the store is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from zarr.storage import FsspecStore, WrapperStore

from ..config import is_zarr
from ..errors import IngestError
from . import catalog

log = logging.getLogger(__name__)

GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")

# Names products use for the canonical dimensions (checked in order).
_DIM_NAMES = {
    "time": ("time", "valid_time"),
    "level": ("level", "pressure_level", "isobaricInhPa", "plev", "lev"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon"),
    "y": ("y", "rlat", "south_north", "yc"),
    "x": ("x", "rlon", "west_east", "xc"),
}
REGULAR = ("latitude", "longitude")
PROJECTED = ("y", "x")


def grid_dims(ds) -> tuple[str, str]:
    """The two grid dimensions of a canonical-layout dataset or array."""
    return PROJECTED if "y" in ds.dims and "x" in ds.dims else REGULAR


# float64 bytes per dask task along time: large enough to keep task overhead small, small
# enough that a few tasks per core fit in memory whatever the input size
TASK_BYTES = 64e6


def open_zarr(source: str, storage_options: dict | None = None, members=None) -> xr.Dataset:
    """A zarr store (local or remote) opened lazily with its own chunks; metadata only."""
    try:
        with _quiet("gcsfs", "fsspec", "google", "aiohttp"):  # retries log tracebacks; our error says it
            ds = _open_zarr_quietly(source, storage_options)
    except ImportError as exc:
        raise IngestError(f"{source}: opening it needs the package '{exc.name}' "
                          f"(pip install gcsfs for gs:// stores)") from None
    except Exception as exc:  # fsspec/zarr raise many types: missing store, auth, bad metadata
        raise IngestError(f"{source}: cannot be opened as zarr ({type(exc).__name__}: {exc})") from None
    return normalise_layout(ds, source, members)


@contextlib.contextmanager
def _quiet(*loggers: str):
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _open_zarr_quietly(source: str, storage_options: dict | None) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*consolidated metadata.*", category=RuntimeWarning)
        # chunks=None: lazily indexed arrays, no dask graph over the whole store (ARCO has one
        # chunk per hour since 1940); dask chunks come after the time range is selected
        if "://" in source:  # remote: every read retried (`RetryingStore`)
            return xr.open_zarr(RetryingStore.from_url(source, storage_options), chunks=None, decode_timedelta=False)
        return xr.open_zarr(source, storage_options=storage_options or None, chunks=None, decode_timedelta=False)


class RemoteReadError(OSError):
    """A remote store's read that failed every attempt; its message says how many and why."""


READ_ATTEMPTS = 4
READ_BACKOFF_S = 1.0


class RetryingStore(WrapperStore):
    """An fsspec zarr store whose every read is tried READ_ATTEMPTS times, waiting
    READ_BACKOFF_S, then twice as long, between attempts. Cloud and HTTP stores drop
    connections now and then; one dropped chunk would otherwise fail a whole ingestion."""

    @classmethod
    def from_url(cls, url: str, storage_options: dict | None = None) -> "RetryingStore":
        return cls(FsspecStore.from_url(url, storage_options=storage_options or None, read_only=True))

    async def get(self, key, prototype, byte_range=None):
        wait = READ_BACKOFF_S
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return await self._store.get(key, prototype, byte_range)
            except (OSError, asyncio.TimeoutError) as exc:
                failure = exc
            except Exception as exc:  # aiohttp's and the cloud clients' own error types
                if not type(exc).__module__.startswith(("aiohttp", "fsspec", "gcsfs", "s3fs", "botocore")):
                    raise
                failure = exc
            if attempt < READ_ATTEMPTS:
                log.debug("reading %s failed (%s), retrying in %.1f s", key, type(failure).__name__, wait)
                await asyncio.sleep(wait)
                wait *= 2
        raise RemoteReadError(f"'{key}' could not be read in {READ_ATTEMPTS} attempts "
                              f"({type(failure).__name__}: {failure})")


def open_file(path: str, time_multiple: int = 8, time_chunk_bytes: float = TASK_BYTES, members=None,
              grib_filter: dict | None = None) -> xr.Dataset:
    """One NetCDF or GRIB file, lazily, chunked along time into pieces of about
    `time_chunk_bytes` (float64), so that no task reads a whole large file at once, and of a
    multiple of `time_multiple` steps (the store's chunk), so that they need no rechunking.
    `members` and `grib_filter`: data.members and data.grib_filter."""
    grib = path.lower().endswith(GRIB_SUFFIXES)
    try:
        if grib:
            check_grib_messages(path)
            ds = _cfgrib(path, grib_filter)
        else:
            ds = xr.open_dataset(path, engine="netcdf4", chunks=None, cache=False, decode_timedelta=True)
    except IngestError:
        raise
    except Exception as exc:  # backends raise OSError, ValueError, RuntimeError, KeyError...
        if grib and "filter_by_keys" in str(exc):
            raise IngestError(_mixed_grib_message(path, str(exc), grib_filter)) from None
        raise IngestError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    return time_chunked(normalise_layout(ds, path, members), time_multiple, time_chunk_bytes)


def _cfgrib(path: str, grib_filter: dict | None = None) -> xr.Dataset:
    # indexpath "": no .idx file next to the input (input folders may be read-only)
    kwargs = {"indexpath": "", **({"filter_by_keys": dict(grib_filter)} if grib_filter else {})}
    # cfgrib logs a traceback for each variable it skips (messages of another kind than the rest);
    # a variable the config asks for and cfgrib skipped is then named as not found, with what the file has
    with _quiet("cfgrib.dataset"):
        return xr.open_dataset(path, engine="cfgrib", chunks=None, cache=False, backend_kwargs=kwargs,
                               decode_timedelta=True)


def _mixed_grib_message(path: str, cfgrib_error: str, grib_filter: dict | None) -> str:
    """cfgrib's several-line hint for a file of messages of several kinds, as one line naming
    data.grib_filter and the filters cfgrib offers."""
    import re

    choices = [c.replace("'", "") for c in dict.fromkeys(re.findall(r"filter_by_keys=(\{[^}]*\})", cfgrib_error))]
    now = f" (with data.grib_filter {grib_filter})" if grib_filter else ""
    offered = f", e.g. {' or '.join(choices)}" if choices else ""
    return (f"{path}: holds GRIB messages of several kinds that cfgrib cannot put in one dataset{now}: choose one "
            f"with data.grib_filter{offered}")


def check_grib_messages(path: str) -> int:
    """Walk a GRIB file's messages by their section-0 lengths (seeks, no decoding): every
    message must fit in the file and end with '7777'. A file cut short (a partial download or
    copy) is otherwise read by cfgrib as its whole messages only, silently shorter. Returns the
    number of messages."""
    import os

    size = os.path.getsize(path)
    offset = count = 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            head = f.read(16)
            if head[:4] != b"GRIB":
                f.seek(offset)
                window = f.read(1 << 16)
                i = window.find(b"GRIB")
                if i < 0:  # padding (zeros) at the end is allowed; other bytes are not GRIB
                    if window.strip(b"\0") or offset + len(window) < size:
                        raise IngestError(f"{path}: not a GRIB file past byte {offset} (after {count} message(s)); "
                                          f"copy or download it again")
                    break
                offset += i
                continue
            edition = head[7] if len(head) >= 8 else 0
            if edition == 1 and len(head) >= 8:
                length = int.from_bytes(head[4:7], "big")
                if length & 0x800000:  # GRIB1's large-message length coding: leave it to eccodes
                    return count
            elif edition == 2 and len(head) == 16:
                length = int.from_bytes(head[8:16], "big")
            else:
                raise IngestError(f"{path}: truncated: GRIB message {count + 1} at byte {offset} is cut off in its "
                                  f"header; copy or download the file again")
            if offset + length > size:
                raise IngestError(f"{path}: truncated: GRIB message {count + 1} at byte {offset} needs {length} bytes "
                                  f"and the file ends after {size - offset}; copy or download the file again")
            f.seek(offset + length - 4)
            if f.read(4) != b"7777":
                raise IngestError(f"{path}: corrupt: GRIB message {count + 1} at byte {offset} does not end where its "
                                  f"length says; copy or download the file again")
            offset += length
            count += 1
    if count == 0:
        raise IngestError(f"{path}: holds no GRIB message")
    return count


def time_chunked(ds: xr.Dataset, time_multiple: int = 8, time_chunk_bytes: float = TASK_BYTES) -> xr.Dataset:
    """Dask chunks along time of about `time_chunk_bytes` (float64 fields of the whole grid,
    every level and member) and a multiple of `time_multiple` steps."""
    cells = int(np.prod([ds.sizes[d] for d in (*grid_dims(ds), "level", "member") if d in ds.dims]))
    steps = max(1, int(time_chunk_bytes // (8 * cells)))
    return ds.chunk({"time": max(time_multiple, steps - steps % time_multiple)})


def _rename_dims(ds: xr.Dataset, where: str) -> xr.Dataset:
    for name in _DIM_NAMES["level"]:  # one pressure level (cfgrib, a CDS request for one level): a scalar
        if name in ds.coords and name not in ds.dims and ds[name].ndim == 0 and not any(
                n in ds.dims for n in _DIM_NAMES["level"]):
            ds = ds.expand_dims(name)  # `variable` picks the level and orders the dimensions
            break
    for canonical, names in _DIM_NAMES.items():
        present = [n for n in names if n in ds.dims]
        if canonical in ds.dims or not present:
            continue
        name = present[0]
        if canonical in ds.variables:  # e.g. cfgrib's scalar `time` beside a `valid_time` dimension
            ds = ds.drop_vars(canonical)
        ds = ds.rename({name: canonical})
    return ds


def _stack_steps(ds: xr.Dataset) -> xr.Dataset:
    """cfgrib puts accumulations on (time, step) with a 2-D valid_time; make one time axis of
    the valid times that have data."""
    if "step" not in ds.dims:
        return ds
    if ds.sizes["step"] == 1:
        valid = ds["valid_time"].values.reshape(-1) if "valid_time" in ds.variables else None
        ds = ds.isel(step=0)
        if valid is not None and "time" in ds.dims:
            ds = ds.assign_coords(time=("time", valid))
        return ds
    stacked = ds.stack(_valid=("time", "step"))
    valid = stacked["valid_time"].values
    stacked = stacked.drop_vars(["_valid", "time", "step", "valid_time"], errors="ignore")
    stacked = stacked.assign_coords(_valid=valid).rename({"_valid": "time"})
    keep = ~pd.isna(valid)
    return stacked.isel(time=np.flatnonzero(keep))


def _one_field_per_file(ds: xr.Dataset) -> xr.Dataset:
    """A file holding one time (a radar frame, a GRIB2 message per file, as MRMS and HRRR are
    delivered) has its valid time as a scalar: make it a time dimension of length one."""
    if any(name in ds.dims for name in _DIM_NAMES["time"]):
        return ds
    for name in ("valid_time", "time"):
        if name in ds.coords and ds[name].ndim == 0 and np.issubdtype(ds[name].dtype, np.datetime64):
            stamp = ds[name].values
            ds = ds.drop_vars([n for n in ("time", "valid_time", "step") if n in ds.coords])
            # through dask: expand_dims on a lazily indexed backend array would read the field now
            return ds.chunk().expand_dims(time=[stamp])
    return ds


def _merge_expver(ds: xr.Dataset, where: str) -> xr.Dataset:
    """Old CDS files hold ERA5 (expver 1) and ERA5T (expver 5) as two halves of one series,
    each NaN where the other has data: take, at every point, the first non-missing value in
    expver order (final ERA5 before the preliminary ERA5T)."""
    if "expver" not in ds.dims:
        return ds.drop_vars("expver", errors="ignore")  # new CDS: a label per time step
    order = np.argsort([str(v) for v in ds.expver.values])
    parts = [ds.isel(expver=int(i)).drop_vars("expver") for i in order]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.fillna(part)
    label = ",".join(str(ds.expver.values[i]) for i in order)
    for name in merged.data_vars:
        if "expver" in ds[name].dims:
            merged[name].attrs = dict(ds[name].attrs, expver_merged=label)
    log.info("%s: merged the expver dimension (%s)", where, label)
    return merged


def normalise_layout(ds: xr.Dataset, where: str, members=None) -> xr.Dataset:
    """Canonical dimension names, one time axis, expver merged, ensemble members as data.members
    says (`select_members`), only dimension coordinates kept, level in hPa."""
    ds = _stack_steps(ds)
    ds = _one_field_per_file(ds)
    ds = _rename_dims(ds, where)
    ds = _merge_expver(ds, where)
    ds = select_members(ds, where, members)
    projected = "y" in ds.dims and "x" in ds.dims and not ("latitude" in ds.dims and "longitude" in ds.dims)
    for dim in ("time",) + (PROJECTED if projected else REGULAR):
        if dim not in ds.dims:
            raise IngestError(f"{where}: no '{dim}' dimension (dims: {', '.join(map(str, ds.dims))}); a projected "
                              f"or curvilinear grid needs dims y, x (or rlat, rlon) with 2-D latitude/longitude")
    if projected:
        ds = _curvilinear_coordinates(ds, where)
    keep = set(ds.dims) | ({"latitude", "longitude"} if projected else set())
    ds = ds.drop_vars([c for c in ds.coords if c not in keep])
    if "level" in ds.dims and str(ds.level.attrs.get("units", "")).lower() == "pa":
        ds = ds.assign_coords(level=ds.level / 100.0)  # CF `plev` is in Pa
    return ds


def select_members(ds: xr.Dataset, where: str, members=None) -> xr.Dataset:
    """Ensemble members (`number`, as the CDS delivers ERA5's ensemble, or `member`): `members` an integer
    keeps that member; "samples" keeps them all as the dimension `member` (stacked later into
    fields of the same time); None accepts one member only."""
    if "member" in ds.dims and "number" not in ds.variables:  # a product's own name for the members
        ds = ds.rename({"member": "number"})
    numbers = np.atleast_1d(ds["number"].values) if "number" in ds.variables else None
    if isinstance(members, bool) or (members is not None and members != "samples" and not isinstance(members, int)):
        raise IngestError(f"data.members: {members!r} is neither a member's number nor 'samples'")
    if isinstance(members, int) and numbers is not None:
        found = np.flatnonzero(numbers == members)
        if found.size == 0:
            raise IngestError(f"data.members: {members} is not a member of {where} (its members: "
                              f"{', '.join(str(int(n)) for n in numbers)})")
        return ds.isel(number=int(found[0])) if "number" in ds.dims else ds
    if "number" not in ds.dims:
        return ds
    if members == "samples":
        return ds.rename({"number": "member"})
    if ds.sizes["number"] != 1:
        raise IngestError(f"{where}: has {ds.sizes['number']} ensemble members (numbers "
                          f"{', '.join(str(int(n)) for n in numbers)}): set data.members to one member's number "
                          f"(e.g. {int(numbers[0])}), or to samples to take every member as a field of its time")
    return ds.isel(number=0)


def _curvilinear_coordinates(ds: xr.Dataset, where: str) -> xr.Dataset:
    """A projected grid's 2-D latitude/longitude (named latitude/lat, longitude/lon) as the
    coordinates latitude(y, x), longitude(y, x), and the CF grid mapping of its variables in
    their attributes."""
    names = {}
    for canonical, options in (("latitude", ("latitude", "lat", "XLAT", "nav_lat")),
                               ("longitude", ("longitude", "lon", "XLONG", "nav_lon"))):
        found = next((n for n in options if n in ds.variables and set(ds[n].dims) == {"y", "x"}), None)
        if found is None:
            raise IngestError(f"{where}: a grid on dims y, x needs 2-D {canonical} coordinates (looked for "
                              f"{', '.join(options)}; found {', '.join(map(str, ds.coords))})")
        names[canonical] = found
    lat, lon = (ds[names[c]].transpose("y", "x").variable for c in ("latitude", "longitude"))
    ds = ds.drop_vars([n for n in set(names.values()) if n in ds.variables])
    ds = ds.assign_coords(latitude=(("y", "x"), lat.values.astype(np.float64), {"units": "degrees_north"}),
                          longitude=(("y", "x"), lon.values.astype(np.float64), {"units": "degrees_east"}))
    if "y" not in ds.coords:  # index coordinates where the file has none
        ds = ds.assign_coords(y=np.arange(ds.sizes["y"]), x=np.arange(ds.sizes["x"]))
    for name in list(ds.data_vars):
        mapping = ds[name].attrs.get("grid_mapping")
        if mapping and mapping in ds.variables:
            attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in ds[mapping].attrs.items()}
            ds[name].attrs["grid_mapping_attrs"] = json.dumps({"name": mapping, **attrs}, default=str)
        elif "GRIB_gridType" in ds[name].attrs:  # cfgrib: the GRIB grid definition (HRRR: lambert)
            keys = ("gridType", "LaDInDegrees", "LoVInDegrees", "Latin1InDegrees", "Latin2InDegrees",
                    "DxInMetres", "DyInMetres", "latitudeOfFirstGridPointInDegrees",
                    "longitudeOfFirstGridPointInDegrees", "Nx", "Ny")
            attrs = {k: ds[name].attrs[f"GRIB_{k}"] for k in keys if f"GRIB_{k}" in ds[name].attrs}
            ds[name].attrs["grid_mapping_attrs"] = json.dumps({"name": "grib", **attrs}, default=str)
    mappings = {ds[n].attrs.get("grid_mapping") for n in ds.data_vars} - {None}
    return ds.drop_vars([m for m in mappings if m in ds.variables])


def variable(ds: xr.Dataset, name: str, where: str, source_name: str | None = None) -> xr.DataArray:
    """Config variable `name` (e.g. ``t2m``, ``t@850``) from a canonical-layout dataset,
    as (time, latitude, longitude), with the source's attributes."""
    found = catalog.resolve(name, ds.data_vars, source_name)
    if found is None:
        tried = ", ".join(catalog.candidates(name, source_name))
        raise IngestError(f"{where}: variable '{name}' not found (looked for {tried}; "
                          f"source has: {', '.join(map(str, ds.data_vars))})")
    da = ds[found]
    _, level = catalog.parse_name(name)
    if level is not None:
        if "level" not in da.dims:
            raise IngestError(f"{where}: variable '{name}' asks for level {level:g} but '{found}' has no "
                              f"pressure levels (dims: {', '.join(map(str, da.dims))})")
        levels = np.asarray(da.level.values, dtype=float)
        match = np.flatnonzero(np.isclose(levels, level))
        if match.size == 0:
            raise IngestError(f"{where}: variable '{name}': level {level:g} hPa not in the source "
                              f"(levels: {', '.join(f'{v:g}' for v in levels)})")
        da = da.isel(level=int(match[0]), drop=True)
    elif "level" in da.dims:
        if da.sizes["level"] != 1:
            raise IngestError(f"{where}: variable '{name}' ('{found}') has {da.sizes['level']} pressure levels; "
                              f"name one, e.g. '{name}@850'")
        da = da.isel(level=0, drop=True)
    grid = grid_dims(da)
    members = ("member",) if "member" in da.dims else ()  # data.members: samples
    extra = [d for d in da.dims if d not in ("time", *members, *grid)]
    if extra:
        raise IngestError(f"{where}: variable '{name}' ('{found}') has unexpected dimension(s) "
                          f"{', '.join(map(str, extra))}")
    da = da.transpose("time", *members, *grid)  # WeatherBench2 stores may be (time, lon, lat)
    da.attrs = dict(da.attrs, source_name=found)
    return da.rename(name)


def open_files(files: list[str], variables: dict[str, dict], time_multiple: int = 8, members=None,
               grib_filter: dict | None = None) -> xr.Dataset:
    """NetCDF/GRIB files -> one dataset of the config's variables (named as in the config).

    Variables may be spread over files (one file per variable, as the CDS often delivers) and
    time over many files; every variable must be in some file, every file must hold one of
    them and be on the same grid, and files holding the same variables must not overlap in
    time. Errors name the file and variable at fault. Only metadata and coordinates are read."""
    if not files:
        raise IngestError("no input files")
    by_name: dict[str, list[tuple[str, xr.DataArray]]] = {}
    held: dict[str, list[str]] = {}  # each file's data variables, for the errors
    idle = []  # files holding none of the variables
    grid = None
    for path in files:
        ds = open_file(path, time_multiple, members=members, grib_filter=grib_filter)
        check_coordinates(ds, path)
        if grid_dims(ds) == REGULAR:
            # one orientation for all files (products differ: ERA5 north to south, CF south to north)
            ds = ds.isel(latitude=np.argsort(-ds.latitude.values, kind="stable"),
                         longitude=np.argsort(ds.longitude.values, kind="stable"))
        if grid is None:
            grid = (path, ds)
        else:
            _check_same_grid(path, ds, *grid)
            # equal within 1e-6 deg: take the first file's values (float32 vs float64 coordinates)
            ds = ds.assign_coords({c: grid[1][c] for c in _grid_coordinates(ds)})
        held[path] = list(map(str, ds.data_vars))
        present = [n for n, o in variables.items() if _holds(ds, n, o.get("source_name"))]
        if present:
            check_time(pd.DatetimeIndex(ds.time.values), path)
        else:
            idle.append(path)
        for name in present:
            by_name.setdefault(name, []).append((path, variable(ds, name, path, variables[name].get("source_name"))))
    # a variable that no file holds before a file that holds none: the likelier mistake first
    missing = [n for n in variables if n not in by_name]
    if missing:
        name, source_name = missing[0], variables[missing[0]].get("source_name")
        if len(files) == 1:
            variable(open_file(files[0], members=members, grib_filter=grib_filter), name, files[0], source_name)
        holds = sorted({v for names in held.values() for v in names})
        raise IngestError(f"data.variables.{name}: no input file holds it (looked for "
                          f"{', '.join(catalog.candidates(name, source_name))} in {files[0]} and the "
                          f"{len(files) - 1} other file(s), which hold: {', '.join(holds)})")
    if idle:
        raise IngestError(f"{idle[0]}: none of the variables {', '.join(variables)} "
                          f"(file has: {', '.join(held[idle[0]])})")
    arrays = {}
    for name, parts in by_name.items():
        parts.sort(key=lambda p: p[1].time.values[0])
        for (path_a, a), (path_b, b) in zip(parts, parts[1:]):
            if b.time.values[0] <= a.time.values[-1]:
                raise IngestError(f"{path_b}: variable '{name}' overlaps in time with {path_a} "
                                  f"(duplicated times from {pd.Timestamp(b.time.values[0])})")
        arrays[name] = xr.concat([p[1] for p in parts], dim="time") if len(parts) > 1 else parts[0][1]
    try:
        return xr.merge(list(arrays.values()), join="exact", combine_attrs="drop_conflicts")
    except ValueError:
        spans = {n: f"{pd.Timestamp(a.time.values[0])}..{pd.Timestamp(a.time.values[-1])} ({a.sizes['time']} steps)"
                 for n, a in arrays.items()}
        raise IngestError(f"{files[0]} and the other {len(files) - 1} file(s): the variables cover different times: "
                          + "; ".join(f"{n} {s}" for n, s in spans.items())) from None


def _holds(ds: xr.Dataset, name: str, source_name: str | None) -> bool:
    """Whether a file holds config variable `name`: its source variable, and, for `t@850`, that
    level (the CDS often delivers one file per level)."""
    found = catalog.resolve(name, ds.data_vars, source_name)
    level = catalog.parse_name(name)[1]
    if found is None or level is None or "level" not in ds[found].dims:
        return found is not None
    return bool(np.isclose(np.asarray(ds[found].level.values, dtype=float), level).any())


def _grid_coordinates(ds: xr.Dataset) -> list[str]:
    return ["latitude", "longitude"] + (["y", "x"] if grid_dims(ds) == PROJECTED else [])


def _check_same_grid(path: str, ds: xr.Dataset, first: str, reference: xr.Dataset) -> None:
    if grid_dims(ds) != grid_dims(reference):
        raise IngestError(f"{path}: grid differs from {first} (dims {', '.join(grid_dims(ds))} vs "
                          f"{', '.join(grid_dims(reference))})")
    for dim in _grid_coordinates(ds):
        values, ref = ds[dim].values.ravel(), reference[dim].values.ravel()
        if values.shape != ref.shape:
            raise IngestError(f"{path}: grid differs from {first} ({values.size} {dim} values vs {ref.size})")
        if not np.allclose(values, ref, rtol=0, atol=1e-6):
            i = int(np.flatnonzero(~np.isclose(values, ref, rtol=0, atol=1e-6))[0])
            raise IngestError(f"{path}: grid differs from {first} ({dim} {values[i]:g} vs {ref[i]:g})")


def open_source(sources: list[str], variables: dict[str, dict], storage_options: dict | None = None,
                time_multiple: int = 8, time_range: tuple | None = None, members=None,
                grib_filter: dict | None = None) -> xr.Dataset:
    """The config's variables from files or one zarr store, lazily, in the canonical layout.
    For a store, only `time_range` (first, last) is kept before any dask array is made."""
    if len(sources) == 1 and is_zarr(sources[0]):
        ds = open_zarr(sources[0], storage_options, members)
        check_coordinates(ds, sources[0])
        time = pd.DatetimeIndex(ds.time.values)
        check_time(time, sources[0])
        if time_range is not None:
            ds = ds.sel(time=slice(*time_range))
            if ds.sizes["time"] == 0:
                raise IngestError(f"data.splits: {time_range[0]} .. {time_range[1]} selects no time of "
                                  f"{sources[0]} ({time[0]} .. {time[-1]})")
        arrays = [variable(ds, name, sources[0], opts.get("source_name")) for name, opts in variables.items()]
        return time_chunked(xr.merge(arrays, combine_attrs="drop_conflicts"), time_multiple)
    return open_files(sources, variables, time_multiple=time_multiple, members=members, grib_filter=grib_filter)


def check_coordinates(ds: xr.Dataset, where: str) -> None:
    """Grid and level coordinates a grid can be built on: finite, no value repeated (a zero
    spacing: all latitudes equal, a row written twice) and strictly monotonic in one direction
    (ERA5's north to south and CF's south to north both are; longitude may pass 360 once, as
    a box across Greenwich in 0..360 does)."""
    for dim in (*grid_dims(ds), "level"):
        if dim not in ds.dims or dim not in ds.coords or ds.sizes[dim] < 2:
            continue
        values = np.asarray(ds[dim].values, dtype=float)
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            raise IngestError(f"{where}: {dim} coordinate {i} is {values[i]} (a grid needs finite coordinates)")
        steps = np.diff(values)
        if dim == "longitude":
            steps = np.mod(steps + 180.0, 360.0) - 180.0  # 355 -> 0 is a step of 5 degrees east
        if (steps == 0).any():
            i = int(np.flatnonzero(steps == 0)[0])
            where_repeated = (f"every {dim} value is the same" if (steps == 0).all()
                              else f"at {dim} indices {i} and {i + 1}")
            raise IngestError(f"{where}: {dim} {values[i]:g} is repeated ({where_repeated}): zero grid spacing; a grid "
                              f"needs distinct {dim} coordinates")
        direction = np.sign(steps[0])
        wrong = np.flatnonzero(np.sign(steps) != direction)
        if wrong.size:
            i = int(wrong[0])
            raise IngestError(f"{where}: {dim} is not monotonic ({values[i]:g} is followed by {values[i + 1]:g} at "
                              f"index {i + 1}, after {'increasing' if direction > 0 else 'decreasing'} values)")


def check_time(time: pd.DatetimeIndex, where: str) -> None:
    """Time must be strictly increasing: name the first duplicate or step backwards."""
    steps = np.diff(time.asi8)
    if (steps == 0).any():
        i = int(np.flatnonzero(steps == 0)[0])
        raise IngestError(f"{where}: duplicated time {time[i + 1]}")
    if (steps < 0).any():
        i = int(np.flatnonzero(steps < 0)[0])
        raise IngestError(f"{where}: time is not increasing ({time[i]} is followed by {time[i + 1]})")
