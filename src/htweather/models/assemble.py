"""Assemble a model from its config entry: network + noise + preconditioner + loss + sampler.

Models differ only in their entry: `family` (edm | flow) and `nu` (EDM and Gaussian flow
matching are the nu = inf case of the same code), `sigma_data` (one number, or per channel:
PCP), `normalisation` (standard, or inc: inverse-CDF) and `condition_steps` (0: unconditional;
h > 0: a forecast of the next state from the h previous ones).

Settings that depend on the training data (`nu: auto`, `sigma_data: per_channel`, the INC
table) are resolved once, by `resolve`, when training starts, and saved with the weights."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import artifacts
from ..config import nu_per_variable
from ..errors import ArtifactError
from . import input_maps, tail_index
from .regression import build_regression
from .diffusion import (EDMLoss, EDMPrecond, FlowMatchingLoss, FlowPrecond, StudentTNoise, edm_sampler,
                        flow_sampler)
from .diffusion.samplers import network_evaluations
from .diffusion.weighting import LogVarianceHead
from .networks import UNet


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model; saved next to its weights."""

    name: str
    family: str
    nu: list[float]
    sigma_data: float | list[float]
    variables: list[str]
    architecture: dict
    condition_steps: int = 0
    normalisation: str = "standard"
    # kappa per sample and channel ("channel") or one per sample ("sample"); "auto": the paper's
    # one per sample where every variable has the same nu
    kappa: str = "auto"
    # training.patch: trained on P x P crops, with the pixels' grid positions as 2 input channels
    patch: int | None = None
    # downscaling.factor for a downscaling model (models.NAME.downscale), 0 otherwise: the
    # condition is then the coarse field brought back to the fine grid (data.coarsening)
    coarsen_factor: int = 0
    # CorrDiff's two stages (models.NAME.residual, downscaling only): a regression U-Net for the
    # conditional mean, and this model's diffusion on the residual (models.regression)
    residual: bool = False
    # training.loss_weighting: "learned" adds EDM2's per-noise-level weighting head (training only)
    loss_weighting: str = "fixed"

    def to_dict(self) -> dict:
        # inf is stored as a string so that checkpoints stay plain data; the default weighting is
        # left out, so that specs (and the identities built from them) of earlier runs still match
        out = {**self.__dict__, "nu": ["inf" if math.isinf(v) else v for v in self.nu]}
        if out["loss_weighting"] == "fixed":
            del out["loss_weighting"]
        return out

    def nu_by_variable(self) -> dict:
        """{variable: nu}, "inf" for Gaussian (plain data, e.g. for ensemble attributes)."""
        return {v: ("inf" if math.isinf(nu) else nu) for v, nu in zip(self.variables, self.nu)}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        # a model saved before the kappa setting drew one kappa per sample and channel
        return cls(**{"kappa": "channel", **d, "nu": [math.inf if v == "inf" else float(v) for v in d["nu"]]})

    def kappa_per_channel(self) -> bool | None:
        return {"auto": None, "sample": False, "channel": True}[self.kappa]

    @classmethod
    def from_config(cls, config: dict, name: str) -> "ModelSpec":
        """The spec as configured; `nu: auto` entries are NaN and `sigma_data: per_channel` is
        None until `resolve` fills them in from the training data."""
        entry = config["models"][name]
        variables = list(config["data"]["variables"])
        sigma_data = None if entry["sigma_data"] == "per_channel" else float(entry["sigma_data"])
        return cls(name=name, family=entry["family"], nu=nu_per_variable(entry, variables),
                   sigma_data=sigma_data, variables=variables, architecture=network_settings(config["architecture"]),
                   condition_steps=int(entry["condition_steps"]), normalisation=entry["normalisation"],
                   kappa=entry.get("kappa", "auto"), patch=model_patch(entry, config.get("training", {})),
                   coarsen_factor=int(config["downscaling"]["factor"]) if entry.get("downscale") else 0,
                   residual=bool(entry.get("residual")),
                   loss_weighting=config.get("training", {}).get("loss_weighting", "fixed"))

    def condition_channels(self) -> int:
        """Channels the denoiser sees besides the noisy field: the previous states (forecasts) or
        the coarse field (downscaling)."""
        return len(self.variables) * (self.condition_steps + (1 if self.coarsen_factor else 0))


def network_settings(architecture: dict) -> dict:
    """The architecture as a spec records it: the output norm only where it is left out, so that
    the specs (and identities) of models built before the setting existed still match."""
    return {k: v for k, v in architecture.items() if not (k == "output_norm" and v)}


def needs_training_data(spec: ModelSpec) -> bool:
    """Whether `resolve` has settings to fit from the training fields."""
    return spec.normalisation != "standard" or spec.sigma_data is None or any(math.isnan(v) for v in spec.nu)


def resolve(spec: ModelSpec, fields, mask, tails: dict[str, str]):
    """Fill in the data-dependent settings from the training fields (time, C, H, W, standardised).

    Returns (spec, input_map or None, tail_indices): per variable whose nu was `auto`, the Hill
    estimate and the value chosen (tail_index.choose_nu)."""
    input_map = input_maps.fit(spec.normalisation, fields, mask)
    model_fields = input_map.forward(fields) if input_map is not None else fields
    nu, tail_indices = list(spec.nu), {}
    for c, name in enumerate(spec.variables):
        if math.isnan(nu[c]):
            values = model_fields[:, c][:, mask] if mask is not None else model_fields[:, c]
            # the noise is symmetric: a lower tail of interest is fitted on both tails, as before
            tail_indices[name] = tail_index.choose_nu(values.ravel(), "upper" if tails[name] == "upper" else "both")
            nu[c] = tail_indices[name]["nu"]
    sigma_data = spec.sigma_data
    if sigma_data is None:
        sigma_data = input_maps.channel_sigma_data(model_fields, mask)
    resolved = ModelSpec(**{**spec.__dict__, "nu": nu, "sigma_data": sigma_data})
    return resolved, input_map, tail_indices


def build(spec: ModelSpec) -> EDMPrecond | FlowPrecond:
    channels = len(spec.variables)
    arch = spec.architecture
    positions = POSITION_CHANNELS if spec.patch else 0
    net = UNet(channels + spec.condition_channels() + positions, channels, base_channels=arch["base_channels"],
               channel_mult=tuple(arch["channel_mult"]), num_blocks=arch["num_blocks"],
               embedding_dim=arch["embedding_dim"], dropout=arch["dropout"],
               output_norm=arch.get("output_norm", True))
    noise = StudentTNoise(spec.nu, channels, per_channel=spec.kappa_per_channel())
    precond = EDMPrecond if spec.family == "edm" else FlowPrecond
    head = LogVarianceHead() if spec.loss_weighting == "learned" else None
    return precond(net, noise, sigma_data=spec.sigma_data, loss_weighting=head)


def loss_fn(spec: ModelSpec, training: dict):
    if spec.family == "edm":
        return EDMLoss(P_mean=training["P_mean"], P_std=training["P_std"])
    time = training.get("flow_time") or {}
    return FlowMatchingLoss(time.get("distribution", "uniform"), time.get("mean", 0.0), time.get("std", 1.0))


POSITION_CHANNELS = 2


def model_patch(entry: dict, training: dict) -> int | None:
    """The crop size a model trains on: its own `patch` (0 = whole fields), else training.patch."""
    patch = entry.get("patch")
    patch = training.get("patch") if patch is None else patch
    return patch or None


def grid_positions(shape: tuple[int, int]) -> torch.Tensor:
    """(2, H, W) float32: each pixel's row and column in the whole grid, scaled to [-1, 1]. A
    patch-trained model sees the crop of these that its patch covers, and the whole of them when
    it generates whole fields, so every pixel is told where it is."""
    rows, cols = (torch.linspace(-1.0, 1.0, n) if n > 1 else torch.zeros(1) for n in shape)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"))


def with_positions(spec: ModelSpec, cond: torch.Tensor | None, n: int, shape: tuple[int, int],
                   device) -> torch.Tensor | None:
    """The network's conditioning channels for whole fields: the previous states (forecasts),
    then, for a patch-trained model, the whole grid's positions."""
    if not spec.patch:
        return cond
    positions = grid_positions(shape).to(device)[None].expand(n, -1, -1, -1)
    return positions if cond is None else torch.cat([cond, positions.to(cond.dtype)], dim=1)


@torch.no_grad()
def generate(model: EDMPrecond | FlowPrecond, spec: ModelSpec, n: int, shape: tuple[int, int],
             sampling: dict, device, cond: torch.Tensor | None = None) -> torch.Tensor:
    """n fields (n, C, H, W) in the model's units, float64, from Student-t (or Gaussian) noise;
    `cond` (n, C * condition_steps, H, W): the previous states, for a forecast; (n, C, H, W): the
    coarse field on the fine grid, for a downscaling model. A patch-trained
    model generates the whole field in one pass, given the whole grid's positions. The solver is
    the configured one (sampling.edm.solver, sampling.flow.solver) for every caller: ensembles,
    snapshots, forecasts and the training's tail checks."""
    cond = with_positions(spec, cond, n, shape, device)
    noise = model.noise.sample((n, len(spec.variables), *shape), device=device, dtype=torch.float64)
    if spec.family == "edm":
        opts = sampling["edm"]
        x = edm_sampler(model, noise, solver=opts["solver"], num_steps=opts["steps"],
                        sigma_min=opts["sigma_min"], sigma_max=opts["sigma_max"], rho=opts["rho"],
                        churn=opts.get("churn"), cond=cond)
    else:
        opts = sampling["flow"]
        x = flow_sampler(model, noise, num_steps=opts["steps"], solver=opts["solver"], cond=cond,
                         sigma_min=opts["sigma_min"], sigma_max=opts["sigma_max"], rho=opts["rho"])
    if spec.residual:  # CorrDiff: the regression stage's mean plus the generated residual
        x = x + model.regression(cond.float()).to(x.dtype)
    return x


def evaluations_per_sample(spec: ModelSpec, sampling: dict) -> int:
    if spec.family == "edm":
        return network_evaluations("edm", sampling["edm"]["steps"], sampling["edm"]["solver"])
    return network_evaluations("flow", sampling["flow"]["steps"], sampling["flow"]["solver"])


def load_model(path: str | Path, device) -> tuple[torch.nn.Module, ModelSpec, dict]:
    """The EMA model from `model.pt`, in eval mode, with its spec and metadata (ckpt["input_map"]
    becomes its input map: InverseCDF, SoftLog, or None)."""
    artifacts.verify(path)
    try:
        with warnings.catch_warnings():  # torch warns of the pickle protocol of garbage before failing on it
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # verified, yet unreadable: written by a torch this one cannot read
        raise ArtifactError(f"{path}: cannot be read by torch {torch.__version__} ({type(exc).__name__}); "
                            f"{artifacts.rerun_hint(Path(path))}") from None
    if not isinstance(ckpt, dict) or not {"spec", "ema"} <= set(ckpt):
        raise ArtifactError(f"{path}: not a trained model (no spec and weights); {artifacts.rerun_hint(Path(path))}")
    if ckpt.get("method"):  # another implementation's pieces, trained by a benchmark
        raise ValueError(f"{path}: trained with {ckpt['method']}'s preconditioner and loss, not htweather's; "
                         "only the benchmark that trained it can sample it")
    spec = ModelSpec.from_dict(ckpt["spec"])
    model = build(spec).to(device)
    model.load_state_dict(ckpt["ema"])
    if spec.residual:  # the regression stage rides along, for `generate`
        model.regression = build_regression(len(spec.variables), spec.condition_channels(), spec.architecture)
        model.regression.load_state_dict(ckpt["regression"])
        model.regression.to(device)
    ckpt["input_map"] = input_maps.from_state(ckpt.get("input_map"))
    return model.eval().requires_grad_(False), spec, ckpt
