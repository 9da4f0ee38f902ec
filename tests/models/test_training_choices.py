"""Model choices for reaching the tail: EDM2's learned loss weighting (starts as the fixed
weighting, learns ln E[L | noise level], trains, saves and samples) and the network's output norm."""

import math

import pytest
import torch

from htweather.models import assemble
from htweather.models.diffusion import EDMLoss, EDMPrecond, FlowMatchingLoss, FlowPrecond, StudentTNoise
from htweather.models.diffusion.weighting import LogVarianceHead, weighted
from htweather.training import train


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x, c_noise):
        return self.conv(x)


@pytest.mark.parametrize("family", ["edm", "flow"])
def test_the_learned_weighting_starts_as_the_fixed_one(family):
    torch.manual_seed(0)
    net, noise = Tiny(), StudentTNoise(5.0, 2)
    precond, loss = (EDMPrecond, EDMLoss()) if family == "edm" else (FlowPrecond, FlowMatchingLoss())
    fixed = precond(net, noise, sigma_data=0.7)
    learned = precond(net, noise, sigma_data=0.7, loss_weighting=LogVarianceHead())
    x0 = torch.randn(8, 2, 6, 6)
    draws = loss.draw(fixed, x0.shape)
    assert torch.allclose(loss(fixed, x0, draws=draws), loss(learned, x0, draws=draws))


def test_the_head_learns_the_log_of_each_levels_expected_loss():
    # two noise levels whose per-element losses are exponential with means 0.2 and 5: the
    # minimiser of E[L / exp(u) + u] is u = ln E[L | level]
    torch.manual_seed(1)
    head = LogVarianceHead()
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    levels = torch.tensor([-0.5, 0.5])
    means = torch.tensor([0.2, 5.0])
    for _ in range(2000):
        which = torch.randint(2, (256,))
        losses = torch.distributions.Exponential(1 / means[which]).sample()[:, None, None, None]
        objective = weighted(losses, head, levels[which]).mean()
        opt.zero_grad()
        objective.backward()
        opt.step()
    u = head(levels).reshape(-1).detach()
    assert torch.allclose(u, means.log(), atol=0.2)


def test_a_model_trained_with_learned_weighting_saves_loads_and_samples(store, tmp_path):
    cfg, root = store
    cfg = {**cfg, "training": {**cfg["training"], "loss_weighting": "learned"}}
    path = train.train(cfg, "tedm", root / "store.zarr", root / "stats.json", tmp_path / "m")
    model, spec, _ = assemble.load_model(path, torch.device("cpu"))
    assert spec.loss_weighting == "learned" and model.loss_weighting is not None
    assert model.loss_weighting.linear.weight.abs().sum() > 0  # it learned something
    fields = assemble.generate(model, spec, 2, (8, 8), cfg["sampling"], torch.device("cpu"))
    assert torch.isfinite(fields).all()
    # the default weighting leaves the saved spec as it was
    assert "loss_weighting" not in assemble.ModelSpec.from_config(
        {**cfg, "training": {**cfg["training"], "loss_weighting": "fixed"}}, "tedm").to_dict()
    assert math.isfinite(spec.sigma_data if isinstance(spec.sigma_data, float) else spec.sigma_data[0])


def test_without_the_output_norm_the_network_sees_a_fields_amplitude():
    # a group norm before the output layer makes the network blind to its input's scale
    from htweather.models.networks.unet import UNet
    torch.manual_seed(0)
    x, c = torch.randn(2, 3, 16, 16), torch.zeros(2)
    ratios = {}
    for norm in (True, False):
        net = UNet(3, 3, 16, (1, 2, 2), 1, 64, 0.0, output_norm=norm)
        torch.nn.init.normal_(net.head.weight, std=0.1)  # zero at initialisation
        with torch.no_grad():
            ratios[norm] = float(net(3 * x, c).std() / net(x, c).std())
    assert ratios[True] < 1.2 and ratios[False] > 2.0
    # the default spec leaves the setting out, so earlier models' specs still match
    assert "output_norm" not in assemble.network_settings({"base_channels": 16, "output_norm": True})
    assert assemble.network_settings({"output_norm": False}) == {"output_norm": False}


def test_the_learned_weighting_applies_in_training_only():
    # validation losses (of the EMA model, in eval mode) stay the fixed weighting's: comparable
    # between checks and positive, as the stop rule and the loss figure need
    torch.manual_seed(2)
    head = LogVarianceHead()
    torch.nn.init.normal_(head.linear.weight)
    losses, c = torch.rand(4, 1, 2, 2), torch.randn(4)
    assert not torch.allclose(weighted(losses, head, c), losses)
    head.eval()
    assert torch.equal(weighted(losses, head, c), losses)


def test_logit_normal_flow_times_have_their_law_and_uniform_stays_uniform():
    """FlowMatchingLoss's `draw`: logit t ~ N(mean, std^2) under logit_normal (a KS test against
    scipy's normal), t ~ U(0, 1) by default."""
    from scipy import stats

    precond = FlowPrecond(lambda x, t, cond=None: x, StudentTNoise(float("inf"), 1))
    torch.manual_seed(0)
    t, _ = FlowMatchingLoss("logit_normal", mean=0.5, std=0.8).draw(precond, (20000, 1, 2, 2))
    logit = torch.logit(t.double()).flatten().numpy()
    assert stats.kstest(logit, stats.norm(0.5, 0.8).cdf).pvalue > 0.01
    assert stats.kstest(logit, stats.norm(0.0, 1.0).cdf).pvalue < 1e-6  # the test can tell another law apart
    u, _ = FlowMatchingLoss().draw(precond, (20000, 1, 2, 2))
    assert stats.kstest(u.flatten().numpy(), "uniform").pvalue > 0.01
    with pytest.raises(ValueError, match="lognormal"):
        FlowMatchingLoss("lognormal")


def test_the_flow_time_and_adams_beta2_reach_training(store, tmp_path):
    cfg, root = store
    opts = {**cfg["training"], "adam_beta2": 0.99, "flow_time": {"distribution": "logit_normal", "mean": -0.5,
                                                                 "std": 1.5}}
    spec = assemble.ModelSpec.from_config({**cfg, "training": opts}, "tflow")
    loss = assemble.loss_fn(spec, opts)
    assert (loss.time, loss.mean, loss.std) == ("logit_normal", -0.5, 1.5)
    assert assemble.loss_fn(spec, cfg["training"]).time == "uniform"  # the schema's default
    train.train({**cfg, "training": {**opts, "steps": 10}}, "tflow", root / "store.zarr", root / "stats.json",
                tmp_path / "m")
    state = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
