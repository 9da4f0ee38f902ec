"""Assemble a model from its config entry: network + noise + preconditioner + loss + sampler.

The four named models differ only in `family` (edm | flow) and `nu`: EDM and Gaussian flow
matching are the nu = inf case of the same code."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import nu_per_variable
from .diffusion import (EDMLoss, EDMPrecond, FlowMatchingLoss, FlowPrecond, StudentTNoise,
                        edm_heun_sampler, flow_sampler)
from .diffusion.samplers import network_evaluations
from .networks import UNet


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model; saved next to its weights."""

    name: str
    family: str
    nu: list[float]
    sigma_data: float
    variables: list[str]
    architecture: dict

    def to_dict(self) -> dict:
        # inf is stored as a string so that checkpoints stay plain data
        return {**self.__dict__, "nu": ["inf" if math.isinf(v) else v for v in self.nu]}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return cls(**{**d, "nu": [math.inf if v == "inf" else float(v) for v in d["nu"]]})

    @classmethod
    def from_config(cls, config: dict, name: str) -> "ModelSpec":
        entry = config["models"][name]
        variables = list(config["data"]["variables"])
        return cls(name=name, family=entry["family"], nu=nu_per_variable(entry, variables),
                   sigma_data=float(entry["sigma_data"]), variables=variables,
                   architecture=dict(config["architecture"]))


def build(spec: ModelSpec) -> EDMPrecond | FlowPrecond:
    channels = len(spec.variables)
    arch = spec.architecture
    net = UNet(channels, channels, base_channels=arch["base_channels"],
               channel_mult=tuple(arch["channel_mult"]), num_blocks=arch["num_blocks"],
               embedding_dim=arch["embedding_dim"], dropout=arch["dropout"])
    noise = StudentTNoise(spec.nu, channels)
    precond = EDMPrecond if spec.family == "edm" else FlowPrecond
    return precond(net, noise, sigma_data=spec.sigma_data)


def loss_fn(spec: ModelSpec, training: dict):
    if spec.family == "edm":
        return EDMLoss(P_mean=training["P_mean"], P_std=training["P_std"])
    return FlowMatchingLoss()


@torch.no_grad()
def generate(model: EDMPrecond | FlowPrecond, spec: ModelSpec, n: int, shape: tuple[int, int],
             sampling: dict, device) -> torch.Tensor:
    """n normalised fields (n, C, H, W) in float64, from Student-t (or Gaussian) noise."""
    noise = model.noise.sample((n, len(spec.variables), *shape), device=device, dtype=torch.float64)
    if spec.family == "edm":
        opts = sampling["edm"]
        return edm_heun_sampler(model, noise, num_steps=opts["steps"], sigma_min=opts["sigma_min"],
                                sigma_max=opts["sigma_max"], rho=opts["rho"])
    opts = sampling["flow"]
    return flow_sampler(model, noise, num_steps=opts["steps"], solver=opts["solver"])


def evaluations_per_sample(spec: ModelSpec, sampling: dict) -> int:
    if spec.family == "edm":
        return network_evaluations("edm", sampling["edm"]["steps"])
    return network_evaluations("flow", sampling["flow"]["steps"], sampling["flow"]["solver"])
