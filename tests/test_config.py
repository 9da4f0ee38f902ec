"""Config validation: defaults, and one-line errors that name the key at fault."""

import math

import pytest
import yaml

from htweather.config import load_config, merge_configs, nu_per_variable
from htweather.errors import ConfigError
from conftest import REPO


def test_defaults_fill_an_empty_config():
    cfg = load_config({})
    assert list(cfg["models"]) == ["edm", "tedm", "flow", "tflow"]
    assert cfg["sampling"]["edm"] == {"solver": "dpmpp_2m", "steps": 10, "sigma_min": 0.002, "sigma_max": 20.0, "rho": 10.0,
                                      "churn": {"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0, "S_noise": 1.0}}
    assert cfg["data"]["variables"]["tp"]["units"] == "mm"
    assert cfg["models"]["tedm"]["sigma_data"] == 1.0


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    # paths are not checked: the real-data configs point at ../shared or the network
    load_config(yaml.safe_load(path.read_text()), check_paths=False)


def test_default_file_matches_schema_defaults():
    """config/config.yaml spells out the schema's defaults: keep the two from drifting apart.
    Only the report's note (the file's says it is the quick tour) and the models differ: the file runs the full comparison (baselines, forecast models, a nu
    sweep), the schema's default is the paper's four models with a scalar nu that fits any
    variable set."""
    shipped = load_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    defaults = load_config({})
    differ = ("models", "nu_sweep")
    assert "quick tour" in shipped["report"].pop("note") and defaults["report"].pop("note") is None  # what the run is
    same = {k: v for k, v in shipped.items() if k not in differ}
    assert same == {k: v for k, v in defaults.items() if k not in differ}
    assert shipped["models"]["tedm"]["nu"] == "auto"
    assert defaults["models"]["tedm"]["nu"] == 5 and defaults["nu_sweep"] is None


@pytest.mark.parametrize("raw,message", [
    ({"trainig": {}}, "unknown key 'trainig'"),
    ({"training": {"stepz": 3}}, "unknown key 'training.stepz'"),
    ({"data": {"variables": {"t@@850": {}}}}, "data.variables: invalid variable name 't@@850'"),
    ({"data": {"region": {"lat": [45, 100]}}}, "data.region.lat.1: 100 is greater than the maximum of 90"),
    ({"models": {"tedm": {"family": "edm", "nu": 2}}}, "models.tedm.nu: must be a number > 2"),
    ({"models": {"tedm": {"family": "edm", "nu": 1.5}}}, "models.tedm.nu"),
    ({"models": {"tedm": {"family": "edm", "nu": {"t2m": 5, "w": 2, "tp": 5}}}}, "models.tedm.nu.w"),
    ({"models": {"tedm": {"family": "edm", "nu": {"t2m": 5}}}}, "models.tedm.nu: no value for variable 'w'"),
    ({"models": {"x": {"family": "gan"}}}, "models.x.family"),
    ({"models": {"truth": {"family": "edm"}}}, "invalid name 'truth'"),
    ({"data": {"source": "/nonexistent/era5_*.nc"}}, "data.source: no file matches '/nonexistent/era5_*.nc'"),
    ({"data": {"variables": {"msl": {}}}}, "data.variables.msl: the synthetic source provides only"),
    ({"data": {"splits": {"train": ["2000-01-01", "2004-03-01"]}}}, "overlaps"),
    ({"data": {"splits": {"test": ["2005-12-31", "2005-07-01"]}}}, "data.splits.test: start"),
    ({"data": {"splits": {"test": ["2010-01-01", "2010-02-01"]}}}, "selects no time"),
    ({"sampling": {"members": 1}}, "sampling.members"),
    ({"models": {"m": {"family": "edm", "nu": "heavy"}}}, "models.m.nu: must be a number > 2"),
    ({"models": {"m": {"family": "edm", "sigma_data": "per_variable"}}}, "models.m.sigma_data"),
    ({"models": {"m": {"family": "edm", "normalisation": "quantile"}}}, "models.m.normalisation"),
    ({"models": {"m": {"family": "edm", "condition_steps": -1}}}, "models.m.condition_steps"),
    ({"models": {"m": {"family": "edm", "kappa": "pixel"}}}, "models.m.kappa"),
    ({"models": {"m": {"family": "edm", "nu": "auto", "kappa": "sample"}}}, "models.m.kappa: 'sample'"),
    ({"models": {"m": {"family": "edm", "nu": {"t2m": "inf", "w": 5, "tp": 4}, "kappa": "sample"}}},
     "models.m.kappa: 'sample' (one kappa for the whole sample) needs one nu"),
    ({"nu_sweep": {"model": "nope", "values": [3]}}, "nu_sweep.model: 'nope' is not a model"),
    ({"nu_sweep": {"model": "tedm", "values": [3], "variables": ["q"]}}, "nu_sweep.variables: 'q'"),
    ({"nu_sweep": {"model": "tedm", "values": [2]}}, "nu_sweep.values.0"),
    ({"models": {"m": {"family": "edm", "condition_steps": 1}},
      "data": {"splits": {"test": ["2005-12-31T12:00", "2005-12-31T18:00"]}}, "forecast": {"lead_steps": 2}},
     "forecast.lead_steps: the test split has 2 time steps"),
    ({"data": {"coarsen": 2, "resolution": 1.0}}, "data.coarsen: give either coarsen"),
    ({"models": {"m": {"family": "edm", "patch": 2}}}, "models.m.patch: 2 is too small"),
])
def test_errors_are_one_line_and_name_the_key(raw, message):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_nu_forms():
    assert nu_per_variable({"nu": "inf"}, ["a", "b"]) == [math.inf, math.inf]
    assert nu_per_variable({"nu": 5}, ["a"]) == [5.0]
    assert nu_per_variable({"nu": {"b": 3, "a": "inf"}}, ["a", "b"]) == [math.inf, 3.0]
    cfg = load_config({"models": {"m": {"family": "flow", "nu": float("inf")}}})
    assert cfg["models"]["m"]["nu"] == math.inf


def test_nu_auto_and_sweep_expansion():
    assert math.isnan(nu_per_variable({"nu": {"a": "auto", "b": 3}}, ["a", "b"])[0])
    cfg = load_config({"models": {"tedm": {"family": "edm", "nu": {"t2m": "inf", "w": "auto", "tp": 5}}},
                       "nu_sweep": {"model": "tedm", "values": [3, 7.5], "variables": ["w", "tp"]}})
    assert list(cfg["models"]) == ["tedm", "tedm_nu3", "tedm_nu7p5"]
    assert cfg["models"]["tedm_nu3"]["nu"] == {"t2m": "inf", "w": 3, "tp": 3}
    assert cfg["models"]["tedm_nu7p5"]["family"] == "edm"
    # every variable by default, and a name that is taken is an error
    cfg = load_config({"models": {"m": {"family": "flow", "nu": "auto"}}, "nu_sweep": {"model": "m", "values": [4]}})
    assert cfg["models"]["m_nu4"]["nu"] == {"t2m": 4, "w": 4, "tp": 4}
    with pytest.raises(ConfigError, match="already taken"):
        load_config({"models": {"m": {"family": "edm"}, "m_nu4": {"family": "edm"}},
                     "nu_sweep": {"model": "m", "values": [4]}})


def test_merge_configs_overrides_leaves():
    base = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    assert merge_configs(base, {"a": {"b": 5}, "d": [3]}) == {"a": {"b": 5, "c": 2}, "d": [3]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1, 2]}


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\ntraining: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line 3: not valid YAML: expected ',' or '\]', but got "
                                          r"'<stream end>' \(while parsing a flow sequence started on line 2\)$"):
        load_config(bad)


def test_replicates_global_and_per_model_and_their_names():
    from htweather.config import replicate_name, replicate_names, replicates, split_replicate

    cfg = load_config({"replicates": 3, "models": {"edm": {"family": "edm", "nu": "inf"},
                                                    "tedm": {"family": "edm", "nu": 5, "replicates": 2}}},
                      check_paths=False)
    assert replicates(cfg, "edm") == 3 and replicates(cfg, "tedm") == 2
    assert replicate_names(cfg, ["edm", "tedm"]) == ["edm", "edm.r1", "edm.r2", "tedm", "tedm.r1"]
    for name in ("edm", "edm.r2", "fc_t_r1"):
        assert replicate_name(*split_replicate(name)) == name
    with pytest.raises(ConfigError, match="replicates"):
        load_config({"replicates": 0}, check_paths=False)


def test_default_comparisons_pair_student_t_models_with_their_twins_and_the_baselines():
    from htweather.config import default_comparisons

    cfg = load_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), check_paths=False)
    assert default_comparisons(cfg) == [["tedm", "edm"], ["tedm", "edm_inc"],
                                        ["tedm", "edm_softlog"], ["tflow", "flow"], ["fc_tedm", "fc_edm"]]


@pytest.mark.parametrize("pairs,message", [
    ([["tedm", "nope"]], "comparisons.0: 'nope' is not a model"),
    ([["edm", "edm"]], "compared with itself"),
    ([["tedm", "fc_edm"]], "one is a forecast model"),
])
def test_bad_comparisons_are_one_line_errors(pairs, message):
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with pytest.raises(ConfigError, match=message):
        load_config({**raw, "comparisons": pairs}, check_paths=False)


@pytest.mark.parametrize("tp,message", [
    ({"trace": 0.1}, "data.variables.tp.trace: needs a lower_bound"),
    ({"dry_below": 0.1}, "data.variables.tp.dry_below: needs a lower_bound"),
    ({"lower_bound": 0.0, "trace": 0.0}, "data.variables.tp.trace: 0.0 is not above the lower_bound"),
    ({"lower_bound": 0.0, "trace": "some"}, "data.variables.tp.trace"),
    ({"dry_below": "smallest_wet"}, "data.variables.tp.dry_below: needs a lower_bound"),
    ({"lower_bound": 0.0, "dry_below": "calibrated"}, "data.variables.tp.dry_below"),
])
def test_bad_trace_amounts_are_one_line_errors(tp, message):
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    raw["data"]["variables"]["tp"] = {"units": "mm", **tp}
    with pytest.raises(ConfigError, match=message):
        load_config(raw, check_paths=False)


def test_stop_variables_are_checked_before_any_job_runs():
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    raw["training"]["stop"] = {"variables": ["tp", "rain"]}
    with pytest.raises(ConfigError, match=r"training.stop.variables: 'rain' is not among data.variables \(t2m, w, tp\)"):
        load_config(raw, check_paths=False)


def test_interleaved_block_splits_with_guard_bands():
    """Blocks of 1 h labelled train, train, train, validation, test in turn; 10 minutes dropped
    after every change of split."""
    import pandas as pd

    from htweather.config import split_labels

    time = pd.date_range("2019-06-10", periods=5 * 60, freq="2min")  # five hours of 2-minute frames
    splits = {"blocks": "1h", "pattern": ["train", "train", "validation", "train", "test"], "guard": "10min"}
    label = split_labels(time, splits)
    assert list(label[:30]) == ["train"] * 30  # block 0: no guard at the start of the record
    assert list(label[30:60]) == ["train"] * 30  # block 1: same split as before, no guard
    assert list(label[60:65]) == [""] * 5 and list(label[65:90]) == ["validation"] * 25
    assert list(label[90:95]) == [""] * 5 and (label[95:120] == "train").all()
    assert (label[120:125] == "").all() and (label[125:150] == "test").all()
    assert (label[150:155] == "").all() and (label[155:180] == "train").all()  # the pattern repeats
    ends = split_labels(time, {**splits, "start": "2019-06-10T00:30", "end": "2019-06-10T01:58"})
    assert (ends[:15] == "").all() and (ends[15:45] == "train").all() and (ends[60:] == "").all()
    ranges = {"train": ["2019-06-10", "2019-06-10T01:00"], "validation": ["2019-06-10T02:00", "2019-06-10T02:58"],
              "test": ["2019-06-10T03:00", "2019-06-10T04:00"]}
    plain = split_labels(time, ranges)
    assert (plain[:31] == "train").all() and (plain[31:60] == "").all() and (plain[60:90] == "validation").all()


@pytest.mark.parametrize("splits, message", [
    ({"blocks": "1h"}, r"data.splits: interleaved splits need both blocks and pattern"),
    ({"blocks": "1h", "pattern": ["train", "train", "validation"]}, r"data.splits.pattern: no block for split 'test'"),
    ({"blocks": "1h", "pattern": ["train", "validation", "test"], "guard": "2h"}, r"data.splits.guard: 2h leaves nothing"),
    ({"blocks": "soon", "pattern": ["train", "validation", "test"]}, r"data.splits.blocks: not a length of time: 'soon'"),
    ({"blocks": "1h", "pattern": ["train", "validation", "test"], "train": ["2000-01-01", "2000-01-31"]},
     r"not both"),
])
def test_bad_splits_are_named(tiny_config, splits, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**tiny_config, "nu_sweep": None, "data": {**tiny_config["data"], "splits": splits}})


def test_block_splits_reach_the_store(tiny_config, tmp_path):
    """Interleaved splits on the synthetic data: every split gets its blocks, the guard bands are
    dropped, and the statistics come from the train blocks."""
    from htweather.data import ingest, synthetic

    cfg = load_config({**tiny_config, "nu_sweep": None, "data": {**tiny_config["data"], "splits": {
        "blocks": "5D", "pattern": ["train", "train", "validation", "test"], "guard": "1D"}}})
    files = synthetic.write_netcdf(cfg["data"]["synthetic"], tmp_path / "raw", seed=1)
    stats = ingest.ingest(cfg, [str(f) for f in files], tmp_path / "s.zarr", tmp_path / "s.json")
    n = {s: stats["splits"][s]["n_times"] for s in ("train", "validation", "test")}
    # 60 days of 6-hourly data = 12 blocks of 5 days; a change of split costs its first 4 steps
    assert n["validation"] == 3 * (20 - 4) and n["test"] == 3 * (20 - 4)
    assert n["train"] == 6 * 20 - 2 * 4  # the train blocks after a test block lose their first day


def test_a_models_training_identity_leaves_out_later_settings_at_their_defaults_and_other_families():
    """Runs made before adam_beta2 and flow_time existed keep their identity (they resume and
    Snakemake does not retrain them); an EDM model ignores flow matching's time distribution."""
    from htweather.config import model_training_settings

    before = {"lr": 5e-4, "P_mean": -1.2, "P_std": 1.2, "regression_steps": None}
    now = {**before, "adam_beta2": 0.999, "flow_time": {"distribution": "uniform", "mean": 0.0, "std": 1.0}}
    assert model_training_settings(now, "flow") == {k: v for k, v in before.items() if k != "regression_steps"}
    assert model_training_settings(now, "edm", residual=True) == before
    changed = {**now, "adam_beta2": 0.99, "flow_time": {"distribution": "logit_normal", "mean": 0.0, "std": 1.0}}
    assert model_training_settings(changed, "flow")["flow_time"]["distribution"] == "logit_normal"
    assert "flow_time" not in model_training_settings(changed, "edm")
    assert model_training_settings(changed, "edm")["adam_beta2"] == 0.99
