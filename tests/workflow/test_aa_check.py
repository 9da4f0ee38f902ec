"""The A/A check as a workflow option: one tiny model trained five times, every split of two
groups of two compared by the comparisons' own code, the three tables it writes, and the
report's section on it."""

import pandas as pd
import pytest
import yaml

from conftest import REPO, snakemake

pytestmark = pytest.mark.slow


def test_aa_check_writes_every_split_and_the_false_verdict_rates(tmp_path):
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config.update(models={"edm": {"family": "edm", "nu": "inf", "replicates": 5}}, comparisons=[],
                  nu_sweep=None, nu_select={}, aa_check={"models": ["edm"], "size": 2})
    config["evaluation"]["sampler_budget"]["enabled"] = False
    path = tmp_path / "aa.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = ["results/evaluation/aa_check.csv", "results/evaluation/aa_rates.csv", "results/evaluation/aa_power.csv"]
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-4000:]
    rows = pd.read_csv(tmp_path / targets[0])
    assert rows.split.nunique() == 15  # C(5, 2) * C(3, 2) / 2
    assert set(rows.variable) == {"t2m", "w", "tp"} and set(rows.model) == {"edm"}
    assert set(rows.verdict) <= {"better", "worse", "indistinguishable", "inconclusive"}
    assert (rows.p_adjusted >= rows.p_value).all()
    rates = pd.read_csv(tmp_path / targets[1])
    overall = rates[rates.family == "all"].set_index("variable")
    assert set(overall.index) == {"t2m", "w", "tp"} and (overall.trainings == 5).all()
    assert ((overall.false_low <= overall.false_rate) & (overall.false_rate <= overall.false_high)).all()
    log = (tmp_path / "results" / "logs" / "aa_check.log").read_text()
    assert "edm / tp: 15 splits of 2 against 2 trainings, false verdicts" in log
    power = pd.read_csv(tmp_path / targets[2])
    assert {"exceedance_ratio_p999", "quantile_rel_error_0.999", "tail_ks"} <= set(power[power.variable == "tp"].metric)
    assert (power.seed_sd >= 0).all() and (power.relevant_difference > 0).all()
    html = (tmp_path / "results" / "report.html").read_text()
    assert 'id="aa-check"' in html and "every <i>better</i> or <i>worse</i> is a false verdict" in html
