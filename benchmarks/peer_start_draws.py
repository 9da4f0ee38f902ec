"""Sampler or start draws? PhysicsNeMo's t-EDM trainings, after benchmarks/peer_physicsnemo.py
--scaled-preconditioner, sampled four ways with the benchmark's Heun steps, per training.

    a  its Heun, its own start draws (the benchmark's ensembles);
    b  its Heun (float32 state), our start draws;
    c  our Heun (float64 state), our start draws, computed here;
    d  our Heun, our start draws (the benchmark's `ourheun` ensembles: c again, from the files).

b = c says the two Heun samplers compute the same thing; a against b says what the start draws
alone do (the same law, other numbers). Prints the tail metrics of each.

    python benchmarks/peer_start_draws.py --run ../w5e5 --config config/w5e5-precip.yaml
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from htweather.config import replicate_name
from htweather.data.store import denormalise, grid_shape, load_stats, test_fields
from htweather.evaluation import tails
from htweather.generation.ensembles import ensemble_dataset, write_ensemble
from htweather.models.diffusion import StudentTNoise
from htweather.models.diffusion.samplers import edm_sampler
from htweather.runtime import derived_seed, replicate_seed

BENCHMARK = Path(__file__).with_name("peer_physicsnemo.py")
METRICS = ["quantile_rel_error_0.99", "wet_quantile_rel_error_0.99", "exceedance_ratio_p99"]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("peer_physicsnemo", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("."))
    parser.add_argument("--config", type=Path, help="the run's config file (default RUN/config/config.yaml)")
    parser.add_argument("--out", type=Path, help="the benchmark's folder (default RUN/results/benchmarks/peer_physicsnemo)")
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--sampler-steps", type=int, default=18, help="as given to the benchmark (default 18)")
    args = parser.parse_args(argv)
    peer = load_benchmark()
    run = args.run.resolve()
    out = (args.out or run / "results" / "benchmarks" / "peer_physicsnemo").resolve()
    store, stats_path = run / "results" / "data" / "store.zarr", run / "results" / "data" / "stats.json"
    stats = load_stats(stats_path)
    # nu comes from each trained model's spec; the config gives the sampling and evaluation settings
    config = peer.benchmark_config(args.config or run / "config" / "config.yaml", None, args.replicates, None)
    levels = peer.sampling_levels(config, args.sampler_steps)
    members, batch = config["sampling"]["members"], config["sampling"]["batch_size"]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="peer_start_draws_") as scratch:
        frame = sampled_four_ways(peer, out, Path(scratch), config, levels, members, batch, args.replicates,
                                  store, stats_path, stats)
    frame = frame[frame["metric"].isin(METRICS)]
    print(frame.pivot_table(index=["side", "variable", "metric", "training"], columns="how", values="value")
          .round(3).to_markdown())


def sampled_four_ways(peer, out, scratch, config, levels, members, batch, replicates, store, stats_path, stats):
    data, rows = test_fields(store), []
    for side in ("physicsnemo", peer.SCALED):
        method = peer.method_of(side)
        for r in range(replicates):
            precond, spec, _ = method.load(out / "models" / side / replicate_name("tedm", r) / "model.pt")
            scheduler = method.scheduler(spec, levels=levels)
            denoiser = scheduler.get_denoiser(x0_predictor=precond)
            seed = replicate_seed(config["seed"], "sample", spec.name, r)
            noise = StudentTNoise(spec.nu, len(spec.variables), per_channel=False)
            sets = {"b": [], "c": []}
            for start in range(0, members, batch):  # the benchmark's batches and seeds
                torch.manual_seed(derived_seed(seed, "members", str(start)))
                n = min(batch, members - start)
                z = noise.sample((n, len(spec.variables), *grid_shape(stats)), dtype=torch.float64)
                with torch.no_grad():
                    sets["c"].append(edm_sampler(peer.AsOurDenoiser(precond), z, "heun", num_steps=levels["steps"],
                                                 sigma_min=levels["sigma_min"], sigma_max=levels["sigma_max"],
                                                 rho=levels["rho"]).numpy())
                    sets["b"].append(peer.physicsnemo_sample(denoiser, (z * levels["sigma_max"]).float(), scheduler,
                                                             num_steps=levels["steps"], solver="heun").double().numpy())
            tables = {}
            for how, chunks in sets.items():
                path = scratch / f"{side}_{how}_{r}.zarr"
                write_ensemble(ensemble_dataset(denormalise(np.concatenate(chunks), stats), stats, {}), path)
                tables[how] = tails.evaluate_ensemble(config, side, path, store, stats_path, data)
            for how, sampler in (("a", "heun"), ("d", peer.OUR_HEUN_ON_THEIRS)):
                name = peer.ensemble_name(side, "tedm", sampler, r)
                tables[how] = pd.read_csv(out / "evaluation" / "per_model" / f"{name}.csv")
            for how, table in tables.items():
                rows.append(table.assign(side=side, training=r, how=how))
    return pd.concat(rows)


if __name__ == "__main__":
    main()
