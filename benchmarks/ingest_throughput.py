"""Ingestion throughput and peak memory against a bare xarray baseline.

Generates ERA5-like hourly NetCDF files (30 days each, t2m and tp on a 0.25 deg European
grid, float32) of a few GB, then times, each in its own process so that peak memory (max RSS)
is its own:

- baseline: xarray.open_mfdataset(files).to_zarr(store), nothing else (files of equal length:
  with calendar months the baseline fails, since zarr needs uniform chunks);
- htweather: `htweather ingest` (checks, units, splits, physical fields, statistics, mask,
  normalised fields, atomic write).

It prints throughput (input GB/s) for both, their ratio (htweather / baseline; the aim is
>= 0.8) and peak memory, for each input size given, so that memory growth with input size
shows. Not a test: run it by hand.

  python benchmarks/ingest_throughput.py --sizes 2 4 --workdir /tmp/htweather-bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml

LAT = np.arange(72.0, 31.75, -0.25)   # 161 rows, ERA5 order
LON = np.arange(-25.0, 35.25, 0.25)   # 241 columns
BYTES_PER_STEP = 2 * 4 * LAT.size * LON.size  # two float32 variables


def generate(folder: Path, gigabytes: float, seed: int = 0) -> list[Path]:
    """Files of 30 days of hourly data from 2001-01-01 on, about `gigabytes` in all."""
    folder.mkdir(parents=True, exist_ok=True)
    steps = int(gigabytes * 1e9 / BYTES_PER_STEP)
    times = pd.date_range("2001-01-01", periods=steps, freq="h")
    rng = np.random.default_rng(seed)
    files = []
    for start in range(0, steps, 720):
        t = times[start:start + 720]
        path = folder / f"era5_{t[0]:%Y-%m-%d}.nc"
        files.append(path)
        if path.exists():
            continue
        shape = (len(t), LAT.size, LON.size)
        t2m = (280 + 5 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        tp = np.maximum(rng.standard_normal(shape, dtype=np.float32), 0).astype(np.float32) ** 3 * 1e-3
        ds = xr.Dataset({"t2m": (("valid_time", "latitude", "longitude"), t2m, {"units": "K"}),
                         "tp": (("valid_time", "latitude", "longitude"), tp, {"units": "m"})},
                        coords={"valid_time": t, "latitude": LAT, "longitude": LON})
        ds.to_netcdf(path.with_suffix(".tmp"), engine="netcdf4")
        os.replace(path.with_suffix(".tmp"), path)
    return files


def measured(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of a command run in its own process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"failed: {' '.join(command)}\n{proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux


BASELINE = "import sys, xarray as xr; xr.open_mfdataset(sys.argv[1]).to_zarr(sys.argv[2], mode='w')"


def run(workdir: Path, gigabytes: float) -> dict:
    folder = workdir / f"input_{gigabytes:g}GB"
    files = generate(folder, gigabytes)
    size = sum(f.stat().st_size for f in files) / 1e9
    times = pd.DatetimeIndex(xr.open_mfdataset(sorted(map(str, files))).valid_time.values)
    n = len(times)
    cut = [times[int(n * 0.7)], times[int(n * 0.85)]]
    config = {"data": {"source": str(folder / "era5_*.nc"),
                       "variables": {"t2m": {}, "tp": {"units": "mm", "lower_bound": 0.0}},
                       "splits": {"train": [str(times[0]), str(cut[0] - pd.Timedelta("1h"))],
                                  "validation": [str(cut[0]), str(cut[1] - pd.Timedelta("1h"))],
                                  "test": [str(cut[1]), str(times[-1])]}}}
    config_path = workdir / f"ingest_{gigabytes:g}GB.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = {}
    for name, command, store in [
        ("baseline", [sys.executable, "-c", BASELINE, str(folder / "era5_*.nc"), str(workdir / "baseline.zarr")],
         workdir / "baseline.zarr"),
        ("htweather", [sys.executable, "-m", "htweather.cli", "ingest", str(config_path), str(workdir / "ht.zarr")],
         workdir / "ht.zarr"),
    ]:
        shutil.rmtree(store, ignore_errors=True)
        seconds, peak = measured(command)
        out[name] = (seconds, peak)
        shutil.rmtree(store, ignore_errors=True)
    return {"input_gb": size, "files": len(files), "steps": n, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[2.0, 4.0], help="input sizes in GB")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/htweather-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the generated input files")
    args = parser.parse_args()
    print(f"grid {LAT.size} x {LON.size}, 2 float32 variables, hourly, NetCDF files of 30 days; "
          f"{os.cpu_count()} CPU cores")
    print(f"{'input':>8} {'files':>5} {'baseline':>18} {'htweather':>18} {'ratio':>6} {'peak RSS base/ht':>18}")
    for gigabytes in args.sizes:
        r = run(args.workdir, gigabytes)
        (tb, mb), (th, mh) = r["baseline"], r["htweather"]
        print(f"{r['input_gb']:7.2f}G {r['files']:5d} {tb:7.1f} s {r['input_gb'] / tb:5.2f} GB/s "
              f"{th:7.1f} s {r['input_gb'] / th:5.2f} GB/s {tb / th:6.2f} {mb:8.2f} / {mh:5.2f} GB", flush=True)
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
