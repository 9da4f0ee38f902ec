"""Side by side with the peer: t-EDM and EDM as NVIDIA PhysicsNeMo implements them, against ours,
on a store the pipeline wrote, with the same network, data, budget and seeds; one run, one machine.

    pip install -e ".[peer]"         # PhysicsNeMo 2.2.2 next to the locked CPU torch (its own venv is best)
    python benchmarks/peer_physicsnemo.py --run .                        # the default run
    python benchmarks/peer_physicsnemo.py --run ../w5e5 --config config/w5e5-precip.yaml

What differs between the two sides is the method only: PhysicsNeMo's noise scheduler
(`StudentTEDMNoiseScheduler`, `EDMNoiseScheduler`), its `EDMPreconditioner` around our U-Net
(the same class, width and initial weights) and its `MSEDSMLoss`, trained by our training loop
(`htweather.training.train` with `method=`: the same batches, AdamW, warm-up, EMA, steps and
seeds); then its `sample` with its `heun` and `edm_stochastic_heun` solvers, against our Heun and
stochastic samplers on the same noise levels and step count. PhysicsNeMo's scheduler takes one
`nu`, so both sides' t-EDM use one `nu` for every variable (`--nu`; default: the smallest that
`nu: auto` picks on this store) and one kappa per sample.

Our side reuses the pipeline's own trainings of `edm` and `tedm` where they are the very same
model (spec, seed and training settings: the copied checkpoint is resumed at its last step);
the rest is trained here. Training throughput is measured here for both sides, in a short
head-to-head (`--timing-steps` steps each, alternating, repeated), so the ratio is of one
machine under one load.

Everything lands under --out (default RUN/results/benchmarks/peer_physicsnemo) in the pipeline's
layout, scored by the pipeline's own code (`evaluation.tails`, `evaluation.spatial`,
`evaluation.comparisons`): samples/NAME.zarr, evaluation/per_model/NAME.csv,
evaluation/metrics.csv, evaluation/comparisons.csv, throughput.csv and summary.md (what is
printed). NAME is IMPLEMENTATION_MODEL_SAMPLER, with .rK for the K-th replicate.
Every stage skips what a previous run finished from the same settings and inputs (each output's
.made_from.json records them), so a stopped run resumes and a changed setting redoes what depends on it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.abc
import importlib.machinery
import json
import logging
import math
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from htweather.config import load_config, read_yaml, replicate_name
from htweather.data.store import denormalise, grid_shape, load_mask, load_split, load_stats, test_fields
from htweather.errors import ConfigError
from htweather.evaluation import comparisons, spatial, tables, tails
from htweather.generation import sample as htweather_sampling
from htweather.generation.ensembles import ensemble_dataset, write_ensemble
from htweather.models import assemble
from htweather.models.devices import set_threads
from htweather.models.diffusion import StudentTNoise
from htweather.models.diffusion.samplers import edm_sampler
from htweather.runtime import derived_seed, progress, replicate_seed, setup_logging
from htweather.training import train



class _PlaceholderType(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _PlaceholderType(name, (_Placeholder,), {})


class _Placeholder(metaclass=_PlaceholderType):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision could not be loaded; the benchmark gave its names placeholders, and one was "
                           "called: the benchmarked code needs torchvision after all")


class _PlaceholderModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _PlaceholderType(name, (_Placeholder,), {})


class _TorchvisionPlaceholders(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import torchvision...` gives modules whose every name is a placeholder class."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _PlaceholderModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def torchvision_or_placeholders() -> str:
    """PhysicsNeMo's diffusion modules import its model zoo, whose DiT layers import timm, which
    imports torchvision at import time; the diffusion code itself never calls it. PyPI's torchvision
    wheels are built against CUDA torch (libtorch_cuda.so) and fail to load next to the CPU build
    ("operator torchvision::nms does not exist"), and there is no CPU wheel or sdist on PyPI. So where
    torchvision does not load, its names become placeholders that raise if ever called."""
    try:
        import torchvision  # noqa: F401
        return "torchvision"
    except Exception:  # absent, or a CUDA build next to CPU torch (RuntimeError)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _TorchvisionPlaceholders())
        return "placeholders"


TORCHVISION = torchvision_or_placeholders()
try:
    import physicsnemo
    from physicsnemo.diffusion.metrics.losses import MSEDSMLoss
    from physicsnemo.diffusion.noise_schedulers import EDMNoiseScheduler, StudentTEDMNoiseScheduler
    from physicsnemo.diffusion.preconditioners import EDMPreconditioner
    from physicsnemo.diffusion.samplers import sample as physicsnemo_sample
    from physicsnemo.diffusion.samplers.edm_stochastic_heun import EDMStochasticHeunSolver  # noqa: F401 (the tests)
except ImportError as exc:  # never a dependency of the pipeline or of CI
    sys.exit(f"benchmarks/peer_physicsnemo.py needs NVIDIA PhysicsNeMo: pip install -e \".[peer]\" ({exc})")

log = logging.getLogger("peer_physicsnemo")

MODELS = ("edm", "tedm")
SAMPLERS = {"heun": ("heun", "heun"), "stochastic": ("stochastic", "edm_stochastic_heun")}  # ours, theirs
# with --scaled-preconditioner, PhysicsNeMo's t-EDM trainings are also sampled with our Heun sampler:
# their training with our sampling, to tell a difference of the training from one of the sampler
OUR_HEUN_ON_THEIRS = "ourheun"
IMPLEMENTATIONS = ("htweather", "physicsnemo")
# --scaled-preconditioner: PhysicsNeMo's t-EDM with our preconditioning scale, to see what that one
# difference does (the benchmark's variant, not PhysicsNeMo's code as shipped)
SCALED = "physicsnemo_scaled"


def made_from(path: Path) -> Path:
    return path.parent / f"{path.name}.made_from.json"


def plain(inputs: dict) -> dict:
    return json.loads(json.dumps(inputs, sort_keys=True, default=str))


def is_current(path: Path, inputs: dict) -> bool:
    """`path` exists and was made from exactly `inputs` (its sidecar says so): a stage is redone,
    and so every stage after it, when a setting or an upstream result changed."""
    sidecar = made_from(path)
    return path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == plain(inputs)


def record(path: Path, inputs: dict) -> None:
    made_from(path).write_text(json.dumps(plain(inputs), sort_keys=True))


def weights_digest(model_path: Path) -> str:
    """What a trained model is: its spec, steps, seed, method and EMA weights (model.pt is rewritten
    on every resume, so its bytes are not used)."""
    ckpt = torch.load(model_path, map_location="cpu", weights_only=True)
    digest = hashlib.sha256(json.dumps({k: ckpt.get(k) for k in ("spec", "steps", "seed", "method")},
                                       sort_keys=True, default=str).encode())
    for key in sorted(ckpt["ema"]):
        digest.update(key.encode())
        digest.update(ckpt["ema"][key].cpu().numpy().tobytes())
    return digest.hexdigest()


def ensemble_name(implementation: str, model: str, sampler: str, replicate: int) -> str:
    return replicate_name(f"{implementation}_{model}_{sampler}", replicate)


class ScaledEDMPreconditioner(EDMPreconditioner):
    """PhysicsNeMo's EDMPreconditioner with c_skip, c_out and c_in taken at the Student-t noise's
    scale s = sigma sqrt(nu / (nu - 2)) instead of sigma (c_noise keeps ln(sigma) / 4): t-EDM's
    preconditioning as ours and the paper write it. The shipped class uses sigma whatever the noise."""

    def __init__(self, model, sigma_data: float, nu: float):
        super().__init__(model, sigma_data=sigma_data)
        self.noise_scale = 1.0 if math.isinf(nu) else math.sqrt(nu / (nu - 2))

    def compute_coefficients(self, t):
        c_in, _, c_out, c_skip = super().compute_coefficients(t * self.noise_scale)
        return c_in, t.log() / 4, c_out, c_skip


class PhysicsNeMoMethod:
    """PhysicsNeMo's t-EDM / EDM pieces in the shape `htweather.training.train` takes (`method=`):
    its EDMPreconditioner around our network, its noise scheduler and MSEDSMLoss. `scaled`: the
    preconditioner at the noise's scale (ScaledEDMPreconditioner), everything else PhysicsNeMo's."""

    def __init__(self, scaled: bool = False):
        self.scaled = scaled
        self.name = f"physicsnemo {physicsnemo.__version__}" + (", preconditioned at s" if scaled else "")

    @staticmethod
    def single_nu(spec: assemble.ModelSpec) -> float:
        if len(set(spec.nu)) != 1:
            raise ConfigError(f"model {spec.name}: PhysicsNeMo's scheduler takes one nu, got {spec.nu}")
        return spec.nu[0]

    def scheduler(self, spec: assemble.ModelSpec, training: dict | None = None, levels: dict | None = None):
        opts = {"sigma_data": float(spec.sigma_data)}
        if training is not None:
            opts.update(P_mean=training["P_mean"], P_std=training["P_std"])
        if levels is not None:
            opts.update(sigma_min=levels["sigma_min"], sigma_max=levels["sigma_max"], rho=levels["rho"])
        nu = self.single_nu(spec)
        return EDMNoiseScheduler(**opts) if math.isinf(nu) else StudentTEDMNoiseScheduler(nu=nu, **opts)

    def build(self, spec: assemble.ModelSpec) -> torch.nn.Module:
        if spec.family != "edm" or spec.condition_steps or spec.patch or spec.normalisation != "standard":
            raise ConfigError(f"model {spec.name}: the PhysicsNeMo side runs unconditional EDM-family models only")
        nu = self.single_nu(spec)
        # our U-Net, built exactly as our side builds it (same random draws, so the same initial weights)
        net = assemble.build(spec).net
        if self.scaled:
            return ScaledEDMPreconditioner(net, sigma_data=float(spec.sigma_data), nu=nu)
        return EDMPreconditioner(net, sigma_data=float(spec.sigma_data))

    def load(self, model_path: str | Path):
        """(preconditioner in eval mode with the EMA weights, spec, checkpoint) of a trained model."""
        ckpt = torch.load(model_path, map_location="cpu", weights_only=True)
        spec = assemble.ModelSpec.from_dict(ckpt["spec"])
        precond = self.build(spec)
        precond.load_state_dict(ckpt["ema"])
        return precond.eval().requires_grad_(False), spec, ckpt

    def loss_fn(self, spec: assemble.ModelSpec, training: dict) -> "PhysicsNeMoObjective":
        return PhysicsNeMoObjective(self.scheduler(spec, training))


class PhysicsNeMoObjective:
    """MSEDSMLoss per element. `draw` gives the training loop the batch's diffusion times (the
    loop seeds every step); the Student-t noise is drawn inside PhysicsNeMo's `add_noise`."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def draw(self, model, shape, device=None, dtype=torch.float32):
        return (self.scheduler.sample_time(shape[0], device=device, dtype=dtype),)

    def __call__(self, model, x0, cond=None, draws=None):
        if cond is not None:
            raise ConfigError("the PhysicsNeMo side runs unconditional models only")
        return MSEDSMLoss(model, self.scheduler, reduction="none")(x0, t=None if draws is None else draws[0])


def benchmark_config(path: Path, nu: float | None, replicates: int, training_steps: int | None,
                     threads: int = 1) -> dict:
    """The run's config with the two models of the comparison, EDM and t-EDM with one nu, on the CPU
    with `threads` threads for both sides (PhysicsNeMo's side samples on the CPU; a GPU run of ours
    next to it would compare devices, not implementations)."""
    raw = read_yaml(path)
    raw["models"] = {"edm": {"family": "edm", "nu": "inf"},
                     "tedm": {"family": "edm", "nu": "auto" if nu is None else nu}}
    for key in ("comparisons", "nu_sweep"):
        raw.pop(key, None)
    raw["replicates"] = replicates
    if training_steps is not None:
        raw.setdefault("training", {})["steps"] = training_steps
    raw.setdefault("training", {}).update(device="cpu", compile=False, threads=threads)
    raw.setdefault("sampling", {})["threads"] = threads
    config = load_config(raw, check_paths=False)
    if config["training"]["steps"] == "auto":
        raise ConfigError(f"{path}: training.steps: auto; the benchmark trains both sides for a fixed number of steps")
    return config


def smallest_auto_nu(config: dict, store: Path, stats: dict) -> float:
    """The smallest finite nu that `nu: auto` picks per variable on the training split."""
    spec = assemble.ModelSpec.from_config(config, "tedm")
    tails_of = {v: info["tails"] for v, info in stats["variables"].items()}
    resolved, _, _ = assemble.resolve(spec, load_split(store, "train"), load_mask(store), tails_of)
    finite = [v for v in resolved.nu if math.isfinite(v)]
    if not finite:
        raise ConfigError("nu: auto finds every variable Gaussian on this store: pass --nu")
    log.info("nu auto per variable %s: both sides' t-EDM use nu = %.4g", resolved.nu_by_variable(), min(finite))
    return min(finite)


def method_of(implementation: str):
    return {"htweather": None, "physicsnemo": PhysicsNeMoMethod(), SCALED: PhysicsNeMoMethod(scaled=True)}[implementation]


def sides(model: str, scaled: bool) -> tuple[str, ...]:
    """The implementations that train `model`: the scaled variant differs from PhysicsNeMo only for t-EDM."""
    return IMPLEMENTATIONS + ((SCALED,) if scaled and model == "tedm" else ())


def train_all(config, store, stats_path, out: Path, run: Path, replicates: int, scaled: bool) -> dict:
    """Each side's trainings, alternating sides; ours copied from the pipeline's where it has the
    same model (train() resumes it only if spec, seed and settings match)."""
    paths = {}
    for r in range(replicates):
        for model in MODELS:
            for implementation in sides(model, scaled):
                model_dir = out / "models" / implementation / replicate_name(model, r)
                pipeline_dir = run / "results" / "models" / replicate_name(model, r)
                if (implementation == "htweather" and not (model_dir / "checkpoint.pt").exists()
                        and (pipeline_dir / "checkpoint.pt").exists()):
                    model_dir.mkdir(parents=True, exist_ok=True)
                    for name in ("checkpoint.pt", "train_log.csv"):
                        shutil.copy2(pipeline_dir / name, model_dir / name)
                log.info("training %s %s, replicate %d", implementation, model, r)
                paths[implementation, model, r] = train.train(config, model, store, stats_path, model_dir,
                                                              replicate=r, method=method_of(implementation))
    return paths


def training_throughput(config, store, stats_path, out: Path, steps: int, repeats: int) -> pd.DataFrame:
    """Training examples per second of each side and model, from `repeats` short trainings of
    `steps` steps each, the sides alternating (validation and checkpoints left out of the timing:
    only the steps' `elapsed_s` is read)."""
    short = {**config, "training": {**config["training"], "steps": steps, "checkpoint_every": steps,
                                    "log_every": steps, "snapshots": []}}
    rows = []
    for k in range(repeats):
        for model in MODELS:
            for implementation in IMPLEMENTATIONS:
                model_dir = out / "timing" / implementation / f"{model}.{k}"
                shutil.rmtree(model_dir, ignore_errors=True)
                train.train(short, model, store, stats_path, model_dir, method=method_of(implementation))
                elapsed = float(pd.read_csv(model_dir / "train_log.csv")["elapsed_s"].iloc[-1])
                rows.append({"implementation": implementation, "model": model, "repeat": k,
                             "examples_per_s": steps * config["training"]["batch_size"] / elapsed})
                shutil.rmtree(model_dir)
    return pd.DataFrame(rows)


def sampling_levels(config: dict, steps: int) -> dict:
    edm = config["sampling"]["edm"]
    return {"steps": steps, "sigma_min": edm["sigma_min"], "sigma_max": edm["sigma_max"], "rho": edm["rho"],
            "churn": edm["churn"]}


def sample_ours(config, model_path, stats_path, out: Path, sampler: str, levels: dict) -> None:
    ours = SAMPLERS[sampler][0]
    sampling = {**config["sampling"], "edm": {**config["sampling"]["edm"], **levels, "solver": ours}}
    htweather_sampling.sample({**config, "sampling": sampling}, model_path, stats_path, out)


@torch.no_grad()
def sample_theirs(config, model_path, stats, out: Path, sampler: str, levels: dict, method: PhysicsNeMoMethod) -> None:
    """PhysicsNeMo's sampling as its documentation shows it: `get_denoiser(x0_predictor=...)`,
    `init_latents` and `sample` with its solver, in float32 (its preconditioner's dtype), each
    batch of members seeded as ours are (same seed, same batches). Sampler OUR_HEUN_ON_THEIRS: our
    Heun sampler (float64 state, our Student-t start) on PhysicsNeMo's trained preconditioner."""
    precond, spec, ckpt = method.load(model_path)
    scheduler = method.scheduler(spec, levels=levels)
    denoiser = scheduler.get_denoiser(x0_predictor=precond)
    theirs = SAMPLERS[sampler][1] if sampler in SAMPLERS else sampler
    options = ({"num_steps": levels["steps"], **levels["churn"]} if theirs == "edm_stochastic_heun" else None)
    opts = config["sampling"]
    members, batch = opts["members"], opts["batch_size"]
    seed = replicate_seed(config["seed"], "sample", spec.name, int(ckpt.get("replicate", 0)))
    shape = grid_shape(stats)
    chunks = []
    t0 = time.perf_counter()
    bar = progress(members, f"sample {spec.name} (physicsnemo {theirs})")
    for start in range(0, members, batch):
        n = min(batch, members - start)
        torch.manual_seed(derived_seed(seed, "members", str(start)))
        if sampler == OUR_HEUN_ON_THEIRS:
            noise = StudentTNoise(spec.nu, len(spec.variables), per_channel=False)
            start_noise = noise.sample((n, len(spec.variables), *shape), dtype=torch.float64)
            chunks.append(edm_sampler(AsOurDenoiser(precond), start_noise, "heun", num_steps=levels["steps"],
                                      sigma_min=levels["sigma_min"], sigma_max=levels["sigma_max"],
                                      rho=levels["rho"]).numpy())
            bar.update(n)
            continue
        t_steps = scheduler.timesteps(levels["steps"], dtype=torch.float32)
        latents = scheduler.init_latents((len(spec.variables), *shape), t_steps[0].expand(n), dtype=torch.float32)
        chunks.append(physicsnemo_sample(denoiser, latents, scheduler, num_steps=levels["steps"], solver=theirs,
                                         solver_options=options).double().numpy())
        bar.update(n)
    bar.close()
    seconds = time.perf_counter() - t0
    normalised = np.concatenate(chunks)
    if not np.isfinite(normalised).all():
        raise FloatingPointError(f"physicsnemo {spec.name}: sampler produced non-finite values")
    # its Heun steps evaluate twice, the last step too (the second is discarded); ours skip that one
    nfe = 2 * levels["steps"] - (sampler == OUR_HEUN_ON_THEIRS)
    attrs = {"model": spec.name, "implementation": method.name, "sampler": theirs,
             "replicate": int(ckpt.get("replicate", 0)), "network_evaluations_per_member": nfe, "seed": seed,
             "sampling_seconds": round(seconds, 3), "training_steps": int(ckpt["steps"]),
             "nu": str(["inf" if math.isinf(v) else v for v in spec.nu])}
    write_ensemble(ensemble_dataset(denormalise(normalised, stats), stats, attrs), out)


class AsOurDenoiser:
    """PhysicsNeMo's preconditioner called as our samplers call a denoiser, D(x, sigma)."""

    def __init__(self, precond):
        self.precond = precond

    def __call__(self, x, sigma, cond=None):
        t = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(x.shape[0])
        return self.precond(x.float(), t).double()


def sample_all(config, trained: dict, stats_path, stats, out: Path, levels: dict) -> tuple[dict, dict]:
    """Every ensemble's path, and what each was made from."""
    paths, made = {}, {}
    for (implementation, model, r), model_path in trained.items():
        cross = [OUR_HEUN_ON_THEIRS] if implementation != "htweather" and model == "tedm" and SCALED in {
            i for i, _, _ in trained} else []
        for sampler in [*SAMPLERS, *cross]:
            name = ensemble_name(implementation, model, sampler, r)
            path = out / "samples" / f"{name}.zarr"
            inputs = {"weights": weights_digest(model_path), "sampler": sampler, "levels": levels, "seed": config["seed"],
                      **{k: config["sampling"][k] for k in ("members", "batch_size")}}
            if not is_current(path, inputs):
                log.info("sampling %s", name)
                if implementation == "htweather":
                    sample_ours(config, model_path, stats_path, path, sampler, levels)
                else:
                    sample_theirs(config, model_path, stats, path, sampler, levels, method_of(implementation))
                record(path, inputs)
            paths[name], made[name] = path, inputs
    return paths, made


def evaluate_all(config, ensembles: dict[str, Path], made: dict, store, stats_path, out: Path) -> pd.DataFrame:
    """Each ensemble scored as the pipeline's `evaluate` step scores it, then one metrics table."""
    data = test_fields(store)
    per_model = []
    for name, path in ensembles.items():
        table_path = out / "evaluation" / "per_model" / f"{name}.csv"
        inputs = {"ensemble": made[name], "evaluation": config["evaluation"]}
        if not is_current(table_path, inputs):
            log.info("evaluating %s", name)
            marginal = tails.evaluate_ensemble(config, name, path, store, stats_path, data)
            structure = spatial.structure_table(config, name, path, store, stats_path, data)
            tables.write_table(pd.concat([marginal, structure], ignore_index=True), table_path)
            record(table_path, inputs)
        per_model.append(table_path)
    return tables.combine(per_model, out / "evaluation" / "metrics.csv")


def comparison_pairs(scaled: bool) -> list[list[str]]:
    """Theirs against ours for each model and sampler; t-EDM against EDM within each side; with the
    scaled variant, it against ours, and PhysicsNeMo as shipped against it."""
    pairs = [[f"physicsnemo_{m}_{s}", f"htweather_{m}_{s}"] for m in MODELS for s in SAMPLERS]
    pairs += [[f"{i}_tedm_{s}", f"{i}_edm_{s}"] for i in IMPLEMENTATIONS for s in SAMPLERS]
    if scaled:
        pairs += [[f"{SCALED}_tedm_{s}", f"htweather_tedm_{s}"] for s in SAMPLERS]
        pairs += [[f"physicsnemo_tedm_{s}", f"{SCALED}_tedm_{s}"] for s in SAMPLERS]
        # their trainings with our Heun: against their Heun (the sampler), and against ours (the training)
        pairs += [[f"{i}_tedm_{OUR_HEUN_ON_THEIRS}", f"{i}_tedm_heun"] for i in ("physicsnemo", SCALED)]
        pairs += [[f"{i}_tedm_{OUR_HEUN_ON_THEIRS}", "htweather_tedm_heun"] for i in ("physicsnemo", SCALED)]
    return pairs


def compare_all(config, ensembles: dict[str, Path], made: dict, replicates: int, store, stats_path, out: Path,
                scaled: bool) -> pd.DataFrame:
    path = out / "evaluation" / "comparisons.csv"
    pairs = comparison_pairs(scaled)
    runs = {m: [replicate_name(m, r) for r in range(replicates)] for pair in pairs for m in pair}
    inputs = {"pairs": pairs, "runs": runs, "ensembles": {run: made[run] for m in runs for run in runs[m]},
              "evaluation": config["evaluation"], "seed": config["seed"]}
    if not is_current(path, inputs):
        table = comparisons.comparison_table(config, pairs, runs, {k: str(v) for k, v in ensembles.items()},
                                             store, stats_path)
        tables.write_table(table, path)
        record(path, inputs)
    return pd.read_csv(path)


def cell(row) -> str:
    if row is None or pd.isna(row["value"]):
        return "n/a"
    if pd.isna(row["ci_low"]):
        return f"{row['value']:.3g}"
    return f"{row['value']:.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"


def metric_tables(metrics: pd.DataFrame, stats: dict, scaled: bool) -> list[str]:
    """Per variable, the key tail (and wet) metrics of every ensemble: the mean over trainings with
    its 95 % t interval."""
    means = metrics[metrics["replicate"].astype(str) == "mean"]
    names = [f"{i}_{m}_{s}" for m in MODELS for s in SAMPLERS for i in sides(m, scaled)]
    names += [f"{i}_tedm_{OUR_HEUN_ON_THEIRS}" for i in ("physicsnemo", SCALED) if scaled]
    lines = []
    for variable in stats["channels"]:
        rows = means[means["variable"] == variable]
        wanted = comparisons.key_tail_metrics(stats["variables"][variable]["tails"]) + comparisons.KEY_WET_METRICS
        keys = [k for k in wanted if k in set(rows["metric"])]
        lines += [f"\n### {variable}: mean over trainings [95 % interval]\n",
                  "| ensemble | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name in names:
            found = {r["metric"]: r for _, r in rows[rows["model"] == name].iterrows()}
            lines.append(f"| {name} | " + " | ".join(cell(found.get(k)) for k in keys) + " |")
    return lines


def comparison_lines(table: pd.DataFrame) -> list[str]:
    lines = ["\n### Paired comparisons (difference of mean errors, model - baseline; 95 % interval with the "
             "spread between trainings)\n", "| model | baseline | variable | metric | difference | verdict |",
             "|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['model']} | {r['baseline']} | {r['variable']} | {r['metric']} | "
                     f"{r['difference']:+.3g} [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}] | {r['verdict']} |")
    counts = table.groupby(["model", "baseline"])["verdict"].value_counts().unstack(fill_value=0)
    lines += ["\nVerdicts per pair:\n", counts.to_markdown()]
    return lines


def throughput_lines(timing: pd.DataFrame, ensembles: dict[str, Path]) -> tuple[list[str], pd.DataFrame]:
    """Training examples/s (the head-to-head's mean) and sampling members/s (the mean over trainings
    of members / sampling_seconds, from the ensembles' attributes) of each side, and their ratio."""
    def attrs(implementation, model, sampler):
        prefix = f"{implementation}_{model}_{sampler}"
        opened = [xr.open_zarr(p) for n, p in ensembles.items() if n.split(".")[0] == prefix]
        return [dict(ds.attrs, members=ds.sizes["member"]) for ds in opened]

    rows = []
    for model in MODELS:
        rate = {i: timing[(timing["implementation"] == i) & (timing["model"] == model)].set_index("repeat")[
            "examples_per_s"] for i in IMPLEMENTATIONS}
        ratios = rate["htweather"] / rate["physicsnemo"]  # paired by repeat: the same moment's load
        rows.append({"what": f"training {model}, examples/s", **{i: rate[i].mean() for i in IMPLEMENTATIONS},
                     "ours_over_theirs": ratios.mean(), "range": f"{ratios.min():.2f} to {ratios.max():.2f}"})
        for sampler in SAMPLERS:
            found = {i: attrs(i, model, sampler) for i in IMPLEMENTATIONS}
            rate = {i: np.array([a["members"] / a["sampling_seconds"] for a in found[i]]) for i in IMPLEMENTATIONS}
            ratios = rate["htweather"] / rate["physicsnemo"]  # paired by training
            nfe = {i: found[i][0]["network_evaluations_per_member"] for i in IMPLEMENTATIONS}
            rows.append({"what": f"sampling {model} {sampler}, members/s (network evaluations per member: ours "
                                 f"{nfe['htweather']}, theirs {nfe['physicsnemo']})",
                         **{i: rate[i].mean() for i in IMPLEMENTATIONS}, "ours_over_theirs": ratios.mean(),
                         "range": f"{ratios.min():.2f} to {ratios.max():.2f}"})
    frame = pd.DataFrame(rows)
    lines = ["\n### Throughput (one machine, one run; ratio: mean of the paired ratios, and their range)\n", frame.to_markdown(index=False, floatfmt=".3g")]
    return lines, frame


def run_folders(args, name: str) -> tuple[Path, Path, Path, Path]:
    """(run, out, store, stats) of a benchmark's command line (--run, --out, --replicates,
    --threads), checked before any work; logging and torch's threads set up."""
    setup_logging()
    run = args.run.resolve()
    out = (args.out or run / "results" / "benchmarks" / name).resolve()
    store, stats_path = run / "results" / "data" / "store.zarr", run / "results" / "data" / "stats.json"
    for path in (store, stats_path):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run the pipeline in {run} first (snakemake --cores all)")
    if args.replicates < 2:
        raise SystemExit("--replicates: 2 or more (the comparisons' intervals need the spread between trainings)")
    set_threads(args.threads)
    return run, out, store, stats_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("."), help="the pipeline's working directory (results/ in it)")
    parser.add_argument("--config", type=Path, help="the run's config file (default RUN/config/config.yaml)")
    parser.add_argument("--out", type=Path, help="default RUN/results/benchmarks/peer_physicsnemo")
    parser.add_argument("--replicates", type=int, default=3, help="trainings per side and model (default 3)")
    parser.add_argument("--nu", type=float, help="t-EDM's one nu (default: the smallest nu: auto picks here)")
    parser.add_argument("--sampler-steps", type=int, default=18,
                        help="Heun steps of both samplers (ours 2N - 1 network evaluations, theirs 2N); default 18")
    parser.add_argument("--training-steps", type=int, help="override training.steps (a quick look, not the benchmark)")
    parser.add_argument("--members", type=int, help="override sampling.members")
    parser.add_argument("--timing-steps", type=int, default=100, help="steps of each head-to-head timing training")
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's default: 1)")
    parser.add_argument("--scaled-preconditioner", action="store_true",
                        help="also train PhysicsNeMo's t-EDM with our preconditioning scale (what that difference does)")
    args = parser.parse_args(argv)
    run, out, store, stats_path = run_folders(args, "peer_physicsnemo")
    stats = load_stats(stats_path)
    config_path = args.config or run / "config" / "config.yaml"
    config = benchmark_config(config_path, args.nu, args.replicates, args.training_steps, args.threads)
    if args.nu is None:
        config = benchmark_config(config_path, smallest_auto_nu(config, store, stats), args.replicates,
                                  args.training_steps, args.threads)
    if args.members:
        config["sampling"]["members"] = args.members
    out.mkdir(parents=True, exist_ok=True)
    levels = sampling_levels(config, args.sampler_steps)

    timing_path = out / "training_throughput.csv"
    timing_inputs = {"steps": args.timing_steps, "repeats": args.timing_repeats, "training": config["training"],
                     "models": config["models"]}
    if not is_current(timing_path, timing_inputs):
        tables.write_table(training_throughput(config, store, stats_path, out, args.timing_steps, args.timing_repeats),
                           timing_path)
        record(timing_path, timing_inputs)
    trained = train_all(config, store, stats_path, out, run, args.replicates, args.scaled_preconditioner)
    ensembles, made = sample_all(config, trained, stats_path, stats, out, levels)
    metrics = evaluate_all(config, ensembles, made, store, stats_path, out)
    table = compare_all(config, ensembles, made, args.replicates, store, stats_path, out, args.scaled_preconditioner)
    speed_lines, speed = throughput_lines(pd.read_csv(timing_path), ensembles)
    tables.write_table(speed, out / "throughput.csv")
    nu = config["models"]["tedm"]["nu"]
    lines = [f"## PhysicsNeMo {physicsnemo.__version__} vs htweather on {store}",
             f"\n{args.replicates} trainings per side and model, {config['training']['steps']} steps, batch "
             f"{config['training']['batch_size']}; t-EDM nu = {nu:.4g}, one kappa per sample; "
             f"{config['sampling']['members']} members, {args.sampler_steps} Heun steps (sigma {levels['sigma_min']} "
             f"to {levels['sigma_max']}, rho {levels['rho']}); torch {torch.__version__}, {args.threads} thread(s)."]
    lines += metric_tables(metrics, stats, args.scaled_preconditioner) + comparison_lines(table) + speed_lines
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
