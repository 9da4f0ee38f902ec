"""The sampler budget's settings and its report table (the sampling itself runs end to end in
tests/workflow/test_workflow.py on the tiny config)."""

import numpy as np
import pandas as pd
import pytest

from htweather.config import load_config
from htweather.evaluation.sampler_budget import REFERENCE, family_settings, label, parse_setting
from htweather.report.page import sampler_budget_rows


def test_settings_parse_in_one_order_and_reject_typos():
    a, b = parse_setting("dpmpp_2m:10:sigma_max=20:rho=10"), parse_setting("dpmpp_2m:10:rho=10:sigma_max=20")
    assert a == b == ("dpmpp_2m", 10, (("rho", 10.0), ("sigma_max", 20.0)))
    assert label(a) == "dpmpp_2m-10-rho10-sigma_max20"
    for text, message in [("dpmpp_2m:10:sigmamax=20", "unknown key 'sigmamax'"), ("heun:1", "2 or more"),
                          ("heun", "expected SOLVER:STEPS")]:
        with pytest.raises(ValueError, match=message):
            parse_setting(text)


def test_each_family_gets_the_reference_and_its_own_solvers():
    settings = [parse_setting(s) for s in ["stochastic:18", "ab2:10", "dpmpp_2m:10", "heun:128"]]
    assert family_settings("edm", settings) == [REFERENCE, settings[0], settings[2]]
    assert family_settings("flow", settings) == [REFERENCE, settings[1], settings[2]]


def test_report_table_counts_and_flags_the_configured_sampler():
    rows = []
    for model, family_solver in [("edm", "dpmpp_2m"), ("flow", "ab2")]:
        for variable in ("t2m", "tp"):
            rows.append({"model": model, "variable": variable, "solver": "heun", "steps": 128, "options": np.nan,
                         "evaluations": 255, "s_per_member": 0.4, "indistinguishable": np.nan, "compared": 0})
            rows.append({"model": model, "variable": variable, "solver": family_solver, "steps": 10,
                         "options": np.nan, "evaluations": 10, "s_per_member": 0.02,
                         "indistinguishable": 3 if variable == "tp" else 4, "compared": 4})
            rows.append({"model": model, "variable": variable, "solver": "heun", "steps": 18,
                         "options": "rho=7 sigma_max=80", "evaluations": 35, "s_per_member": 0.05,
                         "indistinguishable": 4, "compared": 4})
    sampling = load_config({"sampling": {"flow": {"solver": "heun", "steps": 18}}})["sampling"]
    table = sampler_budget_rows(pd.DataFrame(rows), sampling)
    assert table["models"] == ["edm", "flow"]
    by_setting = {r["setting"]: r for r in table["rows"]}
    assert [r["evaluations"] for r in table["rows"]] == [255, 35, 10, 10]
    assert by_setting["heun, 128 steps"]["cells"] == ["reference", "reference"]
    assert by_setting["dpmpp_2m, 10 steps"]["cells"] == ["7 of 8", ""]
    # the EDM default (dpmpp_2m, 10, the config's levels) and flow's Heun 18 (levels do not apply)
    assert by_setting["dpmpp_2m, 10 steps"]["configured"]
    assert by_setting["heun, 18 steps rho=7 sigma_max=80"]["configured"]
    assert not by_setting["ab2, 10 steps"]["configured"]
