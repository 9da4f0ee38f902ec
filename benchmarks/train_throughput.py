"""Training throughput (samples/s) and peak GPU memory, for the ways training can be run.

Builds a synthetic store (the embedded default's generator, at the grid size asked for), then
trains one model for a fixed number of steps in each setting, each in its own process, and
prints samples per second from the training log's clock (set-up excluded), the ratio to the
first setting measured in the same run, and, on CUDA, the peak GPU memory:

- memory: the training split held in memory, 1 process (the reference);
- workers: batches read from the zarr store by `--workers` loader processes;
- ddp: `--processes` data-parallel processes (NCCL on GPUs, gloo on CPU), global batch unchanged;
- compile (CUDA only): torch.compile.

Not a test: run it by hand, e.g. on a GPU node

  python benchmarks/train_throughput.py --grid 64 --base-channels 64 --batch 64 --steps 200 --processes 2
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, torch
from htweather.training import train
job = json.loads(sys.argv[1])
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
train.train(job["config"], "tedm", job["store"], job["stats"], job["out"], processes=job["processes"])
peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
print(json.dumps({"peak_gib": peak}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=32, help="grid points per side")
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--channel-mult", type=int, nargs="+", default=None,
                        help="U-Net channel multipliers per level (default: the default config's)")
    parser.add_argument("--num-blocks", type=int, default=None, help="residual blocks per level")
    parser.add_argument("--days", type=int, default=None,
                        help="length of the synthetic record (default: the default config's 6 years); "
                             "large grids need a short one: 256 x 256 x 3 variables is 0.8 MB per step")
    parser.add_argument("--batch", type=int, default=32, help="global batch size")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from htweather.data import ingest, synthetic
    from htweather.config import load_config

    import pandas as pd
    import torch

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="htweather-train-bench-"))
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["data"]["synthetic"].update(nlat=args.grid, nlon=args.grid)
    cfg["architecture"]["base_channels"] = args.base_channels
    if args.channel_mult:
        cfg["architecture"]["channel_mult"] = args.channel_mult
    if args.num_blocks:
        cfg["architecture"]["num_blocks"] = args.num_blocks
    if args.days:  # a short record, split 70 / 15 / 15 %
        start = pd.Timestamp(cfg["data"]["synthetic"]["start"])
        steps = pd.date_range(start, start + pd.Timedelta(days=args.days), freq=cfg["data"]["synthetic"]["freq"],
                              inclusive="left")
        cut = [steps[int(len(steps) * f)] for f in (0.7, 0.85)]
        step = steps[1] - steps[0]
        cfg["data"]["synthetic"]["end"] = str(steps[-1])
        cfg["data"]["splits"] = {"train": [str(steps[0]), str(cut[0] - step)],
                                 "validation": [str(cut[0]), str(cut[1] - step)],
                                 "test": [str(cut[1]), str(steps[-1])]}
    cfg["training"].update(steps=args.steps, batch_size=args.batch, checkpoint_every=args.steps,
                           log_every=max(1, args.steps // 10), warmup_steps=10)
    cfg = load_config(cfg)
    store, stats = workdir / "store.zarr", workdir / "stats.json"
    if not store.exists():
        files = synthetic.write_netcdf(cfg["data"]["synthetic"], workdir / "raw", seed=cfg["seed"])
        ingest.ingest(cfg, [str(f) for f in files], store, stats)

    cuda = torch.cuda.is_available()
    settings = [("memory", {}, 1), (f"workers={args.workers}", {"data_workers": args.workers}, 1)]
    if args.processes > 1 and cuda and torch.cuda.device_count() < args.processes:
        print(f"ddp={args.processes}: skipped, NCCL needs one GPU per process and {torch.cuda.device_count()} "
              "are visible")
    elif args.processes > 1:
        settings.append((f"ddp={args.processes}", {}, args.processes))
    if cuda:
        settings.append(("compile", {"compile": True}, 1))
    print(f"grid {args.grid}x{args.grid}, {len(cfg['data']['variables'])} variables, base_channels "
          f"{args.base_channels}, channel_mult {cfg['architecture']['channel_mult']}, num_blocks "
          f"{cfg['architecture']['num_blocks']}, global batch {args.batch}, {args.steps} steps, "
          f"{'CUDA ' + torch.cuda.get_device_name() if cuda else 'CPU'}")
    reference = None
    for label, extra, processes in settings:
        out = workdir / label
        config = {**cfg, "training": {**cfg["training"], **extra}}
        job = {"config": config, "store": str(store), "stats": str(stats), "out": str(out), "processes": processes}
        result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(job)], capture_output=True, text=True)
        if result.returncode:
            print(f"{label:>12}: failed\n{result.stderr[-2000:]}")
            continue
        with open(out / "train_log.csv") as f:
            rows = list(csv.DictReader(f))
        first, last = rows[0], rows[-1]  # time from the first logged step on: start-up excluded
        seconds = float(last["elapsed_s"]) - float(first["elapsed_s"])
        rate = (int(last["step"]) - int(first["step"])) * args.batch / seconds
        reference = reference or rate
        peak = json.loads(result.stdout.strip().splitlines()[-1])["peak_gib"]
        params = torch.load(out / "model.pt", weights_only=True)["parameters"]
        memory = ("" if not cuda else f"peak GPU memory {peak:.2f} GiB" if processes == 1
                  else "(ranks' GPU memory not measured)")
        print(f"{label:>12}: {rate:9.1f} samples/s  ({rate / reference:4.2f}x memory)  {memory}  "
              f"({params / 1e6:.2f} M parameters)")


if __name__ == "__main__":
    main()
