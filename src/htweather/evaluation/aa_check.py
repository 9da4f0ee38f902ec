"""The A/A check: how often the comparisons call two groups of trainings of ONE method different.

One model is trained N times (its replicates, seeds from the master seed). Every way of drawing
two disjoint groups of `size` trainings from the N is a comparison whose true difference is 0,
so each `better` or `worse` it returns is a false verdict. The groups are compared with the
comparisons' own code (`comparisons.interval`, the same data resamples, the same
Benjamini-Hochberg families and relevant differences), so the rate found is that of the
pipeline's verdicts, over whole trainings: seed, ensemble and test-data noise together.

The splits share trainings, so their verdicts are not independent and a binomial interval on
the rate would be too narrow. The rate over all splits is a U-statistic of the N trainings, and
its interval here is the jackknife's: the rate recomputed N times, each time without the splits
that use one training (Efron & Stein's variance estimate, conservative for U-statistics). It
needs N >= 2 * size + 1, so that a split survives every training left out.
"""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pandas as pd
from scipy import stats

from .. import artifacts
from ..data.store import grid_mask, load_stats, test_fields
from ..runtime import derived_seed
from .bootstrap import SortedUnits, data_opts
from .comparisons import (RELEVANT_DIFFERENCE, adjusted_verdicts, dry_calibrated_everywhere, error_draws,
                          forecast_scores, interval, key_metrics, metric_family, structure_metrics_of,
                          tail_metrics_of)
from .forecasts import lead_components
from .spatial import spatial_spec, summarise
from .tails import wet_threshold

log = logging.getLogger(__name__)

ROWS = ["model", "variable", "metric", "family", "key", "split", "group_a", "group_b", "difference", "ci_low",
        "ci_high", "resolution", "relevant", "p_value", "p_adjusted", "verdict", "data_sd"]
POWER = ["model", "variable", "metric", "seed_sd", "data_sd", "resolution", "relevant_difference",
         "trainings_half", "trainings_relevant", "trainings_double"]
RATES = ["model", "variable", "family", "comparisons", "splits", "trainings", "false_rate", "false_low",
         "false_high", "false_rate_unadjusted", "any_false_rate", "any_false_low", "any_false_high",
         "inconclusive_rate", "median_resolution", "seed_sd"]


def splits(n: int, size: int, limit: int, rng: np.random.Generator) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Pairs of disjoint groups of `size` of range(n), each unordered pair once: all of them when
    there are at most `limit`, else `limit` drawn without replacement."""
    if n < 2 * size:
        raise ValueError(f"an A/A split of {size} against {size} needs {2 * size} trainings, not {n}")
    count = math.comb(n, size) * math.comb(n - size, size) // 2
    if count > 20 * limit:  # too many to list: drawn directly, each unordered pair once
        found: set = set()
        while len(found) < limit:
            order = rng.permutation(n)
            a, b = tuple(sorted(order[:size].tolist())), tuple(sorted(order[size:2 * size].tolist()))
            found.add(min(a, b) + max(a, b))
        return [(p[:size], p[size:]) for p in sorted(found)]
    pairs = [(a, b) for a in itertools.combinations(range(n), size)
             for b in itertools.combinations([i for i in range(n) if i not in a], size) if a < b]
    if len(pairs) > limit:
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), limit, replace=False))]
    return pairs


def split_rows(point: dict[str, np.ndarray], draws: dict[str, np.ndarray], pairs, confidence: float) -> list[dict]:
    """One row per split and metric: the groups' difference of mean errors and its interval.
    point: {metric: (N,) errors on the test data}; draws: {metric: (resamples, N)} on the shared
    data resamples."""
    rows = []
    for k, (a, b) in enumerate(pairs):
        ia, ib = list(a), list(b)
        for metric, errors in point.items():
            d = draws[metric]
            data_differences = d[:, ia].mean(axis=1) - d[:, ib].mean(axis=1) if d.size else []
            found = interval(errors[ia], errors[ib], data_differences, confidence)
            rows.append({"metric": metric, "split": k, "group_a": " ".join(map(str, a)),
                         "group_b": " ".join(map(str, b)), **found})
    return rows


def aa_table(model: str, variable: str, tails: str, point: dict, draws: dict, size: int, limit: int,
             confidence: float, relevant: dict | None, rng: np.random.Generator) -> pd.DataFrame:
    """Every split's comparison on every metric of one model and variable (ROWS), its verdict
    adjusted as comparisons.csv's is: each split is one [model, baseline] pair."""
    n = len(next(iter(point.values())))
    pairs = splits(n, size, limit, rng)
    frame = pd.DataFrame(split_rows(point, draws, pairs, confidence))
    frame["variable"] = variable
    # one pair per split, so that the Benjamini-Hochberg families are each split's own
    frame["model"], frame["baseline"] = frame["split"].astype(str), "b"
    frame = adjusted_verdicts(frame, {variable: tails}, confidence, relevant)
    frame["model"] = model
    frame["family"] = [metric_family(m) for m in frame.metric]
    frame["key"] = frame.metric.isin(key_metrics(tails))  # the Benjamini-Hochberg family within the split
    return frame[ROWS]


def _rate(rows: pd.DataFrame, column: str = "verdict") -> float:
    return float(rows[column].isin(["better", "worse"]).mean()) if len(rows) else math.nan


def _any_rate(rows: pd.DataFrame) -> float:
    """The share of Benjamini-Hochberg families (a split's key metrics, or its other metrics)
    with at least one false verdict: the rate the adjustment bounds."""
    if not len(rows):
        return math.nan
    return float(rows.verdict.isin(["better", "worse"]).groupby([rows.split, rows.key]).any().mean())


def _jackknife(rows: pd.DataFrame, statistic, members: dict, trainings: int, z: float) -> tuple[float, float, float]:
    """statistic(rows) and its interval: the jackknife over trainings (each left out in turn,
    with every split that uses it), clipped to [0, 1]."""
    value = statistic(rows)
    leave_out = []
    for i in range(trainings):
        kept = [k for k, m in members.items() if i not in m]
        leave_out.append(statistic(rows[rows.split.isin(kept)]))
    leave_out = np.array([r for r in leave_out if np.isfinite(r)])
    n = leave_out.size
    se = math.sqrt((n - 1) / n * float(((leave_out - leave_out.mean()) ** 2).sum())) if n >= 2 else math.nan
    return value, max(value - z * se, 0.0), min(value + z * se, 1.0)


def false_verdict_rates(frame: pd.DataFrame, trainings: int, seed_sd: dict | None = None,
                        confidence: float = 0.95) -> pd.DataFrame:
    """Per model, variable and metric family (and over all families, "all"): the rate of
    `better`/`worse` verdicts among the A/A comparisons, with the jackknife interval over
    trainings (the module's docstring); the unadjusted rate (interval alone excluding 0); the
    share of Benjamini-Hochberg families with any false verdict (what the adjustment controls;
    for one metric family, the share of splits' families with any false verdict among its
    metrics), with its interval; the rate of `inconclusive`; the median resolution; the typical
    seed spread of the errors. `frame`: one model and variable's `aa_table`, or several (grouped
    here, since split numbers are per table)."""
    frame = frame.copy()
    frame["unadjusted"] = np.where(frame.ci_high < 0, "better", np.where(frame.ci_low > 0, "worse", ""))
    z = stats.norm.ppf(0.5 + confidence / 2)
    out = []
    for (model, variable), table in frame.groupby(["model", "variable"], sort=False):
        members = {k: set(map(int, (a + " " + b).split())) for k, a, b in
                   table[["split", "group_a", "group_b"]].drop_duplicates().itertuples(index=False)}
        groups = [((f,), g) for f, g in table.groupby("family", sort=False)] + [(("all",), table)]
        for (family,), rows in groups:
            rate, low, high = _jackknife(rows, _rate, members, trainings, z)
            any_rate, any_low, any_high = _jackknife(rows, _any_rate, members, trainings, z)
            sd = (seed_sd or {}).get((model, variable, family), math.nan)
            out.append({"model": model, "variable": variable, "family": family, "comparisons": len(rows),
                        "splits": rows.split.nunique(), "trainings": trainings, "false_rate": rate,
                        "false_low": low, "false_high": high, "false_rate_unadjusted": _rate(rows, "unadjusted"),
                        "any_false_rate": any_rate, "any_false_low": any_low, "any_false_high": any_high,
                        "inconclusive_rate": float((rows.verdict == "inconclusive").mean()),
                        "median_resolution": float(rows.resolution.median()), "seed_sd": sd})
    return pd.DataFrame(out, columns=RATES)


def seed_spread(point: dict[str, np.ndarray]) -> dict[str, float]:
    """Per metric family: the median over its metrics of the errors' standard deviation between
    trainings (on the test data as they are), the spread a power calculation rests on."""
    by_family: dict[str, list[float]] = {}
    for metric, errors in point.items():
        e = errors[np.isfinite(errors)]
        if e.size >= 2:
            by_family.setdefault(metric_family(metric), []).append(float(e.std(ddof=1)))
    return {f: float(np.median(v)) for f, v in by_family.items()}


def power_table(model: str, variable: str, point: dict[str, np.ndarray], table: pd.DataFrame,
                relevant: dict | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per metric: the errors' seed spread (standard deviation between the trainings), the data
    term's standard deviation and the resolution of the A/A comparisons (medians over splits),
    and the trainings per model that a comparison needs to find, 4 times in 5, a true difference
    of half, once and twice the metric's relevant difference (`trainings_needed`; empty where no
    number of trainings does: the test data's noise alone is wider)."""
    relevant = {**RELEVANT_DIFFERENCE, **(relevant or {})}
    rows = []
    for metric, errors in point.items():
        e = errors[np.isfinite(errors)]
        found = table[table.metric == metric]
        if e.size < 2 or found.empty:
            continue
        sd, data_sd = float(e.std(ddof=1)), float(found.data_sd.median())
        target = relevant[metric_family(metric)]
        if metric_family(metric) == "forecast_score":  # a fraction of the score, as the comparisons take it
            target *= abs(float(e.mean()))
        rows.append({"model": model, "variable": variable, "metric": metric, "seed_sd": sd, "data_sd": data_sd,
                     "resolution": float(found.resolution.median()), "relevant_difference": target,
                     **{f"trainings_{k}": trainings_needed(sd, f * target, data_sd, confidence)
                        for k, f in (("half", 0.5), ("relevant", 1.0), ("double", 2.0))}})
    return pd.DataFrame(rows, columns=POWER)


def trainings_needed(seed_sd: float, difference: float, data_sd: float = 0.0, confidence: float = 0.95,
                     power: float = 0.8, max_trainings: int = 1000) -> int | None:
    """The trainings per model for a two-sided Welch t comparison of equal groups to find a true
    difference of errors `difference` with probability `power`, from the errors' seed spread
    `seed_sd` (and the data term's standard deviation `data_sd`, which more trainings do not
    shrink): the smallest n with t(1 - alpha/2, df) + t(power, df) <= difference / se(n), df the
    Welch degrees of freedom of two equal groups (2n - 2). None when no n up to max_trainings
    does (the data term alone is too wide)."""
    for n in range(2, max_trainings + 1):
        se = math.sqrt(2 * seed_sd**2 / n + data_sd**2)
        df = 2 * n - 2
        if se == 0 or stats.t.ppf(0.5 + confidence / 2, df) + stats.t.ppf(power, df) <= difference / se:
            return n
    return None


def model_errors(runs: list[np.ndarray], data: np.ndarray, tails: str, opts: dict, seed_of, wet=None,
                 spec=None, mask: np.ndarray | None = None) -> tuple[dict, dict]:
    """Every training's errors on the compared metrics of one variable, as comparisons.csv has
    them: the tail metrics on the real cells (`mask`, else all) of the fields (runs: (members,
    lat, lon) each; data: (times, lat, lon)) and, given the spatial `spec`, the key spatial
    metrics. ({metric: (N,)}, {metric: (resamples, N)}), each kind on its own data resamples;
    seed_of(kind) -> the generator for that kind ("tails", "spatial")."""
    cells = lambda x: x[:, mask] if mask is not None else x.reshape(len(x), -1)  # noqa: E731
    units = SortedUnits(cells(data))
    sides = {"model": [SortedUnits(cells(r)) for r in runs]}
    point, draws = error_draws(tail_metrics_of(sides, units, tails, opts, wet), {"model": len(runs)}, units.units,
                               opts, seed_of("tails"))
    if spec is not None:
        summaries = {"model": [summarise(r, spec) for r in runs]}
        truth = summarise(data, spec)
        more = error_draws(structure_metrics_of(summaries, truth, tails, opts), {"model": len(runs)}, truth.units,
                           opts, seed_of("spatial"))
        point.update(more[0])
        draws.update(more[1])
    return ({m: v["model"] for m, v in point.items()}, {m: v["model"] for m, v in draws.items()})


def downscaling_errors(components: list[dict], variable: str, tails: str, opts: dict,
                       rng: np.random.Generator) -> tuple[dict, dict]:
    """Every training's scores against the paired truth on the scores comparisons.csv compares
    for a downscaling run (CRPS and twCRPS: `forecast_scores`), as `model_errors` gives the
    unconditional ones: ({score: (N,) mean over the downscaled times}, {score: (resamples, N)}
    on shared resamples of the times, as `comparisons.compare_scores` draws them)."""
    n = len(components[0][variable]["crps"])
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(opts["bootstrap"])])
    point, draws = {}, {}
    for score in forecast_scores(tails):
        per_time = np.stack([c[variable][score] for c in components])  # (N, times)
        point[score] = per_time.mean(axis=1)
        draws[score] = counts @ per_time.T / counts.sum(axis=1, keepdims=True)
    return point, draws


def aa_check_tables(config: dict, runs: dict[str, list[str]], paths: dict[str, str], store, stats_path
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The A/A check step: for each model of config["aa_check"] and each variable, every split's
    comparisons (aa_table), the false-verdict rates (false_verdict_rates) and the power table
    (power_table). runs: each model's replicate names; paths: each replicate's ensemble (an
    unconditional model's samples; a downscaling model's downscaled store: `downscaling_errors`)."""
    stats_ = load_stats(stats_path)
    opts = data_opts(config, stats_)
    check = config["aa_check"]
    mask = grid_mask(stats_)
    data = test_fields(store)
    tables, rates, power = [], [], []
    for model in check["models"]:
        names = runs[model]
        ensembles = [artifacts.open_zarr(paths[r]) for r in names]
        downscaled = "init_time" in ensembles[0].dims
        if downscaled:  # each training's per-time scores, every variable at once
            components = [{v: c for v, _, _, _, c in lead_components(config, paths[r], store, stats_, data)}
                          for r in names]
        for variable in stats_["channels"]:
            info = stats_["variables"][variable]
            tails = info.get("tails", "upper")
            seed_of = lambda kind: np.random.default_rng(derived_seed(config["seed"], "aa", model, variable, kind))  # noqa: E731
            if downscaled:
                point, draws = downscaling_errors(components, variable, tails, opts, seed_of("scores"))
            else:
                fields = [e[variable].values.astype(np.float64) for e in ensembles]
                spec = spatial_spec(stats_, variable, data[variable], opts["spatial"]["block_sizes"])
                point, draws = model_errors(fields, data[variable], tails, opts, seed_of, wet_threshold(info), spec,
                                            mask)
                if dry_calibrated_everywhere([e.attrs for e in ensembles], variable):  # as comparisons.csv does
                    point.pop("dry_fraction_error", None)
                    draws.pop("dry_fraction_error", None)
            table = aa_table(model, variable, tails, point, draws, check["size"], check["splits"],
                             opts["confidence"], opts.get("relevant_difference"), seed_of("splits"))
            spread = seed_spread(point)
            sd = {(model, variable, f): v for f, v in spread.items()}
            sd[(model, variable, "all")] = float(np.median(list(spread.values()))) if spread else math.nan
            tables.append(table)
            power.append(power_table(model, variable, point, table, opts.get("relevant_difference"),
                                     opts["confidence"]))
            rates.append(false_verdict_rates(table, len(names), sd, opts["confidence"]))
            found = rates[-1][rates[-1].family == "all"].iloc[0]
            log.info("%s / %s: %d splits of %d against %d trainings, false verdicts %.3f [%.3f, %.3f] "
                     "(unadjusted %.3f), inconclusive %.3f", model, variable, table.split.nunique(), check["size"],
                     check["size"], found.false_rate, found.false_low, found.false_high,
                     found.false_rate_unadjusted, found.inconclusive_rate)
    return (pd.concat(tables, ignore_index=True), pd.concat(rates, ignore_index=True),
            pd.concat(power, ignore_index=True))
