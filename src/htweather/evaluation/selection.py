"""`nu: select`: choose a model's nu from candidates trained and sampled like the model, by their
key tail metrics against the VALIDATION split (the test split stays for the comparisons).

Each candidate is one training run, so the choice is one draw: the table beside it shows how far
apart the candidates are, and where they are close the choice says little.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from .. import artifacts
from ..config import is_gaussian, selected_variables
from ..data.store import grid_mask, load_stats, split_fields, valid_values
from ..tail_metrics import error, key_metrics

log = logging.getLogger(__name__)


def select_nu(config: dict, model: str, ensembles: dict[str, str | Path], store: str | Path,
              stats_path: str | Path) -> dict:
    """ensembles: {candidate name: its ensemble store}; config holds the model's entry, its
    `nu_candidates` and `evaluation`. Returns the choice and every candidate's scores."""
    stats = load_stats(stats_path)
    mask = grid_mask(stats)
    variables = selected_variables(config["models"][model], stats["channels"])
    validation = split_fields(store, "validation")
    reference = {v: valid_values(validation[v], mask) for v in variables}
    rows = []
    for candidate, path in ensembles.items():
        ds = artifacts.open_zarr(path)
        metrics, errors = {}, []
        for v in variables:
            found = key_metrics(valid_values(ds[v].values.astype(np.float64), mask), reference[v],
                                stats["variables"][v]["tails"], config["evaluation"]["tail_probability"])
            metrics[v] = found
            errors += [float(error(m, x)) for m, x in found.items()]
        value = config["nu_candidates"][candidate]["value"]
        score = float(np.mean(errors))  # not finite (e.g. a q0.999 of 0 on a short split): never chosen
        rows.append({"candidate": candidate, "nu": "inf" if is_gaussian(value) else float(value),
                     "tail_error": score if math.isfinite(score) else math.inf, "metrics": metrics})
    best = min(rows, key=lambda r: (r["tail_error"], -_as_float(r["nu"])))  # ties: the lighter tail
    ordered = sorted(r["tail_error"] for r in rows)
    return {"model": model, "variables": variables, "split": "validation",
            "validation_times": int(next(iter(validation.values())).shape[0]), "chosen": best["nu"],
            "margin": float(ordered[1] - ordered[0]) if len(ordered) > 1 else math.nan,
            "candidates": rows}


def _as_float(nu) -> float:
    return math.inf if nu == "inf" else float(nu)


def write_selection(config: dict, model: str, ensembles: dict[str, str | Path], store: str | Path,
                    stats_path: str | Path, out: str | Path) -> dict:
    """`select_nu`, logged and written as JSON (atomically)."""
    result = select_nu(config, model, ensembles, store, stats_path)
    for row in result["candidates"]:
        log.info("%s: nu %s, mean key tail error on the validation split %.4f", row["candidate"], row["nu"],
                 row["tail_error"])
    log.info("%s: nu %s chosen for %s (margin to the next candidate %.4f; one training per candidate)", model,
             result["chosen"], ", ".join(result["variables"]), result["margin"])
    with artifacts.written(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result
