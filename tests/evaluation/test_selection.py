"""nu: select: candidates expanded from the config, scored on the validation split, the best chosen."""

import json

import numpy as np
import pytest
import xarray as xr

from htweather import artifacts
from htweather.config import load_config, with_selected_nu
from htweather.data.store import split_fields
from htweather.errors import ConfigError
from htweather.evaluation import selection


def test_select_expands_one_candidate_per_value(tiny_config):
    cfg = load_config({**tiny_config, "models": {"tedm": {"family": "edm", "nu": {"t2m": "inf", "w": "select",
                                                                                 "tp": "select"}}},
                       "comparisons": [], "nu_sweep": None, "nu_select": {"candidates": [3, 7.5, "inf"]}})
    assert list(cfg["nu_candidates"]) == ["tedm_select_nu3", "tedm_select_nu7p5", "tedm_select_nuinf"]
    cand = cfg["nu_candidates"]["tedm_select_nu7p5"]
    assert cand["nu"] == {"t2m": "inf", "w": 7.5, "tp": 7.5} and cand["select_for"] == "tedm"
    assert cand["replicates"] == 1
    assert with_selected_nu(cfg, "tedm", 3.0)["models"]["tedm"]["nu"] == {"t2m": "inf", "w": 3.0, "tp": 3.0}
    assert "tedm" in cfg["models"] and "tedm_select_nu3" not in cfg["models"]  # not evaluated on the test split


def test_select_is_refused_for_forecast_models(tiny_config):
    with pytest.raises(ConfigError, match=r"models.fc.nu: 'select' .* unconditional models"):
        load_config({**tiny_config, "models": {"fc": {"family": "edm", "nu": "select", "condition_steps": 1}},
                     "comparisons": [], "nu_sweep": None})


def test_the_candidate_closest_to_the_validation_tails_wins(store, tmp_path):
    """Two stand-in ensembles for the candidates: validation fields themselves (right tails) and
    Gaussian fields with the same mean and spread (tails too light): the first wins."""
    cfg, root = store
    cfg = load_config({**cfg, "models": {"tedm": {"family": "edm", "nu": "select"}}, "comparisons": [],
                       "nu_sweep": None, "nu_select": {"candidates": [4, "inf"]}})
    validation = split_fields(root / "store.zarr", "validation")
    rng = np.random.default_rng(0)
    dims = ("member", "latitude", "longitude")
    right = xr.Dataset({v: (dims, x[rng.permutation(len(x))]) for v, x in validation.items()})
    light = xr.Dataset({v: (dims, rng.normal(x.mean(), x.std(), size=x.shape)) for v, x in validation.items()})
    paths = {"tedm_select_nu4": tmp_path / "a.zarr", "tedm_select_nuinf": tmp_path / "b.zarr"}
    for ds, path in ((right, paths["tedm_select_nu4"]), (light, paths["tedm_select_nuinf"])):
        with artifacts.written(path) as tmp:  # as the pipeline writes ensembles: with their digest
            ds.to_zarr(tmp)
    out = selection.write_selection(cfg, "tedm", paths, root / "store.zarr", root / "stats.json",
                                    tmp_path / "sel.json")
    assert out["chosen"] == 4.0 and out["variables"] == ["t2m", "w", "tp"]
    scores = {r["candidate"]: r["tail_error"] for r in out["candidates"]}
    assert scores["tedm_select_nu4"] < 0.2 < scores["tedm_select_nuinf"]
    assert out["margin"] == pytest.approx(scores["tedm_select_nuinf"] - scores["tedm_select_nu4"])
    assert json.loads((tmp_path / "sel.json").read_text()) == out
    assert out["validation_times"] == len(validation["w"])
