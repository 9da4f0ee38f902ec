"""Where PhysicsNeMo's CorrDiff t-EDM (tEDMPrecondSuperRes, tEDMResidualLoss, its legacy
stochastic_sampler) differs from our residual t-EDM, pinned; benchmarks/peer_physicsnemo_downscaling.py
measures what the differences do, docs/user-guide/downscaling.md reports it. Every test needs
PhysicsNeMo and skips where it is not installed (`pip install -e ".[peer]"`): CI never has it."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from htweather.config import load_config
from htweather.data.store import load_stats
from htweather.models import assemble
from htweather.models.diffusion import EDMPrecond, StudentTNoise
from htweather.training import train

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
NU = 5.0
SCALE = math.sqrt(NU / (NU - 2))


@pytest.fixture(scope="module")
def peer():
    pytest.importorskip("physicsnemo", reason="PhysicsNeMo is not installed (pip install -e \".[peer]\")")
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("peer_physicsnemo_downscaling",
                                                  BENCHMARKS / "peer_physicsnemo_downscaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder(torch.nn.Module):
    """A network that records the noise level it is told (c_noise = ln(level) / 4) and returns 0."""

    def __init__(self, out_channels: int = 1):
        super().__init__()
        self.out_channels, self.levels = out_channels, []

    def forward(self, x, noise_labels, class_labels=None, **unused):
        self.levels.extend((4 * noise_labels).exp().tolist())
        return torch.zeros_like(x[:, :self.out_channels])


def t_edm_superres(peer, net):
    precond = peer.tEDMPrecondSuperRes(img_resolution=[8, 8], img_in_channels=1, img_out_channels=1, nu=NU,
                                       model_type="SongUNet", model_channels=8, channel_mult=[1], num_blocks=1,
                                       attn_resolutions=[], sigma_data=1.0)
    precond.model = net
    return precond


def test_t_edm_superres_rescales_the_callers_noise_level_in_place(peer):
    precond = t_edm_superres(peer, Recorder())
    sigma = torch.tensor([2.0])
    precond(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), sigma)
    assert sigma.item() == pytest.approx(2.0 * SCALE)
    sigma = torch.tensor([2.0])
    peer.SigmaCopy(precond)(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), sigma)
    assert sigma.item() == 2.0


def test_physicsnemo_corrdiff_sampler_then_integrates_at_rescaled_levels(peer):
    """Its Heun's levels, as the network is told them. Heun evaluates at t_i, then at t_(i+1) to
    correct (none into 0). The correction's call rescales the sampler's own t_(i+1) (a view into
    its schedule), so from the second step on the first evaluation of each step is told
    sigma nu / (nu - 2), s rescaled once more, and the step's arithmetic, d = (x - D) / t_hat and
    x + (t_next - t_hat) d, uses the rescaled levels. With a copy of sigma: s at every call, as ours."""
    steps = 4
    levels = np.array([(80 ** (1 / 7) + i / (steps - 1) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7 for i in range(steps)])
    calls = np.array([levels[0], *np.repeat(levels[1:], 2)])  # t_0; t_1, t_1; t_2, t_2; t_3, t_3
    shipped = calls * np.array([SCALE, *[SCALE, SCALE**2] * (steps - 1)])
    for wrap, expected in ((lambda p: p, shipped), (peer.SigmaCopy, calls * SCALE)):
        recorder = Recorder()
        with torch.inference_mode():
            peer.stochastic_sampler(wrap(t_edm_superres(peer, recorder)), torch.zeros(1, 1, 8, 8),
                                    torch.zeros(1, 1, 8, 8), num_steps=steps, sigma_min=0.002, sigma_max=80, rho=7)
        seen = np.array(recorder.levels)
        assert len(seen) == 2 * steps - 1
        np.testing.assert_allclose(seen, expected, rtol=1e-5)


def test_their_preconditioning_is_ours_but_for_c_noise(peer):
    """D(x; sigma, c) of tEDMPrecondSuperRes and of our EDMPrecond with the same network: c_skip,
    c_out, c_in at s on both; c_noise ln(s) / 4 on theirs, ln(sigma) / 4 on ours."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 1, 3, padding=1)

    class Net(torch.nn.Module):
        def __init__(self, shift):
            super().__init__()
            self.conv, self.shift = conv, shift

        def forward(self, x, c_noise, *args, **kwargs):
            return self.conv(x) * (c_noise - self.shift).reshape(-1, 1, 1, 1)  # the level, as ours is told it

    x, cond, sigma = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8), torch.tensor([0.1, 1.0, 10.0])
    ours = EDMPrecond(Net(0.0), StudentTNoise(NU, 1), sigma_data=1.0)(x, sigma, cond)
    theirs = t_edm_superres(peer, Net(math.log(SCALE) / 4))(x, cond, sigma.clone())
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def downscaling_run(tmp_path_factory):
    """The tiny downscaling config (one variable, 16 x 16 from 4 x 4) with the two CorrDiff models,
    its synthetic data ingested: (config, folder holding store.zarr and stats.json)."""
    from htweather.data import ingest, synthetic

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "test-downscaling.yaml").read_text())
    raw["models"] = {"edm_res": {"family": "edm", "nu": "inf", "downscale": True, "residual": True},
                     "tedm_res": {"family": "edm", "nu": NU, "downscale": True, "residual": True}}
    raw["downscaling"] = {**raw["downscaling"], "times": 8, "members": 2}
    raw["training"] = {**raw["training"], "steps": 6, "regression_steps": 4, "checkpoint_every": 6, "snapshots": []}
    cfg = load_config(raw, check_paths=False)
    root = tmp_path_factory.mktemp("downscaling")
    files = synthetic.write_netcdf(cfg["data"]["synthetic"], root / "raw", seed=cfg["seed"])
    ingest.ingest(cfg, [str(f) for f in files], root / "store.zarr", root / "stats.json")
    return cfg, root


def test_their_method_starts_from_our_initial_weights(peer, downscaling_run):
    spec = assemble.ModelSpec.from_config(downscaling_run[0], "tedm_res")
    spec = assemble.ModelSpec(**{**spec.__dict__, "sigma_data": 0.5})
    torch.manual_seed(3)
    ours = assemble.build(spec).net.state_dict()
    torch.manual_seed(3)
    theirs = peer.SuperResMethod((16, 16)).build(spec).model.net.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_benchmark_trains_and_downscales_physicsnemos_corrdiff_in_our_loop(peer, downscaling_run, tmp_path):
    cfg, root = downscaling_run
    stats = load_stats(root / "stats.json")
    method = peer.SuperResMethod((16, 16))
    model_path = train.train(cfg, "tedm_res", root / "store.zarr", root / "stats.json", tmp_path / "m", method=method)
    ckpt = torch.load(model_path, weights_only=True)
    assert ckpt["method"].startswith("physicsnemo") and ckpt["regression"] is not None
    levels = peer.levels_of(cfg, 3)
    for sampler, nfe in ((peer.HEUN, 5), (peer.SIGMA_COPY, 5), (peer.OUR_HEUN, 5)):  # 2 x 3 - 1: Heun
        out = tmp_path / f"{sampler}.zarr"
        peer.downscale_theirs(cfg, model_path, root / "store.zarr", stats, out, sampler, levels)
        ds = xr.open_zarr(out)
        assert ds.sizes["member"] == 2 and ds.sizes["init_time"] == 8 and ds.sizes["lead"] == 1
        assert ds.attrs["network_evaluations_per_field"] == nfe
        assert all(np.isfinite(ds[v].values).all() for v in ds.data_vars)
