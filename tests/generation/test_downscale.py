"""The downscaling baselines and the downscaling models' condition."""

import json

import numpy as np
import torch

from htweather.generation.downscale import chosen_times, quantile_map
from htweather.models import assemble


def test_quantile_mapping_undoes_a_known_shift():
    rng = np.random.default_rng(2)
    observed = rng.normal(10.0, 2.0, (4000, 3))
    modelled = observed - 3.0 + rng.normal(0, 1e-9, observed.shape)  # the same distribution, shifted down
    target = rng.normal(7.0, 2.0, (500, 3))
    mapped = quantile_map(observed, modelled, target, bins=250, lower_bound=None)
    assert abs((mapped - target).mean() - 3.0) < 0.05
    np.testing.assert_allclose(mapped.std(axis=0), target.std(axis=0), rtol=0.05)


def test_quantile_mapping_of_a_scaled_bounded_variable_restores_its_scale():
    rng = np.random.default_rng(3)
    observed = rng.gamma(0.7, 2.0, (4000, 2)) * (rng.random((4000, 2)) < 0.5)
    modelled = 0.5 * observed
    target = 0.5 * rng.gamma(0.7, 2.0, (1000, 2)) * (rng.random((1000, 2)) < 0.5)
    mapped = quantile_map(observed, modelled, target, bins=500, lower_bound=0.0)
    assert mapped.min() >= 0
    ratio = np.quantile(mapped, 0.99) / np.quantile(target, 0.99)
    assert abs(ratio - 2.0) < 0.15


def test_chosen_times_are_spread_over_the_split():
    import pandas as pd
    times = pd.date_range("2004-07-01", periods=100, freq="6h")
    picks = chosen_times(times, 10)
    assert len(picks) == 10 and picks[0] == 0 and picks[-1] == 99
    assert len(chosen_times(times, "all")) == 100


def test_a_downscaling_model_sees_the_coarse_field_as_extra_channels():
    config = {"models": {"ds": {"family": "edm", "nu": 5, "condition_steps": 0, "normalisation": "standard",
                                "sigma_data": 1.0, "downscale": True}},
              "data": {"variables": {"tp": {}, "w": {}}}, "downscaling": {"factor": 4},
              "architecture": {"base_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "embedding_dim": 16,
                               "dropout": 0.0}, "training": {}}
    spec = assemble.ModelSpec.from_config(config, "ds")
    assert spec.coarsen_factor == 4 and spec.condition_channels() == 2
    model = assemble.build(spec)
    assert model.net.stem.in_channels == 4
    torch.manual_seed(0)
    for p in model.parameters():  # the output layers start at 0: give them weights
        torch.nn.init.normal_(p, std=0.1)
    x, cond = torch.randn(3, 2, 16, 16), torch.randn(3, 2, 16, 16)
    out = model(x, torch.full((3,), 1.0), cond=cond)
    assert out.shape == x.shape
    assert not torch.allclose(out, model(x, torch.full((3,), 1.0), cond=torch.zeros_like(cond)))
    assert assemble.ModelSpec.from_dict(spec.to_dict()).coarsen_factor == 4


def _residual_model():
    config = {"models": {"res": {"family": "edm", "nu": 5, "condition_steps": 0, "normalisation": "standard",
                                 "sigma_data": 1.0, "downscale": True, "residual": True}},
              "data": {"variables": {"tp": {}}}, "downscaling": {"factor": 4},
              "architecture": {"base_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "embedding_dim": 16,
                               "dropout": 0.0}, "training": {}}
    spec = assemble.ModelSpec.from_config(config, "res")
    model = assemble.build(spec)
    from htweather.models.regression import build_regression
    model.regression = build_regression(1, spec.condition_channels(), spec.architecture)
    torch.manual_seed(1)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return spec, model.eval()


def test_a_residual_model_generates_the_regression_mean_plus_the_diffused_residual():
    spec, model = _residual_model()
    assert spec.residual and assemble.ModelSpec.from_dict(spec.to_dict()).residual
    cond = torch.randn(2, 1, 16, 16)
    sampling = {"edm": {"solver": "euler", "steps": 3, "sigma_min": 0.002, "sigma_max": 20.0, "rho": 7.0}}
    torch.manual_seed(5)
    with_mean = assemble.generate(model, spec, 2, (16, 16), sampling, "cpu", cond=cond)
    plain = assemble.ModelSpec(**{**spec.__dict__, "residual": False})
    torch.manual_seed(5)
    residual = assemble.generate(model, plain, 2, (16, 16), sampling, "cpu", cond=cond)
    with torch.no_grad():
        mean = model.regression(cond).double()
    torch.testing.assert_close(with_mean, residual + mean)


def test_the_regression_stage_learns_a_known_conditional_mean(tmp_path):
    from htweather.training.regression import train_regression
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(256, 1, 8, 8)).astype(np.float32)
    fields = (0.5 * cond + 0.05 * rng.normal(size=cond.shape)).astype(np.float32)  # E[x | c] = c / 2
    arch = {"base_channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "embedding_dim": 16, "dropout": 0.0}
    opts = {"steps": 200, "regression_steps": None, "lr": 0.003, "weight_decay": 0.0, "warmup_steps": 10,
            "batch_size": 16}
    torch.manual_seed(0)
    identity = json.dumps({"nu": [float("nan")]})  # an unresolved nu: NaN must still compare equal
    net = train_regression(fields, cond, arch, opts, 3, torch.device("cpu"), None, tmp_path / "r.pt", identity)
    with torch.no_grad():
        predicted = net(torch.from_numpy(cond[:64])).numpy()
    before = np.mean((fields[:64]) ** 2)  # the untrained network predicts 0
    after = np.mean((predicted - fields[:64]) ** 2)
    assert after < 0.1 * before
    # read back, not retrained, for the same identity
    again = train_regression(fields, cond, arch, {**opts, "steps": 1}, 3, torch.device("cpu"), None,
                             tmp_path / "r.pt", json.dumps({"nu": [float("nan")]}))
    torch.testing.assert_close(again(torch.from_numpy(cond[:4])), net(torch.from_numpy(cond[:4])))


def test_conserved_fields_reproduce_their_coarse_input():
    from htweather.data.coarsening import Coarsening
    from htweather.generation.downscale import conserved
    stats = {"grid": {"latitude": list(np.linspace(55, 51.25, 16)), "longitude": list(np.linspace(-3, 0.75, 16))},
             "variables": {"tp": {"lower_bound": 0.0, "dry_below": 0.1, "units": "mm"}}, "channels": ["tp"]}
    coarsening = Coarsening(stats, 4)
    rng = np.random.default_rng(4)
    truth = rng.gamma(0.5, 3.0, (5, 16, 16))
    generated = rng.gamma(0.5, 3.0, (5, 3, 16, 16))
    generated[1, 2, 3, 3] = 1e4
    fixed = conserved({"tp": generated}, coarsening, {"tp": truth})["tp"]
    np.testing.assert_allclose(coarsening.coarsen(fixed), np.repeat(coarsening.coarsen(truth)[:, None], 3, 1),
                               rtol=0, atol=0.1)  # up to what the dry threshold (0.1 mm) removes
    assert fixed.max() < 1e3
