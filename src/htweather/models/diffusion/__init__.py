"""Heavy-tailed diffusion, one concept per module (after NVlabs/edm and PhysicsNeMo's layout):

- `noise`: Student-t noise (Gaussian as nu = inf);
- `preconditioning`: EDM and flow-matching wrappers around a raw network;
- `losses`: the training objectives;
- `samplers`: ODE solvers (and EDM's stochastic sampler) that turn noise into fields.
"""

from .losses import EDMLoss, FlowMatchingLoss
from .noise import StudentTNoise
from .preconditioning import EDMPrecond, FlowPrecond
from .samplers import (edm_dpmpp_2m_sampler, edm_euler_sampler, edm_heun_sampler, edm_sampler, edm_sigma_steps,
                       edm_stochastic_sampler, flow_sampler)

__all__ = [
    "StudentTNoise", "EDMPrecond", "FlowPrecond", "EDMLoss", "FlowMatchingLoss",
    "edm_sampler", "edm_heun_sampler", "edm_euler_sampler", "edm_dpmpp_2m_sampler", "edm_stochastic_sampler",
    "edm_sigma_steps", "flow_sampler",
]
