"""Side by side with the peer on downscaling: CorrDiff's diffusion stage with Student-t noise as
NVIDIA PhysicsNeMo implements it (`physicsnemo.experimental`'s tEDMPrecondSuperRes and
tEDMResidualLoss; EDMPrecondSuperResolution and ResidualLoss for its Gaussian twin), against
ours (models.NAME.residual), on a downscaling run the pipeline made: the same task, data,
regression stage, network, budget and training seeds, scored by the pipeline's own code.

    pip install -e ".[peer]"         # PhysicsNeMo 2.2.2 next to the locked CPU torch (its own venv is best)
    python benchmarks/peer_physicsnemo_downscaling.py --run ../downscaling --config config/downscaling.yaml

What differs between the two sides, and what each ensemble isolates:

- The trainings. Our loop (`htweather.training.train`, with `method=`) trains both sides here, on
  the CPU: the same batches, AdamW, warm-up, EMA, steps and seeds, and the same regression stage
  (ours, trained first, copied to theirs: the stage's identity does not depend on the method). PhysicsNeMo's side is its
  preconditioner around our U-Net (same class, width and initial weights) and its loss; our loop
  hands the loss the residual x - mu(c) already, so the loss's own regression network is a zero
  (ZeroMean): subtracting mu is arithmetic, the same on both sides. Both sides use our P_mean,
  P_std and the residuals' sigma_data; PhysicsNeMo's preconditioner takes one sigma_data and its
  t-EDM one nu, so the run needs one variable.
- The samplers, at the same Heun levels (`--sampler-steps`, sampling.edm's sigma range and rho):
  `htweather_MODEL_heun` is ours (`generation.downscale` with solver heun);
  `physicsnemo_MODEL_heun` is PhysicsNeMo's CorrDiff generation as shipped: `diffusion_step` with
  distribution "student_t" (its Student-t latents) and the legacy `stochastic_sampler` (S_churn 0:
  Heun). Its tEDMPrecondSuperRes rescales the noise level it is given in place (`sigma *= ...`,
  physicsnemo/experimental/models/diffusion/preconditioning.py:127 in 2.2.2), and the sampler goes
  on using its t_hat and t_next after the call (legacy_stochastic_sampler.py:314-315 and 351), so
  from the second step on it integrates at rescaled, and then twice-rescaled, levels.
  `physicsnemo_tedm_res_sigmacopy` is the same with a copy of sigma handed to the network (SigmaCopy):
  that one difference. `physicsnemo_tedm_res_ourheun` is PhysicsNeMo's training sampled by our Heun
  (float64 state, our Student-t start): their training against ours with the sampler held fixed.

Everything lands under --out (default RUN/results/benchmarks/peer_physicsnemo_downscaling) in
the pipeline's layout: downscaled/NAME.zarr, evaluation/per_model/NAME.csv (the pipeline's
`verify_downscaled`), evaluation/metrics.csv, evaluation/comparisons.csv (replicate-aware
intervals, `evaluation.comparisons`) and summary.md (what is printed). NAME is
IMPLEMENTATION_MODEL_SAMPLER, with .rK for the K-th replicate. Every stage skips what a previous
run finished from the same settings and inputs, so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_physicsnemo as peer  # noqa: E402  (PhysicsNeMo imported there, torchvision placeholders first)

from htweather.config import load_config, read_yaml, replicate_name  # noqa: E402
from htweather.data.store import grid_shape, load_stats  # noqa: E402
from htweather.errors import ConfigError  # noqa: E402
from htweather.evaluation import comparisons, downscaling, tables  # noqa: E402
from htweather.generation import downscale as htweather_downscale  # noqa: E402
from htweather.models import assemble  # noqa: E402
from htweather.models.diffusion import StudentTNoise  # noqa: E402
from htweather.models.diffusion.samplers import edm_sampler  # noqa: E402
from htweather.models.regression import build_regression, conditional_mean  # noqa: E402
from htweather.runtime import derived_seed, progress, replicate_seed  # noqa: E402
from htweather.training import train  # noqa: E402

import physicsnemo  # noqa: E402
from physicsnemo.diffusion.generate import diffusion_step  # noqa: E402
from physicsnemo.diffusion.metrics import ResidualLoss  # noqa: E402
from physicsnemo.diffusion.preconditioners import EDMPrecondSuperResolution  # noqa: E402
from physicsnemo.diffusion.samplers import stochastic_sampler  # noqa: E402
from physicsnemo.experimental.metrics.diffusion import tEDMResidualLoss  # noqa: E402
from physicsnemo.experimental.models.diffusion.preconditioning import tEDMPrecondSuperRes  # noqa: E402

log = logging.getLogger("peer_physicsnemo_downscaling")

IMPLEMENTATIONS = ("htweather", "physicsnemo")
HEUN, SIGMA_COPY, OUR_HEUN = "heun", "sigmacopy", "ourheun"


class OurUNet(torch.nn.Module):
    """Our U-Net called as PhysicsNeMo's preconditioners call their model: F(x, c_noise, ...)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, noise_labels, class_labels=None, **unused):  # embedding_selector, augment_labels...
        return self.net(x, noise_labels)


class ZeroMean(torch.nn.Module):
    """The loss's regression network: zero, as our loop gives it residuals already."""

    def forward(self, x, img_lr, **unused):
        return torch.zeros_like(x)


class SigmaCopy(torch.nn.Module):
    """A PhysicsNeMo super-resolution preconditioner given a copy of the noise level, so that the
    in-place rescaling of tEDMPrecondSuperRes cannot reach the sampler's own levels."""

    def __init__(self, precond):
        super().__init__()
        self.precond = precond
        self.sigma_min, self.sigma_max = precond.sigma_min, precond.sigma_max

    def round_sigma(self, sigma):
        return self.precond.round_sigma(sigma)

    def forward(self, x, img_lr, sigma, *args, **kwargs):
        return self.precond(x, img_lr, torch.as_tensor(sigma).clone(), *args, **kwargs)


class SuperResMethod:
    """PhysicsNeMo's CorrDiff diffusion pieces in the shape `htweather.training.train` takes
    (`method=`): tEDMPrecondSuperRes (EDMPrecondSuperResolution for nu = inf) around our U-Net,
    trained by tEDMResidualLoss (ResidualLoss)."""

    name = f"physicsnemo {physicsnemo.__version__} CorrDiff"

    def __init__(self, shape: tuple[int, int]):
        self.shape = tuple(shape)  # the fine grid's (H, W): PhysicsNeMo's preconditioner is told it

    @staticmethod
    def settings(spec: assemble.ModelSpec) -> tuple[float, float]:
        if not (spec.residual and spec.family == "edm") or spec.patch:
            raise ConfigError(f"model {spec.name}: the PhysicsNeMo side runs residual (CorrDiff) EDM models only")
        if len(spec.variables) != 1:
            raise ConfigError(f"model {spec.name}: PhysicsNeMo's preconditioner takes one sigma_data and one nu; "
                              f"this run has {len(spec.variables)} variables")
        sigma_data = spec.sigma_data
        return float(sigma_data[0] if isinstance(sigma_data, (list, tuple)) else sigma_data), float(spec.nu[0])

    def build(self, spec: assemble.ModelSpec) -> torch.nn.Module:
        sigma_data, nu = self.settings(spec)
        net = assemble.build(spec).net  # our U-Net, built as our side builds it: the same initial weights
        with torch.random.fork_rng():  # the placeholder SongUNet replaced below draws nothing of ours
            common = dict(img_resolution=list(self.shape), img_in_channels=spec.condition_channels(),
                          img_out_channels=len(spec.variables), model_type="SongUNet", sigma_data=sigma_data,
                          model_channels=8, channel_mult=[1], num_blocks=1, attn_resolutions=[])
            precond = (EDMPrecondSuperResolution(**common) if math.isinf(nu) else
                       tEDMPrecondSuperRes(nu=nu, **common))
        precond.model = OurUNet(net)
        return precond

    def load(self, model_path: str | Path):
        """(preconditioner with the EMA weights, the regression stage, spec, checkpoint)."""
        ckpt = torch.load(model_path, map_location="cpu", weights_only=True)
        spec = assemble.ModelSpec.from_dict(ckpt["spec"])
        precond = self.build(spec)
        precond.load_state_dict(ckpt["ema"])
        regression = build_regression(len(spec.variables), spec.condition_channels(), spec.architecture)
        regression.load_state_dict(ckpt["regression"])
        return (precond.eval().requires_grad_(False), regression.eval().requires_grad_(False), spec, ckpt)

    def loss_fn(self, spec: assemble.ModelSpec, training: dict) -> "SuperResObjective":
        sigma_data, nu = self.settings(spec)
        opts = dict(P_mean=training["P_mean"], P_std=training["P_std"], sigma_data=sigma_data)
        return SuperResObjective(ResidualLoss(ZeroMean(), **opts) if math.isinf(nu) else
                                 tEDMResidualLoss(ZeroMean(), nu=nu, **opts))


class SuperResObjective:
    """The residual loss per element. Its noise level and Student-t noise are drawn inside
    (get_noise_params), from the generator our loop seeds at every step, so `draw` has nothing."""

    def __init__(self, loss):
        self.loss = loss

    def draw(self, model, shape, device=None, dtype=torch.float32):
        return ()

    def __call__(self, model, x0, cond=None, draws=None):
        return self.loss(model, x0, cond)


def benchmark_config(path: Path, models: list[str], replicates: int, threads: int) -> dict:
    """The run's config with `models` only, on the CPU with `threads` threads for both sides."""
    raw = read_yaml(path)
    missing = [m for m in models if m not in raw.get("models", {})]
    if missing:
        raise ConfigError(f"{path}: models {missing} are not in the run's config (--models)")
    raw["models"] = {m: raw["models"][m] for m in models}
    for key in ("comparisons", "nu_sweep", "aa_check"):
        raw.pop(key, None)
    raw["replicates"] = replicates
    raw.setdefault("training", {}).update(device="cpu", compile=False, threads=threads)
    raw.setdefault("sampling", {})["threads"] = threads
    config = load_config(raw, check_paths=False)
    if "downscaling" not in config:
        raise ConfigError(f"{path}: no downscaling section: this benchmark runs on a downscaling run")
    if config["training"]["steps"] == "auto":
        raise ConfigError(f"{path}: training.steps: auto; the benchmark trains both sides for a fixed number of steps")
    return config


def train_all(config, models, store, stats_path, stats, out: Path, replicates: int) -> dict:
    """Both sides' trainings, here, on the CPU (a pipeline's own could have run on a GPU), ours
    first; our regression stage (regression.pt) is given to theirs, so that both diffuse the same
    residuals."""
    paths = {}
    for r in range(replicates):
        for model in models:
            ours = out / "models" / "htweather" / replicate_name(model, r)
            for implementation in IMPLEMENTATIONS:
                model_dir = out / "models" / implementation / replicate_name(model, r)
                model_dir.mkdir(parents=True, exist_ok=True)
                if implementation == "physicsnemo" and not (model_dir / "regression.pt").exists():
                    shutil.copy2(ours / "regression.pt", model_dir / "regression.pt")
                log.info("training %s %s, replicate %d", implementation, model, r)
                method = SuperResMethod(grid_shape(stats)) if implementation == "physicsnemo" else None
                paths[implementation, model, r] = train.train(config, model, store, stats_path, model_dir,
                                                              replicate=r, method=method)
    return paths


def levels_of(config: dict, steps: int) -> dict:
    edm = config["sampling"]["edm"]
    return {"steps": steps, "sigma_min": edm["sigma_min"], "sigma_max": edm["sigma_max"], "rho": edm["rho"]}


def downscale_ours(config, model_path, store, stats_path, out: Path, levels: dict) -> None:
    edm = {**config["sampling"]["edm"], "solver": "heun", "steps": levels["steps"],
           **{k: levels[k] for k in ("sigma_min", "sigma_max", "rho")}}
    htweather_downscale.downscale({**config, "sampling": {**config["sampling"], "edm": edm}}, model_path, store,
                                  stats_path, out)


class AsOurDenoiser:
    """PhysicsNeMo's super-resolution preconditioner called as our samplers call a denoiser."""

    def __init__(self, precond):
        self.precond = precond

    def __call__(self, x, sigma, cond=None):
        t = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(x.shape[0]).clone()
        return self.precond(x.float(), cond.float(), t).double()


@torch.no_grad()
def downscale_theirs(config, model_path, store, stats, out: Path, sampler: str, levels: dict) -> None:
    """PhysicsNeMo's CorrDiff generation (HEUN: as shipped; SIGMA_COPY: with a copy of sigma) or
    our Heun (OUR_HEUN) on PhysicsNeMo's trained preconditioner; mu(c) from the regression stage
    added to every generated residual, as CorrDiff does."""
    shape = grid_shape(stats)
    precond, regression, spec, ckpt = SuperResMethod(shape).load(model_path)
    _, nu = SuperResMethod.settings(spec)
    replicate = int(ckpt.get("replicate", 0))
    seed = replicate_seed(config["seed"], "downscale", spec.name, replicate)
    times, picks, coarsening, condition = htweather_downscale.coarse_inputs(config, spec.coarsen_factor, store, stats)
    members, batch = config["downscaling"]["members"], config["sampling"]["batch_size"]
    rows = np.repeat(condition, members, axis=0)  # time-major, as ours
    mean = conditional_mean(regression, rows)
    channels = len(spec.variables)
    net = SigmaCopy(precond) if sampler == SIGMA_COPY else precond
    heun = partial(stochastic_sampler, num_steps=levels["steps"], sigma_min=levels["sigma_min"],
                   sigma_max=levels["sigma_max"], rho=levels["rho"], S_churn=0)
    chunks = []
    bar = progress(len(rows), f"downscale {spec.name} (physicsnemo, {sampler})")
    t0 = time.perf_counter()
    for start in range(0, len(rows), batch):
        img_lr = torch.from_numpy(np.ascontiguousarray(rows[start:start + batch]))
        n = len(img_lr)
        torch.manual_seed(derived_seed(seed, "downscale", str(start)))  # its kappa comes from the global generator
        if sampler == OUR_HEUN:
            noise = StudentTNoise(spec.nu, channels, per_channel=False).sample((n, channels, *shape), dtype=torch.float64)
            residual = edm_sampler(AsOurDenoiser(precond), noise, "heun", num_steps=levels["steps"],
                                   sigma_min=levels["sigma_min"], sigma_max=levels["sigma_max"], rho=levels["rho"],
                                   cond=img_lr)
        else:
            seeds = [derived_seed(seed, "member", str(start + k)) % 2**31 for k in range(n)]
            residual = diffusion_step(net, heun, img_shape=tuple(shape), img_out_channels=channels,
                                      rank_batches=[seeds], img_lr=img_lr, rank=1,  # rank: its progress bar off
                                      device=torch.device("cpu"), distribution="normal" if math.isinf(nu) else "student_t",
                                      nu=None if math.isinf(nu) else nu)
        chunks.append(residual.double().contiguous().numpy() + mean[start:start + n])
        bar.update(n)
    bar.close()
    seconds = time.perf_counter() - t0
    generated = np.concatenate(chunks).reshape(len(picks), members, channels, *shape)
    nfe = 2 * levels["steps"] - 1  # Heun, both: no correction into sigma = 0
    attrs = {"model": spec.name, "implementation": SuperResMethod.name, "sampler": sampler, "replicate": replicate,
             "seed": seed, "nu": str(["inf" if math.isinf(v) else v for v in spec.nu]),
             "coarsen_factor": spec.coarsen_factor, "network_evaluations_per_field": nfe,
             "sampling_seconds": round(seconds, 3), "training_steps": int(ckpt["steps"])}
    htweather_downscale.write_downscaled(generated, config, stats, store, times, picks, coarsening, attrs, out)


def samplers_of(implementation: str, model: str, student_t: str) -> list[str]:
    return [HEUN] + ([SIGMA_COPY, OUR_HEUN] if implementation == "physicsnemo" and model == student_t else [])


def downscale_all(config, trained: dict, store, stats_path, stats, out: Path, levels: dict, student_t: str):
    paths, made = {}, {}
    for (implementation, model, r), model_path in trained.items():
        for sampler in samplers_of(implementation, model, student_t):
            name = replicate_name(f"{implementation}_{model}_{sampler}", r)
            path = out / "downscaled" / f"{name}.zarr"
            inputs = {"weights": peer.weights_digest(model_path), "sampler": sampler, "levels": levels,
                      "seed": config["seed"], "downscaling": config["downscaling"],
                      "batch_size": config["sampling"]["batch_size"]}
            if not peer.is_current(path, inputs):
                log.info("downscaling %s", name)
                if implementation == "htweather":
                    downscale_ours(config, model_path, store, stats_path, path, levels)
                else:
                    downscale_theirs(config, model_path, store, stats, path, sampler, levels)
                peer.record(path, inputs)
            paths[name], made[name] = path, inputs
    return paths, made


def evaluate_all(config, ensembles: dict[str, Path], made: dict, store, stats_path, out: Path) -> pd.DataFrame:
    per_model = []
    for name, path in ensembles.items():
        table_path = out / "evaluation" / "per_model" / f"{name}.csv"
        inputs = {"ensemble": made[name], "evaluation": config["evaluation"]}
        if not peer.is_current(table_path, inputs):
            log.info("verifying %s", name)
            scores, _ = downscaling.verify_downscaled(config, name, path, store, stats_path)
            tables.write_table(scores, table_path)
            peer.record(table_path, inputs)
        per_model.append(table_path)
    return tables.combine(per_model, out / "evaluation" / "metrics.csv", config["evaluation"]["confidence"])


def comparison_pairs(gaussian: str, student_t: str, baseline: str | None) -> list[list[str]]:
    """Theirs against ours for each model; Student-t against Gaussian within each side; the
    pieces of PhysicsNeMo's t-EDM one by one; and each side's Student-t model against the baseline."""
    g, t = gaussian, student_t
    pairs = [[f"physicsnemo_{m}_{HEUN}", f"htweather_{m}_{HEUN}"] for m in (g, t)]
    pairs += [[f"{i}_{t}_{HEUN}", f"{i}_{g}_{HEUN}"] for i in IMPLEMENTATIONS]
    pairs += [[f"physicsnemo_{t}_{HEUN}", f"physicsnemo_{t}_{SIGMA_COPY}"],  # the in-place rescaling
              [f"physicsnemo_{t}_{OUR_HEUN}", f"physicsnemo_{t}_{SIGMA_COPY}"],  # the two samplers, one training
              [f"physicsnemo_{t}_{OUR_HEUN}", f"htweather_{t}_{HEUN}"]]  # the two trainings, one sampler
    if baseline:
        pairs += [[f"{i}_{t}_{HEUN}", baseline] for i in IMPLEMENTATIONS]
    return pairs


def compare_all(config, ensembles, made, pairs, replicates, baseline, store, stats_path, out: Path) -> pd.DataFrame:
    path = out / "evaluation" / "comparisons.csv"
    names = {m for pair in pairs for m in pair}
    runs = {m: [m] if m == baseline else [replicate_name(m, r) for r in range(replicates)] for m in names}
    inputs = {"pairs": pairs, "runs": runs, "ensembles": {run: made[run] for m in runs for run in runs[m]},
              "evaluation": config["evaluation"], "seed": config["seed"]}
    if not peer.is_current(path, inputs):
        table = comparisons.comparison_table(config, pairs, runs, {k: str(v) for k, v in ensembles.items()},
                                             store, stats_path)
        tables.write_table(table, path)
        peer.record(path, inputs)
    return pd.read_csv(path)


KEY_METRICS = ["crps", "twcrps_p99", "twcrps_p999", "rank_flatness", "spread_skill", "cell_quantile_rel_error_0.99",
               "cell_quantile_rel_error_0.999", "quantile_rel_error_0.999", "block_mean_rel_error",
               "fields_beyond_training_max"]


def metric_lines(metrics: pd.DataFrame, names: list[str]) -> list[str]:
    """The key metrics per ensemble: the mean over trainings with its interval (a baseline's one run)."""
    replicate = metrics["replicate"].astype(str)
    trained = set(metrics.loc[replicate == "mean", "model"])
    means = metrics[metrics["model"].isin(names) & ((replicate == "mean") | ~metrics["model"].isin(trained))]
    keys = [k for k in KEY_METRICS if k in set(means["metric"])]
    lines = []
    for variable, rows in means.groupby("variable"):
        lines += [f"\n### {variable}: mean over trainings [95 % interval]\n",
                  "| ensemble | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name in names:
            found = {r["metric"]: r for _, r in rows[rows["model"] == name].iterrows()}
            lines.append(f"| {name} | " + " | ".join(peer.cell(found.get(k)) for k in keys) + " |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("."), help="the downscaling run's directory (results/ in it)")
    parser.add_argument("--config", type=Path, help="the run's config file (default RUN/config/config.yaml)")
    parser.add_argument("--out", type=Path, help="default RUN/results/benchmarks/peer_physicsnemo_downscaling")
    parser.add_argument("--models", nargs=2, default=["edm_res", "tedm_res"], metavar=("GAUSSIAN", "STUDENT_T"),
                        help="the run's residual (CorrDiff) models: Gaussian, then Student-t (default edm_res tedm_res)")
    parser.add_argument("--baseline", default="quantile_mapping",
                        help="a baseline of the run to compare with ('' for none; default quantile_mapping)")
    parser.add_argument("--replicates", type=int, default=3, help="trainings per side and model (default 3)")
    parser.add_argument("--sampler-steps", type=int, default=18, help="Heun steps of every sampler (default 18)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's default: 1)")
    args = parser.parse_args(argv)
    run, out, store, stats_path = peer.run_folders(args, "peer_physicsnemo_downscaling")
    stats = load_stats(stats_path)
    config = benchmark_config(args.config or run / "config" / "config.yaml", args.models, args.replicates, args.threads)
    out.mkdir(parents=True, exist_ok=True)
    levels = levels_of(config, args.sampler_steps)
    gaussian, student_t = args.models
    trained = train_all(config, args.models, store, stats_path, stats, out, args.replicates)
    ensembles, made = downscale_all(config, trained, store, stats_path, stats, out, levels, student_t)
    baseline = None
    if args.baseline:
        source = run / "results" / "downscaled" / f"{args.baseline}.zarr"
        if not source.exists():
            raise SystemExit(f"{source} is missing: --baseline names a baseline of the run ('' for none)")
        baseline = f"baseline_{args.baseline}"
        ensembles[baseline], made[baseline] = source, {"baseline": args.baseline, "run": str(run)}
    metrics = evaluate_all(config, ensembles, made, store, stats_path, out)
    pairs = comparison_pairs(gaussian, student_t, baseline)
    table = compare_all(config, ensembles, made, pairs, args.replicates, baseline, store, stats_path, out)
    names = [f"{i}_{m}_{s}" for m in args.models for i in IMPLEMENTATIONS for s in samplers_of(i, m, student_t)]
    first = trained["physicsnemo", student_t, 0]
    spec = assemble.ModelSpec.from_dict(torch.load(first, map_location="cpu", weights_only=True)["spec"])
    lines = [f"## PhysicsNeMo {physicsnemo.__version__} CorrDiff vs htweather on {store}",
             f"\n{args.replicates} trainings per side and model, {config['training']['steps']} steps (regression stage "
             f"{config['training'].get('regression_steps')} steps, shared), batch {config['training']['batch_size']}; "
             f"{student_t} nu = {spec.nu[0]:.4g} (chosen on the residuals), sigma_data {spec.sigma_data}; "
             f"{config['downscaling']['times']} test times x {config['downscaling']['members']} members, "
             f"{args.sampler_steps} Heun steps (sigma {levels['sigma_min']} to {levels['sigma_max']}, rho "
             f"{levels['rho']}); torch {torch.__version__}, {args.threads} thread(s)."]
    lines += metric_lines(metrics, names + ([baseline] if baseline else [])) + peer.comparison_lines(table)
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
