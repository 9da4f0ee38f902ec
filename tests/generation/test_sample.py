"""Sampling on a tiny store: physical units, resuming a killed job, the truth ensemble."""

import numpy as np
import pytest
import xarray as xr

from htweather.generation import sample, truth
from htweather.training import train


def test_sampling_writes_physical_ensemble(store, tmp_path):
    cfg, root = store
    model_path = train.train(cfg, "edm", root / "store.zarr", root / "stats.json", tmp_path / "edm")
    out = sample.sample(cfg, model_path, root / "stats.json", tmp_path / "edm.zarr")
    ds = xr.open_zarr(out)
    assert ds.sizes == {"member": cfg["sampling"]["members"], "latitude": 12, "longitude": 12}
    assert ds.tp.attrs["units"] == "mm" and float(ds.tp.min()) >= 0.0  # physical floor
    assert ds.attrs["network_evaluations_per_member"] == 2 * cfg["sampling"]["edm"]["steps"] - 1
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
