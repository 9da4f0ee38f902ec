"""The report's first screen (report.answer) and its tables (report.page): what they say, said
once, with every interval labelled."""

import numpy as np
import pandas as pd
import pytest

from htweather.report import answer
from htweather.report.page import metrics_table, storm_findings, verdicts

MODELS = {"edm": {"family": "edm", "nu": "inf", "replicates": 3, "normalisation": "standard"},
          "tedm": {"family": "edm", "nu": "auto", "replicates": 3, "normalisation": "standard"},
          "edm_inc": {"family": "edm", "nu": "inf", "replicates": 1, "normalisation": "inc"}}
CONFIG = {"models": MODELS, "evaluation": {"confidence": 0.95}}


def _comparisons(verdict="indistinguishable", variables=("pr", "w")):
    rows = [{"model": "tedm", "baseline": b, "variable": v, "metric": m, "lead": None, "difference": -0.1,
             "ci_low": -0.2, "ci_high": 0.4, "verdict": verdict, "replicates": f"3 vs {1 if b == 'edm_inc' else 3}"}
            for b in ("edm", "edm_inc") for v in variables for m in ("exceedance_ratio_p999", "tail_ks")]
    return pd.DataFrame(rows)


def _metrics(values):
    """values: {(model, metric): (value, low, high)} on variable pr."""
    return pd.DataFrame([{"model": m, "variable": "pr", "metric": k, "lead": np.nan, "value": v, "ci_low": lo,
                          "ci_high": hi} for (m, k), (v, lo, hi) in values.items()])


def test_only_pairs_that_differ_in_their_noise_are_the_twins():
    assert answer.twin_pairs(CONFIG, _comparisons()) == [("tedm", "edm")]


def test_the_same_noise_on_a_variable_is_said_once_for_all_its_pairs():
    """nu: auto chose Gaussian noise for pr on its cube root (no heavy tail left): t-EDM against
    EDM is then two trainings of one method on pr, said once for the variable."""
    nu = {"tedm": {"pr": "inf", "w": 3.5}, "edm": {"pr": "inf", "w": "inf"}}
    twins = [("tedm", "edm")]
    assert "tedm trained with the same noise as its Gaussian twin" in answer.same_noise("pr", twins, nu)
    assert answer.same_noise("w", twins, nu) == ""
    assert answer.same_noise("pr", twins, {}) == ""


def test_a_model_trained_once_is_named_once_not_per_pair():
    text = answer.trained_once(_comparisons(), {"edm": 3, "tedm": 3, "edm_inc": 1})
    assert text.startswith("edm_inc was trained once") and text.count("edm_inc") == 1
    assert answer.trained_once(_comparisons()[lambda f: f.baseline == "edm"], {"edm": 3, "tedm": 3}) == ""


def test_the_multiplicity_sentence_gives_what_chance_alone_would():
    comparisons = pd.concat([_comparisons("better")] + [_comparisons()] * 4, ignore_index=True)  # 8 of 40
    text = answer.multiplicity(comparisons, 0.95)
    assert "of the 40 in comparisons.csv" in text and "8 say better or worse at 95 %" in text
    assert "about 2 would by chance alone (0 to 5 in 95 % of cases" in text


def test_cells_are_green_only_where_the_interval_reaches_the_truths_and_bold_for_the_closest():
    frame = _metrics({("edm", "exceedance_ratio_p999"): (0.05, 0.0, 0.12),
                      ("tedm", "exceedance_ratio_p999"): (0.3, 0.2, 0.4),
                      ("truth", "exceedance_ratio_p999"): (1.13, 0.9, 1.4),
                      ("edm", "tail_ks"): (0.2, 0.15, 0.3), ("tedm", "tail_ks"): (0.05, 0.03, 0.08),
                      ("truth", "tail_ks"): (0.06, 0.02, 0.1)})
    table = answer.distance_table(frame, "pr", ["edm", "tedm"], {"edm": 3, "tedm": 3}, truth=True)
    assert [m["name"] for m in table["metrics"]] == ["exceedance_ratio_p999", "tail_ks"]
    cells = {r["model"]: r["cells"] for r in table["rows"]}
    assert [c["within"] for c in cells["edm"]] == [False, False]
    assert [c["within"] for c in cells["tedm"]] == [False, True]
    assert [c["closest"] for c in cells["tedm"]] == [True, True] and not any(c["within"] for c in cells["truth"])
    assert [r["kind"] for r in table["rows"]] == ["3 runs: t interval", "3 runs: t interval", "bootstrap"]
    # a wide interval reaching the truth's is not enough: the value itself must be one a perfect model gives
    wide = frame.copy()
    wide.loc[(wide.model == "tedm") & (wide.metric == "exceedance_ratio_p999"), ["ci_low", "ci_high"]] = (0.0, 2.9)
    cells = {r["model"]: r["cells"] for r in answer.distance_table(wide, "pr", ["edm", "tedm"], {}, True)["rows"]}
    assert not cells["tedm"][0]["within"]
    # a truth value without an interval: within when no farther from the ideal than the truth
    bare = frame.copy()
    bare.loc[bare.model == "truth", ["ci_low", "ci_high"]] = np.nan
    cells = {r["model"]: r["cells"] for r in answer.distance_table(bare, "pr", ["edm", "tedm"], {}, True)["rows"]}
    assert [c["within"] for c in cells["tedm"]] == [False, True] and not cells["edm"][1]["within"]
    # without a truth ensemble the reference is the ideal value itself
    table = answer.distance_table(frame, "pr", ["edm", "tedm"], {"edm": 3, "tedm": 1}, truth=False)
    cells = {r["model"]: r["cells"] for r in table["rows"]}
    assert [c["within"] for c in cells["tedm"]] == [False, False] and "truth" not in cells
    assert table["rows"][1]["kind"] == "1 run: bootstrap"


def test_the_headline_says_when_no_model_gets_there():
    frame = _metrics({("edm", "exceedance_ratio_p999"): (0.05, 0.0, 0.12),
                      ("tedm", "exceedance_ratio_p999"): (0.23, 0.1, 0.4),
                      ("truth", "exceedance_ratio_p999"): (1.13, 0.9, 1.4)})
    states = [{"model": m, "variable": "pr", "state": s, "final_error": e, "reference_error": 0.08}
              for m, s, e in (("edm", "stalled far from the data", 0.6), ("tedm", "still improving", 0.4))]
    text = answer.headline(frame, "pr", ["edm", "tedm"], states, truth=True)
    assert text.startswith("No model gets there on pr.")
    assert "from 0.4 (tedm) to 0.6, against 0.08 for a sample of the true process of as many fields; within 0.21" in text
    assert "Still improving at the end of training: tedm." in text
    assert "the closest, tedm, puts 0.23 of the data's mass there (1 is right; a perfect model's sample of this size: 1.1)" in text
    # closest by the runs' own errors: three runs scattered around the ideal are not close
    runs = {("tedm", "pr", "exceedance_ratio_p999"): [0.02, 0.15, 0.52],
            ("edm", "pr", "exceedance_ratio_p999"): [0.02, 2.3, 0.3]}
    frame.loc[frame.model == "edm", "value"] = 0.87
    assert "the closest, tedm, puts 0.23" in answer.headline(frame, "pr", ["edm", "tedm"], states, True, runs)
    assert "the closest, edm, puts 0.87" in answer.headline(frame, "pr", ["edm", "tedm"], states, True)
    states[1]["final_error"] = 0.2
    assert answer.headline(frame, "pr", ["edm", "tedm"], states, truth=True).startswith(
        "tedm gets there on pr; edm does not.")


def test_pair_sentence_carries_the_far_tail_difference_and_warns_when_both_are_far():
    comparisons = _comparisons()
    states = [{"model": m, "variable": "pr", "state": "stalled far from the data"} for m in ("edm", "tedm")]
    [text] = answer.pair_sentences(comparisons, "pr", [("tedm", "edm")], states, 0.95)
    assert text.startswith("tedm against edm (3 vs 3 runs): better on 0, worse on 0, indistinguishable on 2 of 2 "
                           "metrics in the table")
    assert "Far tail (mass beyond data's q99.9): difference of errors -0.1, 95 % interval [-0.2, 0.4]: indistinguishable (negative: tedm is closer)." in text
    assert text.endswith("Both are stalled far from the data: this says little about the extremes.")
    assert "better on 0, worse on 0, indistinguishable on 2 of 2" in answer.baseline_summary(
        comparisons, "pr", [("tedm", "edm")])


def test_variables_come_heaviest_tail_first():
    assert answer.variable_order({"t2m": -0.1, "tp": 40.0, "w": 3.0}) == ["tp", "w", "t2m"]


def test_the_comparison_tables_follow_the_first_screens_order():
    found = verdicts(_comparisons(), _metrics({}).reindex(columns=["model", "variable", "metric", "lead", "value"]),
                     ["w", "pr"])
    assert [v["variable"] for v in found] == ["w", "pr"] and len(found[0]["rows"]) == 4


def test_the_metrics_table_leaves_out_rows_only_the_truth_fills_and_prints_leads_as_integers():
    frame = pd.DataFrame([{"model": "truth", "variable": "pr", "metric": "quantile_0.99", "lead": np.nan,
                           "value": 3.0, "ci_low": 2.0, "ci_high": 4.0},
                          {"model": "edm", "variable": "pr", "metric": "tail_ks", "lead": np.nan, "value": 0.2,
                           "ci_low": np.nan, "ci_high": np.nan}])
    assert [r["metric"] for r in metrics_table(frame, ["edm", "truth"])] == ["tail_ks"]
    assert [r["metric"] for r in metrics_table(frame, ["edm", "truth"], reference_rows=True)] == ["quantile_0.99",
                                                                                                  "tail_ks"]
    leads = pd.DataFrame([{"model": "fc", "variable": "pr", "metric": "crps", "lead": 1.0, "value": 0.5,
                           "ci_low": 0.4, "ci_high": 0.6}])
    assert metrics_table(leads, ["fc"], by_lead=True)[0]["lead"] == 1


@pytest.mark.parametrize("value, text", [(0.23456, "0.235"), (590.2, "590"), (12345.0, "1.2e+04"), (float("nan"), "")])
def test_numbers_print_with_three_significant_digits_on_the_first_screen(value, text):
    from htweather.report.text import fmt
    assert fmt(value, 3) == text


def test_a_cell_is_green_only_if_every_run_is_and_each_model_shows_where_it_ends():
    frame = _metrics({("tedm", "exceedance_ratio_p999"): (0.9, 0.0, 2.9), ("truth", "exceedance_ratio_p999"): (1.1, 0.3, 2.4)})
    runs = {("tedm", "pr", "exceedance_ratio_p999"): [0.2, 2.0, 0.5]}
    states = [{"model": "tedm", "variable": "pr", "state": "stalled far from the data", "final_error": 0.41,
               "reference_error": 0.086}]
    table = answer.distance_table(frame, "pr", ["tedm"], {"tedm": 3}, True, runs, states)
    row = table["rows"][0]
    assert not row["cells"][0]["within"] and row["cells"][0]["runs"] == "runs: 0.2, 2, 0.5"
    assert (row["tail_error"], row["state"], row["there"], table["limit"]) == ("0.41", "stalled, far", False, "0.22")
    runs[("tedm", "pr", "exceedance_ratio_p999")] = [0.8, 1.0, 0.9]
    states[0]["final_error"] = 0.2
    row = answer.distance_table(frame, "pr", ["tedm"], {"tedm": 3}, True, runs, states)["rows"][0]
    assert row["cells"][0]["within"] and row["there"]


def test_return_levels_sit_side_by_side_in_the_blocks_real_length_with_a_finding():
    from htweather.report.page import return_level_table
    rows = [("data", "block_days", 7.0, np.nan, np.nan)]
    for source, gev, emp in (("data", 11.4, 11.8), ("truth", 11.4, 11.5), ("fc_edm", 9.5, 9.9)):
        rows += [(source, "return_level_50", gev, gev - 1.3, gev + 2.0), (source, "empirical_return_level_50", emp,
                                                                          emp - 2, emp + 2)]
    frame = pd.DataFrame([{"model": m, "variable": "tp", "metric": k, "lead": np.nan, "value": v, "ci_low": lo,
                           "ci_high": hi} for m, k, v, lo, hi in rows])
    table = return_level_table(frame, ["data", "truth", "fc_edm"], [50])
    [row] = table["rows"]
    assert row["period"] == "50 weeks" and [c["text"] for c in row["cells"]] == ["11.4", "11.8", "11.4", "11.5",
                                                                                  "9.5", "9.9"]
    assert table["findings"] == ["tp, 50-week level (GEV): data 11.4 [10.1, 13.4]; fc_edm 9.5 (below the data's "
                                 "interval)."]


def test_storms_in_words_only_where_the_interval_excludes_the_data():
    frame = _metrics({("edm", "object_count_ratio_p99"): (1.4, 1.1, 1.8),       # too many
                      ("edm", "object_area_rel_error_p99"): (-0.5, -0.6, -0.4),  # too small
                      ("edm", "object_peak_rel_error_p99"): (-0.1, -0.3, 0.05),  # covers 0: right
                      ("truth", "object_count_ratio_p99"): (0.7, 0.5, 0.9),      # too few
                      ("truth", "object_area_rel_error_p99"): (0.3, 0.1, 0.5),   # too wide
                      ("truth", "object_peak_rel_error_p99"): (0.2, 0.01, 0.4)})  # too strong
    found = storm_findings(frame, ["edm", "truth"])
    assert [v["variable"] for v in found] == ["pr"]
    words = {r["source"]: [t["word"] for t in r["traits"]] for r in found[0]["rows"]}
    assert words == {"edm": ["too many", "too small", "right"], "truth": ["too few", "too wide", "too strong"]}
    edm = found[0]["rows"][0]["traits"]
    assert edm[0]["detail"] == "1.40 × the data's count [1.10, 1.80]" and edm[1]["detail"] == "mean area -50% [-60%, -40%]"
    assert [t["off"] for t in edm] == [True, True, False]
    assert storm_findings(frame[frame.metric != "object_count_ratio_p99"], ["edm"]) == []  # no storms: nothing said
