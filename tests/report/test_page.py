"""The report's first screen (report.answer) and its tables (report.page): what they say, said
once, with every interval labelled."""

import numpy as np
import pandas as pd
import pytest

from htweather.report import answer, page
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


def test_the_dry_fraction_is_said_to_be_calibrated_only_where_it_is():
    calibrated = {"lower_bound": 0.0, "units": "mm h-1", "dry_below_rule": "calibrated",
                  "validation_dry_fraction": 0.7286}
    raised = {"edm": 1.1424, "tedm": 0.16}
    note = answer.dry_note(calibrated, raised, {"edm": "EDM", "tedm": "t-EDM"})
    assert "validation split (dry fraction 0.729)" in note
    assert "first training of EDM (1.14 mm h-1) and t-EDM (0.16 mm h-1)" in note
    assert answer.dry_note(calibrated, {}) == ""  # calibrated, but no ensemble was wetter than the validation split
    assert answer.dry_note(calibrated) == ""
    assert answer.dry_note({**calibrated, "dry_below_rule": "fixed"}, raised) == ""
    assert answer.dry_note({**calibrated, "validation_dry_fraction": None}, raised) == ""  # an older store
    assert answer.dry_note({}, raised) == ""


def test_the_report_reads_which_ensembles_were_raised():
    attrs = {"edm": {"dry_below_calibrated": '{"rain": 1.1}'}, "tedm": {"dry_below_calibrated": "{}"},
             "flow": {}}
    assert page.dry_raised(attrs, ["edm", "tedm", "flow"]) == {"rain": {"edm": 1.1}}


def test_a_model_trained_once_is_named_once_not_per_pair():
    text = answer.trained_once(_comparisons(), {"edm": 3, "tedm": 3, "edm_inc": 1})
    assert text.startswith("edm_inc was trained once") and text.count("edm_inc") == 1
    assert answer.trained_once(_comparisons()[lambda f: f.baseline == "edm"], {"edm": 3, "tedm": 3}) == ""


def test_the_multiplicity_rule_is_stated_once_with_the_counts():
    better = _comparisons("better").assign(ci_low=-0.3, ci_high=-0.05)
    comparisons = pd.concat([better] + [_comparisons()] * 3 + [_comparisons("inconclusive")], ignore_index=True)
    text = answer.multiplicity(comparisons, 0.95)
    assert "Benjamini-Hochberg adjustment at a false discovery rate of 5 %" in text
    assert "indistinguishable needs the whole interval to lie within the difference that matters" in text
    assert ("Of the 40 comparisons, better on 8, worse on 0, indistinguishable on 24, inconclusive on 8; "
            "8 intervals leave out 0 before the adjustment") in text


def test_cells_are_green_only_where_the_shown_value_is_inside_the_truths_interval_and_bold_for_the_closest():
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
    assert [r["kind"] for r in table["rows"]] == ["3 runs: t + bootstrap", "3 runs: t + bootstrap", "bootstrap"]
    # a wide interval reaching the truth's is not enough: the value shown must be inside the truth's
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
    # one ranking rule: by the value shown (the mean over runs), whatever the runs' own scatter
    frame.loc[frame.model == "edm", "value"] = 0.87
    assert "the closest, edm, puts 0.87" in answer.headline(frame, "pr", ["edm", "tedm"], states, True)
    # display names, where the config gives them
    assert "the closest, EDM, puts 0.87" in answer.headline(frame, "pr", ["edm", "tedm"], states, True, {"edm": "EDM"})
    states[1]["final_error"] = 0.2
    assert answer.headline(frame, "pr", ["edm", "tedm"], states, truth=True).startswith(
        "tedm gets there on pr; edm does not.")


def test_pair_sentence_carries_the_far_tail_difference_and_warns_when_both_are_far():
    comparisons = _comparisons()
    states = [{"model": m, "variable": "pr", "state": "stalled far from the data"} for m in ("edm", "tedm")]
    [text] = answer.pair_sentences(comparisons, "pr", [("tedm", "edm")], states, 0.95)
    assert text.startswith("tedm against edm (3 vs 3 runs): better on 0, worse on 0, indistinguishable on 2 of 2 "
                           "metrics in the table")
    assert "Far tail (mass above data's 99.9th pct.): difference of errors -0.1, 95 % interval [-0.2, 0.4]: indistinguishable (negative: tedm is closer)." in text
    # with its resolution and the relevant difference, where comparisons.csv has them
    [text] = answer.pair_sentences(comparisons.assign(resolution=0.3, relevant=0.5), "pr", [("tedm", "edm")],
                                   states, 0.95)
    assert ("[-0.2, 0.4]: indistinguishable, no difference that matters: the whole interval lies within ±0.5 "
            "(resolution ±0.3) (negative") in text
    inconclusive = comparisons.assign(resolution=0.3, relevant=0.2, verdict="inconclusive")
    [text] = answer.pair_sentences(inconclusive, "pr", [("tedm", "edm")], states, 0.95)
    assert "indistinguishable on 0, inconclusive on 2 of 2 metrics" in text
    assert (": inconclusive, too coarse to say no difference: these runs resolve only differences beyond ±0.3, "
            "and ±0.2 is what matters (neg") in text
    # a resolution within the relevant difference, the interval off centre
    [text] = answer.pair_sentences(inconclusive.assign(relevant=0.35), "pr", [("tedm", "edm")], states, 0.95)
    assert ": inconclusive, the interval reaches beyond the ±0.35 that matters (resolution ±0.3) (neg" in text
    # an interval that leaves out 0 before the adjustment says so
    [text] = answer.pair_sentences(inconclusive.assign(ci_high=-0.01), "pr", [("tedm", "edm")], states, 0.95)
    assert "is closer). Its interval leaves out 0, but not after the adjustment for the pair's other metrics." in text
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
    assert metrics_table(leads, ["fc"], by_lead=True)[0]["lead"] == "1"
    assert metrics_table(leads, ["fc"], by_lead=True, step_hours=6.0)[0]["lead"] == "1 (6 h)"


@pytest.mark.parametrize("value, text", [(0.23456, "0.235"), (590.2, "590"), (12345.0, "1.2e+04"), (float("nan"), "")])
def test_numbers_print_with_three_significant_digits_on_the_first_screen(value, text):
    from htweather.report.text import fmt
    assert fmt(value, 3) == text


def test_a_cell_is_green_by_its_shown_value_and_each_model_shows_where_it_ends():
    frame = _metrics({("tedm", "exceedance_ratio_p999"): (0.9, 0.0, 2.9), ("truth", "exceedance_ratio_p999"): (1.1, 0.3, 2.4)})
    runs = {("tedm", "pr", "exceedance_ratio_p999"): [0.2, 2.0, 0.5]}
    states = [{"model": "tedm", "variable": "pr", "state": "stalled far from the data", "final_error": 0.41,
               "reference_error": 0.086}]
    table = answer.distance_table(frame, "pr", ["tedm"], {"tedm": 3}, True, runs, states)
    row = table["rows"][0]
    assert row["cells"][0]["within"] and row["cells"][0]["runs"] == "runs: 0.2, 2, 0.5"
    assert (row["tail_error"], row["state"], row["there"], table["limit"]) == ("0.41", "stalled, far", False, "0.222")
    frame.loc[frame.model == "tedm", "value"] = 0.25  # outside the truth's [0.3, 2.4]
    assert not answer.distance_table(frame, "pr", ["tedm"], {"tedm": 3}, True, runs, states)["rows"][0]["cells"][0]["within"]
    frame.loc[frame.model == "tedm", "value"] = 0.9
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


def _quantiles(values, variable="w"):
    """values: {(model, p): (value, low, high)} -> the physical-quantile rows (`quantile_<p>`)."""
    return pd.DataFrame([{"model": m, "variable": variable, "metric": f"quantile_{p:g}", "lead": np.nan, "value": v,
                          "ci_low": lo, "ci_high": hi} for (m, p), (v, lo, hi) in values.items()])


def test_the_bold_quantile_is_the_nearest_to_the_reference_by_the_number_shown():
    frame = _quantiles({("data", 0.999): (12.04, 9.8, 14.6), ("truth", 0.999): (12.3, 10.1, 15.0),
                        ("edm", 0.999): (4.4, 4.0, 4.9), ("tedm", 0.999): (7.7, 7.1, 8.2),
                        ("tflow", 0.999): (16.41, 2.0, 30.0), ("edm_inc", 0.999): (7.7049, 6.0, 9.0)},
                       variable="tp")
    models = ["edm", "tedm", "tflow", "edm_inc"]
    # without the true value: the data's estimate is the reference
    table = answer.quantile_table(frame, "tp", "upper", [0.999], models, {"tedm": 3}, truth=True,
                                  labels={"tedm": "t-EDM"})
    assert table["columns"] == ["99.9th percentile"] and table["reference"] == "the data's"
    rows = {r["model"]: r["cells"][0] for r in table["rows"]}
    assert list(rows) == ["data", "truth", "edm", "t-EDM", "tflow", "edm_inc"]
    shown = {m: float(c["text"]) for m, c in rows.items() if m not in ("data", "truth")}
    nearest = min(abs(v - 12.0) for v in shown.values())
    # ties by the number shown are all bold: 7.7 and 7.70 print alike
    assert {m for m, c in rows.items() if c["closest"]} == {m for m, v in shown.items() if abs(v - 12.0) == nearest}
    assert {m for m, c in rows.items() if c["closest"]} == {"t-EDM", "edm_inc"}  # 4.3 from 12.0; t-Flow's 16.4 is 4.4
    assert [m for m, c in rows.items() if c["within"]] == []  # nothing inside the data's [9.8, 14.6]
    # with the true value (13.5): the truth row shows it, with the spread of a perfect model's
    # sample of this size moved onto it ([11.3, 16.2]); bold is nearest it, green inside that
    table = answer.quantile_table(frame, "tp", "upper", [0.999], models, {}, truth=True,
                                  true_values={"quantile_0.999": 13.5}, runs={("tflow", "tp", "quantile_0.999"):
                                                                              [8.1, 23.2, 8.7]})
    assert table["reference"] == "the true process's"
    rows = {r["model"]: r["cells"][0] for r in table["rows"]}
    assert (rows["truth"]["text"], rows["truth"]["ci"]) == ("13.5", "[11.3, 16.2]")
    assert {m for m, c in rows.items() if c["closest"]} == {"tflow"}  # 2.9 from 13.5
    assert [m for m, c in rows.items() if c["within"]] == []  # 16.4 is outside [11.3, 16.2]
    assert rows["tflow"]["runs"] == "runs: 8.1, 23.2, 8.7"
    frame.loc[frame.model == "tflow", "value"] = 14.2
    rows = {r["model"]: r["cells"][0] for r in answer.quantile_table(frame, "tp", "upper", [0.999], ["edm", "tflow"],
                                                                    {}, truth=True,
                                                                    true_values={"quantile_0.999": 13.5})["rows"]}
    assert rows["tflow"]["within"] and rows["tflow"]["closest"] and not rows["edm"]["within"]
    text = answer.quantile_headline(frame, "tp", "upper", "mm", models, True, {"tflow": "t-Flow"}, true_value=13.5,
                                    runs={("tflow", "tp", "quantile_0.999"): [8.1, 26.2, 8.4]},
                                    twins=[("tedm", "edm")])
    assert "the true process's is 13.5 mm (a perfect model's sample of the models' size: [11.3, 16.2])" in text
    assert "Closest to the true process's value: t-Flow, 14.2 mm" in text
    assert "t-Flow's 3 runs disagree by more than that interval: 8.1, 26.2, 8.4 mm; its mean is not a fit." in text
    assert "tedm against edm: 7.7 against 4.4 mm, 4.3 from the data's value instead of 7.6." in text


def test_a_negative_heavy_tail_is_headlined_below_in_its_units():
    frame = _quantiles({("data", 0.001): (-2.64, -2.9, -2.4), ("edm", 0.001): (-1.9, -2.0, -1.8),
                        ("tedm", 0.001): (-2.5, -2.7, -2.3), ("data", 0.999): (0.78, 0.7, 0.85)})
    text = answer.quantile_headline(frame, "w", "lower", "Pa s**-1", ["edm", "tedm"], truth=False,
                                    labels={"tedm": "t-EDM", "edm": "EDM"})
    # as many decimals as resolve the data's interval
    assert text.startswith("The data's 0.1th percentile is -2.64 Pa s**-1 [-2.90, -2.40].")
    assert "Closest to the data's value: t-EDM, -2.50 Pa s**-1 [-2.70, -2.30]" in text and "farthest: EDM, -1.90" in text
    assert "1 of 2 models inside the data's interval (t-EDM)." in text
    assert answer.tail_words("lower", "Pa s**-1") == "lower tail (ascent)"
    # the composite headline speaks of the mass below the data's 0.1th percentile
    frame = pd.concat([frame, _metrics({("tedm", "exceedance_ratio_p001"): (0.8, 0.6, 1.0),
                                        ("edm", "exceedance_ratio_p001"): (0.2, 0.1, 0.3)}).assign(variable="w")])
    text = answer.headline(frame, "w", ["edm", "tedm"], [], truth=False, tails="lower")
    assert text == ("Below the data's 0.1th percentile the closest, tedm, puts 0.8 of the data's mass there "
                    "(1 is right).")


def test_a_variable_with_both_tails_gets_a_table_for_each_heaviest_first():
    frame = _quantiles({("data", 0.999): (290.0, 289.0, 291.0), ("data", 0.001): (262.0, 260.0, 264.0),
                        ("edm", 0.999): (289.5, 289.0, 290.0), ("edm", 0.001): (266.0, 265.0, 267.0)}, "t2m")
    config = {**CONFIG, "evaluation": {"confidence": 0.95, "quantiles": [0.999]}}
    stats = {"variables": {"t2m": {"tails": "both", "units": "K"}}}
    out = answer.answer(config, frame, _comparisons(variables=("pr",)), ["edm"], {"edm": 3}, {"t2m": 0.5}, [], {}, False,
                        stats=stats, side_order={"t2m": ["lower", "upper"]})
    [v] = out["variables"]
    assert [s["side"] for s in v["sides"]] == ["lower", "upper"]
    assert [s["table"]["columns"] for s in v["sides"]] == [["0.1th percentile"], ["99.9th percentile"]]
    assert v["sides"][0]["headline"].startswith("The data's 0.1th percentile is 262.0 K [260.0, 264.0]")
    assert out["ranking_rule"].startswith("One rule for every table here, on the numbers as shown.")


def test_a_quantile_interval_stops_at_the_variables_lower_bound():
    frame = _quantiles({("data", 0.999): (12.04, 9.8, 14.6), ("tflow", 0.999): (13.3, -7.85, 34.5)}, "tp")
    table = answer.quantile_table(frame, "tp", "upper", [0.999], ["tflow"], {"tflow": 3}, truth=False,
                                  lower_bound=0.0)
    assert table["rows"][1]["cells"][0]["ci"] == "[0.0, 34.5]"
    assert "t-Flow, 13.3 mm [0.0, 34.5]" in answer.quantile_headline(frame, "tp", "upper", "mm", ["tflow"], False,
                                                                     {"tflow": "t-Flow"}, lower_bound=0.0)


def test_the_nu_select_table_names_each_variables_own_metrics(tmp_path):
    """A lower-tail variable's key metrics are named by its lower probabilities: each column
    comes from the variable's own entries."""
    import json
    from htweather.report.page import selection_tables
    metrics = {"w": {"exceedance_ratio_p01": 0.5, "tail_ks_lower": 0.2}, "tp": {"exceedance_ratio_p99": 0.9}}
    path = tmp_path / "sel.json"
    path.write_text(json.dumps({"model": "tedm_sel", "variables": ["w", "tp"], "chosen": 3.0, "margin": 0.1,
                                "validation_times": 10,
                                "candidates": [{"candidate": "c3", "nu": 3.0, "tail_error": 0.3, "metrics": metrics}]}))
    [table] = selection_tables([path])
    assert table["columns"] == [("w", "exceedance_ratio_p01"), ("w", "tail_ks_lower"), ("tp", "exceedance_ratio_p99")]
    assert table["rows"][0]["scores"] == ["0.5", "0.2", "0.9"]


def test_the_truth_coverage_summary_counts_and_does_not_speak_for_the_comparisons():
    from htweather.report.page import _coverage_summary
    checks = ([{"statistic": "quantile_0.99", "covered": "yes"}] * 9 + [{"statistic": "quantile_0.999", "covered": "no"}] * 3
              + [{"statistic": "return_level_10", "covered": "yes"}] * 6 + [{"statistic": "return_level_2", "covered": "no"}] * 3)
    text = _coverage_summary(checks)
    assert text.startswith("Covered: 9 of 12 tail quantiles, 6 of 9 GEV return levels.")
    assert "15 of 21 is fewer than 95 % intervals give by chance" in text
    assert "They are not the comparisons' intervals" in text and "A/A check" in text
    assert "fewer than" not in _coverage_summary([{"statistic": "quantile_0.99", "covered": "yes"}] * 20)
