"""The CUDA paths, run for real: training, sampling and forecasting on the GPU (bf16 autocast,
with and without torch.compile), loader workers into pinned memory, NCCL data-parallel
training where there are 2 or more GPUs; then the training benchmark at a realistic size.

Prints one line per path: PASS / FAIL / SKIP, seconds, samples (or members) per second and the
peak GPU memory, and exits non-zero when a path fails. Without a CUDA GPU it says so in one line
and exits 0 (`--cpu` runs the same paths on the CPU instead, those that exist there: a smoke run
of this script). Run it through `benchmarks/gpu_check.sh`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import xarray as xr
import yaml

ROOT = Path(__file__).resolve().parents[1]


class Checks:
    def __init__(self, cuda: bool):
        self.cuda, self.results = cuda, []

    @contextlib.contextmanager
    def run(self, name: str):
        """Times the block and reports it; the block fills `info` with figures ("rate", "unit")."""
        info: dict = {}
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured):  # progress bars and logs: shown on failure only
                yield info
        except Exception:
            self.report("FAIL", name, time.perf_counter() - t0, info)
            print(captured.getvalue()[-3000:] + traceback.format_exc(limit=6), flush=True)
            return
        if self.cuda:
            torch.cuda.synchronize()
        self.report("PASS", name, time.perf_counter() - t0, info)

    def skip(self, name: str, why: str) -> None:
        self.results.append("SKIP")
        print(f"SKIP  {name:<42} {why}", flush=True)

    def report(self, status: str, name: str, seconds: float, info: dict) -> None:
        self.results.append(status)
        rate = f"{info['rate']:9.1f} {info['unit']}/s" if "rate" in info else " " * 19
        peak = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:6.2f} GiB" if self.cuda else ""
        print(f"{status}  {name:<42} {seconds:7.1f} s  {rate}  {peak}", flush=True)


def training_rate(model_dir: Path, batch: int) -> float:
    """Samples/s from the training log's clock, from the first logged step on (start-up and
    compilation excluded)."""
    with open(model_dir / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    seconds = float(rows[-1]["elapsed_s"]) - float(rows[0]["elapsed_s"])
    return (int(rows[-1]["step"]) - int(rows[0]["step"])) * batch / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run the paths that exist on the CPU (a smoke run)")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each tiny-config model")
    parser.add_argument("--skip-throughput", action="store_true", help="leave out the realistic-size benchmark")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        print(f"gpu_check: no CUDA GPU here (torch {torch.__version__}, torch.cuda.is_available() is False); "
              "nothing to check")
        return 0
    gpus = torch.cuda.device_count() if cuda else 0
    ranks = max([r for r in (1, 2, 4, 8) if r <= gpus] or [1])  # divides the batch of 16

    from htweather.config import load_config
    from htweather.data import ingest, synthetic
    from htweather.generation import forecast, sample
    from htweather.training import train

    device = "cuda" if cuda else "cpu"
    print(f"gpu_check: {torch.cuda.get_device_name(0) if cuda else 'CPU (smoke run)'}, {gpus} GPU(s), "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="htweather-gpu-check-"))
    raw = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    raw["training"].update(steps=args.steps, batch_size=16, checkpoint_every=args.steps,
                           log_every=max(1, args.steps // 10), device=device)
    raw["sampling"].update(members=64, batch_size=64)
    cfg = load_config(raw)
    batch = cfg["training"]["batch_size"]
    store, stats = workdir / "store.zarr", workdir / "stats.json"
    checks = Checks(cuda)

    with checks.run("tiny store (synthetic, 12 x 12)"):
        files = synthetic.write_netcdf(cfg["data"]["synthetic"], workdir / "raw", seed=cfg["seed"])
        ingest.ingest(cfg, [str(f) for f in files], store, stats)

    def trained(label: str, model: str, extra: dict | None = None, processes: int = 1) -> Path | None:
        config = copy.deepcopy(cfg)
        config["training"].update(extra or {})
        out = workdir / label
        with checks.run(f"train {model}: {label}") as info:
            path = train.train(config, model, store, stats, out, processes=processes)
            info.update(rate=training_rate(out, batch), unit="samples")
            return path
        return None

    def sampled(label: str, model_path: Path | None) -> None:
        if model_path is None:
            return checks.skip(f"sample: {label}", "its training failed")
        with checks.run(f"sample 64 members: {label}") as info:
            out = sample.sample(cfg, model_path, stats, workdir / f"{label}.zarr")
            ds = xr.open_zarr(out)
            if not all(bool(ds[v].notnull().all()) for v in ds.data_vars):
                raise FloatingPointError("non-finite members")
            info.update(rate=ds.sizes["member"] / ds.attrs["sampling_seconds"], unit="members")

    bf16 = "bf16 autocast" if cuda else "fp32"
    sampled(bf16, trained(bf16, "tedm"))
    if cuda:
        sampled("bf16, torch.compile", trained("bf16, torch.compile", "tedm", {"compile": True}))
    else:
        checks.skip("train tedm: torch.compile", "CUDA only (training compiles on CUDA)")
    trained("2 loader workers" + (", pinned memory" if cuda else ""), "tedm", {"data_workers": 2})
    if ranks >= 2:
        trained(f"NCCL data-parallel, {ranks} ranks", "tedm", processes=ranks)
    else:
        checks.skip("train tedm: NCCL data-parallel", f"needs 2 GPUs, {gpus} here (NCCL: one GPU per rank)")

    forecaster = trained(bf16, "fc_tedm")
    if forecaster is None:
        checks.skip("forecast", "its training failed")
    else:
        with checks.run(f"forecast + free-running sequences: {bf16}") as info:
            forecast.forecast(cfg, forecaster, store, stats, workdir / "fc.zarr", workdir / "seq.zarr")
            ds = xr.open_zarr(workdir / "fc.zarr")
            if not bool(ds["t2m"].notnull().all()):
                raise FloatingPointError("non-finite forecasts")
            fields = ds.sizes["init_time"] * ds.sizes["lead"] * ds.sizes["member"]
            info.update(rate=fields / ds.attrs["sampling_seconds"], unit="fields")

    if args.skip_throughput:
        checks.skip("training throughput at 256 x 256", "--skip-throughput")
    else:
        size = (["--grid", "256", "--base-channels", "96", "--channel-mult", "1", "2", "2", "4", "--num-blocks", "2",
                 "--batch", "16", "--steps", "40", "--days", "60"] if cuda else
                ["--grid", "32", "--base-channels", "16", "--batch", "16", "--steps", "20", "--days", "60"])
        command = [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), *size,
                   "--processes", str(ranks), "--workdir", str(workdir / "throughput")]
        print("training throughput: " + " ".join(command[1:]), flush=True)
        t0 = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        print(result.stdout.rstrip(), flush=True)
        status = "PASS" if result.returncode == 0 and "failed" not in result.stdout else "FAIL"
        if status == "FAIL":
            print(result.stderr[-3000:], flush=True)
        checks.results.append(status)
        print(f"{status}  {'training throughput (above)':<42} {time.perf_counter() - t0:7.1f} s", flush=True)

    counts = {s: checks.results.count(s) for s in ("PASS", "FAIL", "SKIP")}
    print(f"gpu_check: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
