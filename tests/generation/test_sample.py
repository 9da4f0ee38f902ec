"""Sampling on a tiny store: physical units, resuming a killed job, the truth ensemble."""

import numpy as np
import pytest
import xarray as xr

from htweather.generation import sample, truth
from htweather.models.diffusion.samplers import network_evaluations
from htweather.training import train


def test_sampling_writes_physical_ensemble(store, tmp_path):
    cfg, root = store
    model_path = train.train(cfg, "edm", root / "store.zarr", root / "stats.json", tmp_path / "edm")
    out = sample.sample(cfg, model_path, root / "stats.json", tmp_path / "edm.zarr")
    ds = xr.open_zarr(out)
    assert ds.sizes == {"member": cfg["sampling"]["members"], "latitude": 12, "longitude": 12}
    assert ds.tp.attrs["units"] == "mm" and float(ds.tp.min()) >= 0.0  # physical floor
    edm = cfg["sampling"]["edm"]
    assert ds.attrs["network_evaluations_per_member"] == network_evaluations("edm", edm["steps"], edm["solver"])
    assert np.isfinite(ds.w.values).all()
    # same seed, same ensemble
    again = sample.sample(cfg, model_path, root / "stats.json", tmp_path / "edm2.zarr")
    np.testing.assert_array_equal(xr.open_zarr(again).w.values, ds.w.values)


def test_killed_sampling_resumes_without_redoing_finished_members(store, tmp_path, monkeypatch):
    cfg, root = store
    cfg = {**cfg, "sampling": {**cfg["sampling"], "members": 12, "batch_size": 4}}
    model_path = train.train(cfg, "tedm", root / "store.zarr", root / "stats.json", tmp_path / "tedm")
    straight = sample.sample(cfg, model_path, root / "stats.json", tmp_path / "straight.zarr")

    from htweather.models import assemble as models
    real_generate, calls = models.generate, []

    def killed_in_third_batch(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(models, "generate", killed_in_third_batch)
    out = tmp_path / "resumed.zarr"
    with pytest.raises(KeyboardInterrupt):
        sample.sample(cfg, model_path, root / "stats.json", out)
    assert not out.exists() and len(list((tmp_path / ".resumed.zarr.chunks").glob("*.npy"))) == 2
    calls.clear()
    sample.sample(cfg, model_path, root / "stats.json", out)
    assert calls == [4]  # only the unfinished batch
    assert not (tmp_path / ".resumed.zarr.chunks").exists()
    for v in ("t2m", "w", "tp"):
        np.testing.assert_array_equal(xr.open_zarr(out)[v].values, xr.open_zarr(straight)[v].values)
    # other weights: finished batches of the old model are not reused
    other = train.train({**cfg, "seed": 8}, "tedm", root / "store.zarr", root / "stats.json", tmp_path / "other")
    monkeypatch.setattr(models, "generate", killed_in_third_batch)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        sample.sample(cfg, model_path, root / "stats.json", out.with_name("again.zarr"))
    calls.clear()
    monkeypatch.setattr(models, "generate", lambda *a, **k: (calls.append(a[2]), real_generate(*a, **k))[1])
    sample.sample(cfg, other, root / "stats.json", out.with_name("again.zarr"))
    assert calls == [4, 4, 4]


def test_truth_ensemble_matches_store_grid(store, tmp_path):
    cfg, root = store
    ds = xr.open_zarr(truth.sample_truth(cfg, root / "stats.json", tmp_path / "truth.zarr"))
    stored = xr.open_zarr(root / "store.zarr")
    np.testing.assert_array_equal(ds.latitude.values, stored.latitude.values)
    assert set(ds.data_vars) == {"t2m", "w", "tp"}


def test_lead_one_forecasts_from_a_snapshot_share_start_times_and_members(store, tmp_path):
    """The convergence check's forecasts (leads=1) start where the model's own forecasts start
    (chosen for forecast.lead_steps) with the same first-lead members: only the weights differ."""
    from htweather.generation import forecast

    cfg, root = store
    cfg = {**cfg, "forecast": {**cfg["forecast"], "init_times": 3, "lead_steps": 3, "rollout_chains": 0}}
    model_path = train.train(cfg, "fc_tedm", root / "store.zarr", root / "stats.json", tmp_path / "fc")
    forecast.forecast(cfg, model_path, root / "store.zarr", root / "stats.json", tmp_path / "full.zarr",
                      tmp_path / "seq.zarr")
    forecast.forecast(cfg, model_path, root / "store.zarr", root / "stats.json", tmp_path / "one.zarr", None, leads=1)
    full, one = xr.open_zarr(tmp_path / "full.zarr"), xr.open_zarr(tmp_path / "one.zarr")
    assert one.sizes["lead"] == 1 and full.sizes["lead"] == 3
    np.testing.assert_array_equal(one.init_time.values, full.init_time.values)
    np.testing.assert_array_equal(one.w.values[:, 0], full.w.values[:, 0])
    assert not (tmp_path / "seq.zarr").exists() or xr.open_zarr(tmp_path / "seq.zarr").sizes["chain"] == 0


def test_an_unconditional_ensemble_wetter_than_the_validation_split_is_dried_to_it():
    """Generation's post-processing: the dry threshold raised (dry_below: auto), and the raised
    threshold recorded on the ensemble."""
    import json
    from htweather.generation.ensembles import generated_fields
    rng = np.random.default_rng(0)
    normalised = rng.standard_normal((8, 1, 6, 6))  # about half the values at or below 0
    stats = {"channels": ["rain"], "grid": {},
             "variables": {"rain": {"transform": "identity", "mean": 0.0, "std": 1.0, "lower_bound": 0.0,
                                    "units": "mm h-1", "dry_below": 0.01, "dry_below_rule": "calibrated",
                                    "validation_dry_fraction": 0.75}}}
    attrs = {}
    fields = generated_fields(normalised, stats, attrs)
    assert (fields["rain"] == 0).mean() == pytest.approx(0.75, abs=1 / fields["rain"].size)
    threshold = json.loads(attrs["dry_below_calibrated"])["rain"]
    assert threshold == pytest.approx(np.quantile(normalised, 0.75), abs=0.2)
    stats["variables"]["rain"]["dry_below_rule"] = "fixed"
    fields = generated_fields(normalised, stats, attrs)
    assert (fields["rain"] == 0).mean() == pytest.approx((normalised < 0.01).mean())
    assert json.loads(attrs["dry_below_calibrated"]) == {}
