"""The report's verdict sentences."""

import pandas as pd

from htweather.report.page import verdicts


def _comparisons():
    rows = [{"model": "tedm", "baseline": "edm", "variable": v, "metric": m, "lead": None, "difference": 0.1,
             "ci_low": -0.2, "ci_high": 0.4, "verdict": "indistinguishable", "replicates": "3 vs 3"}
            for v in ("pr", "w") for m in ("exceedance_ratio_p999", "tail_ks")]
    metrics = pd.DataFrame([{"model": m, "variable": v, "metric": "exceedance_ratio_p999", "lead": None, "value": 0.5}
                            for m in ("tedm", "edm") for v in ("pr", "w")])
    return pd.DataFrame(rows), metrics


def test_a_pair_whose_models_train_a_variable_with_the_same_noise_says_so():
    """nu: auto chose Gaussian noise for pr on its cube root (no heavy tail left): t-EDM against
    EDM is then two trainings of one method on pr, and the sentence must say it, first."""
    comparisons, metrics = _comparisons()
    nu = {"tedm": {"pr": "inf", "w": 3.5}, "edm": {"pr": "inf", "w": "inf"}}
    found = {v["variable"]: v["sentences"][0] for v in verdicts(comparisons, metrics, nu)}
    assert found["pr"].startswith("Same noise on pr (Gaussian in both): a difference here is not Student-t")
    assert "Same noise" not in found["w"]
    assert not any("Same noise" in v["sentences"][0] for v in verdicts(comparisons, metrics))
