"""Importance sampling of extreme training fields and the learning-rate schedule."""

import csv

import numpy as np
import pytest
import torch

from htweather.training import train
from htweather.training.distributed import Group
from htweather.training.examples import StepBatches
from htweather.training.importance import ExtremeSampling, extreme_fields


def test_extreme_fields_are_those_with_a_cell_beyond_the_quantile_on_the_evaluated_tail():
    rng = np.random.default_rng(0)
    fields = rng.normal(size=(1000, 2, 4, 4))
    fields[7, 0, 1, 1] = 50.0    # upper tail of channel 0 (evaluated: upper)
    fields[8, 0, 2, 2] = -50.0   # lower tail of channel 0: not evaluated
    fields[9, 1, 0, 0] = -50.0   # lower tail of channel 1 (evaluated: lower)
    fields[10, 1, 3, 3] = np.nan  # a missing cell is not extreme
    extreme = extreme_fields(fields, ["upper", "lower"], 0.9999)
    assert extreme[7] and extreme[9] and not extreme[8] and not extreme[10]
    both = extreme_fields(fields, ["both", "lower"], 0.9999)
    assert both[8]
    # a cell outside the mask (the store keeps sea as 0; here a large value) is not looked at
    mask = np.ones((4, 4), dtype=bool)
    mask[1, 1] = False
    assert not extreme_fields(fields, ["upper", "lower"], 0.9999, mask)[7]
    # beyond the 0.999 quantile of 16 000 values: about 16 cells, so at most 32 fields over two channels
    assert 10 <= extreme_fields(fields, ["upper", "upper"], 0.999).sum() <= 40


def test_importance_weights_keep_the_objective_unbiased():
    # per-example losses with a rare, large one: E_q[w L] must equal the uniform mean
    n = 500
    losses = np.ones(n)
    extreme = np.zeros(n, dtype=bool)
    extreme[:5] = True
    losses[:5] = 100.0
    sampling = ExtremeSampling(extreme, 0.5)
    q = sampling.probabilities.numpy()
    w = sampling.weights.numpy()
    assert q.sum() == pytest.approx(1.0)
    assert q[:5].sum() == pytest.approx(0.5 + 0.5 * 5 / n)  # half the batch from the 5 storms
    assert float((q * w * losses).sum()) == pytest.approx(losses.mean(), rel=1e-6)
    # and by drawing: the weighted sample mean converges to the uniform mean, with less variance
    gen = torch.Generator().manual_seed(1)
    draws = sampling.draw(200_000, gen).numpy()
    assert float((w[draws] * losses[draws]).mean()) == pytest.approx(losses.mean(), rel=0.01)
    assert np.var(w[draws] * losses[draws]) < np.var(losses)


def test_no_extreme_field_falls_back_to_uniform():
    sampling = ExtremeSampling(np.zeros(10, dtype=bool), 0.3)
    assert np.allclose(sampling.weights.numpy(), 1.0) and sampling.extreme_count == 0
    with pytest.raises(ValueError):
        ExtremeSampling(np.zeros(10, dtype=bool), 1.0)


class _Examples:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def offsets(self, k, generator):
        return np.zeros((k, 2), dtype=np.int64)

    def read(self, positions, offsets=None):
        return (torch.as_tensor(positions, dtype=torch.float32)[:, None, None, None],)


def test_step_batches_carry_the_weights_of_the_examples_they_drew():
    extreme = np.zeros(100, dtype=bool)
    extreme[[3, 50]] = True
    sampling = ExtremeSampling(extreme, 0.5)
    x0, cond, weights = StepBatches(_Examples(100), 64, 7, Group(), sampling)[0]
    positions = x0.reshape(-1).long()
    assert cond is None and torch.equal(weights, sampling.weights[positions])
    assert np.isin(positions.numpy(), [3, 50]).mean() > 0.25  # about half the batch
    uniform = StepBatches(_Examples(100), 64, 7, Group())[0]
    assert uniform[2] is None
    # data-parallel ranks share one global batch, each its slice
    halves = [StepBatches(_Examples(100), 64, 7, Group(rank=r, world=2), sampling)[0] for r in (0, 1)]
    assert torch.equal(torch.cat([h[0] for h in halves]), x0)
    assert torch.equal(torch.cat([h[2] for h in halves]), weights)


def test_learning_rate_warms_up_then_decays_as_an_inverse_square_root():
    assert train.lr_factor(0, 100, None) == pytest.approx(0.01)
    assert train.lr_factor(5000, 100, None) == 1.0
    assert train.lr_factor(999, 100, 1000) == 1.0
    assert train.lr_factor(3999, 100, 1000) == pytest.approx(0.5)


def test_training_with_extreme_sampling_and_decay_runs_and_logs(store, tmp_path, caplog):
    cfg, root = store
    cfg = {**cfg, "training": {**cfg["training"], "extremes": {"fraction": 0.3, "quantile": 0.99},
                               "lr_decay_after": 5}}
    with caplog.at_level("INFO"):
        train.train(cfg, "tedm", root / "store.zarr", root / "stats.json", tmp_path / "m")
    assert "importance sampling:" in caplog.text
    with open(tmp_path / "m" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    steps = cfg["training"]["steps"]
    # after the last step the scheduler stands at `steps`: lr / sqrt((steps + 1) / 5)
    assert float(rows[-1]["lr"]) == pytest.approx(cfg["training"]["lr"] * train.lr_factor(steps, 5, 5), rel=1e-6)
    assert train.lr_factor(steps, 5, 5) < 0.5


def test_the_power_function_ema_has_the_relative_length_asked_for():
    # EDM2: the profile's relative standard deviation; 0.09 is about the warm-up EMA's
    for length in (0.05, 0.09, 0.2):
        g = train.ema_gamma(length)
        assert ((g + 1) / ((g + 2) ** 2 * (g + 3))) ** 0.5 == pytest.approx(length)
    assert train.ema_beta(4199, 0.999, 0.09) == pytest.approx(train.ema_beta(4199, 0.999), abs=1e-4)
    assert train.ema_beta(20000, 0.999) == 0.999 and train.ema_beta(20000, 0.999, 0.09) > 0.999
    # averaging a parameter that grows linearly (p = t at step t) weighs step tau as tau^gamma:
    # the average is (gamma + 1) / (gamma + 2) t, the longer the EMA the further back
    for length in (0.05, 0.2):
        g, p_ema = train.ema_gamma(length), 0.0
        for step in range(5000):
            p_ema += (1 - train.ema_beta(step, 0.999, length)) * (step + 1 - p_ema)
        assert p_ema / 5000 == pytest.approx((g + 1) / (g + 2), rel=0.01)


def test_the_batch_loss_weights_each_example():
    per_element = torch.stack([torch.full((2, 3, 3), 1.0), torch.full((2, 3, 3), 4.0)])
    assert float(train.batch_loss(per_element, None)) == pytest.approx(2.5)
    assert float(train.batch_loss(per_element, torch.tensor([2.0, 0.5]))) == pytest.approx((2.0 + 2.0) / 2)
