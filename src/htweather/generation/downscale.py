"""Downscaled ensembles: fine fields from the coarse fields of the test split.

Every chosen test time's fine field is coarsened (`data.coarsening`: area-weighted block means)
and brought back to the fine grid; a downscaling model generates `downscaling.members` fine
fields from it. The baselines are deterministic (one member): the block-mean-conserving
interpolation itself, and that interpolation followed by empirical quantile mapping per cell,
fitted on the training split (the classic statistical downscaling; python-cmethods'
`quantile_mapping`: the interpolated training fields' CDF mapped onto the fine training
fields' CDF, over the times where the truth has a value).

The stores have the forecasts' layout (init_time, lead, member, grid) with one lead, 0: the
fine field of the same time as its coarse input, so that the forecast scores
(`evaluation.forecasts`) and the comparisons read them as they are.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..data.coarsening import Coarsening
from ..data.store import (denormalise, grid_coords, grid_dims, grid_shape, load_split, load_split_times, load_stats,
                          make_dry_below, split_fields, test_fields)
from ..models import assemble
from ..models.devices import autocast, select_device, set_threads
from ..runtime import FinishedChunks, derived_seed, file_digest, progress, replicate_seed
from .forecast import _write

log = logging.getLogger(__name__)


def chosen_times(times: pd.DatetimeIndex, count: int | str) -> np.ndarray:
    """`count` test times evenly spread over the split ("all": every one)."""
    if count == "all" or count >= len(times):
        return np.arange(len(times))
    return np.unique(np.round(np.linspace(0, len(times) - 1, count)).astype(int))


def _dataset(fields: dict[str, np.ndarray], stats: dict, times: pd.DatetimeIndex, attrs: dict) -> xr.Dataset:
    """Physical fields per variable (time, member, H, W) -> the forecasts' layout at lead 0."""
    members = next(iter(fields.values())).shape[1]
    coords = {"init_time": times.values, "lead": np.array([0]), "member": np.arange(members),
              "valid_time": (("init_time", "lead"), times.values[:, None]), **grid_coords(stats)}
    dims = ("init_time", "lead", "member") + grid_dims(stats)
    return xr.Dataset({v: (dims, x[:, None].astype(np.float32), {"units": stats["variables"][v]["units"]})
                       for v, x in fields.items()}, coords=coords, attrs=attrs)


def conserved(fields: dict[str, np.ndarray], coarsening: Coarsening, truth: dict[str, np.ndarray]) -> dict:
    """Generated fields (time, member, H, W) per variable with each block's mean set to the coarse
    input's (`downscaling.conserve`), then the variable's dry threshold applied again."""
    out = {}
    for v, x in fields.items():
        coarse = coarsening.coarsen(truth[v])[:, None]
        out[v] = make_dry_below(coarsening.conserve(x, coarse, v), coarsening.stats["variables"][v])
    return out


def coarse_inputs(config: dict, factor: int, store: str | Path, stats: dict):
    """(the chosen test times, their positions in the split, the Coarsening, and each chosen
    time's coarse field on the fine grid (time, C, H, W), normalised): what every downscaler is
    given."""
    times = load_split_times(store, "test")
    picks = chosen_times(times, config["downscaling"]["times"])
    coarsening = Coarsening(stats, factor)
    return times[picks], picks, coarsening, coarsening.condition(load_split(store, "test")[picks])


def write_downscaled(generated: np.ndarray, config: dict, stats: dict, store: str | Path, times: pd.DatetimeIndex,
                     picks: np.ndarray, coarsening: Coarsening, attrs: dict, out: str | Path) -> Path:
    """Generated fields (time, member, C, H, W) in normalised units -> physical units (with the
    block means set to the coarse input's where `downscaling.conserve`), written to `out` in the
    forecasts' layout at lead 0."""
    if not np.isfinite(generated).all():
        raise FloatingPointError(f"model {attrs.get('model')}: sampler produced non-finite values")
    fields = denormalise(generated.astype(np.float64), stats)
    if config["downscaling"]["conserve"]:
        fields = conserved(fields, coarsening, {v: x[picks] for v, x in test_fields(store).items()})
    _write(_dataset(fields, stats, times, {**attrs, "conserve": int(config["downscaling"]["conserve"])}), out,
           "init_time")
    return Path(out)


def downscale(config: dict, model_path: str | Path, store: str | Path, stats_path: str | Path, out: str | Path,
              threads: int | None = None) -> Path:
    """`downscaling.members` fine fields from each chosen test time's coarse field, in physical
    units, written to `out` (zarr). A snapshot of the model (training.snapshots) draws the same
    noise as the model itself (the seed is the model's and replicate's), so that the convergence
    check compares weights, not noise."""
    opts, sampling = config["downscaling"], config["sampling"]
    stats = load_stats(stats_path)
    set_threads(threads or sampling["threads"])
    device = select_device(config["training"]["device"])
    model, spec, ckpt = assemble.load_model(model_path, device)
    if not spec.coarsen_factor:
        raise ValueError(f"model {spec.name} is not a downscaling model (models.{spec.name}.downscale)")
    replicate = int(ckpt.get("replicate", 0))
    seed = replicate_seed(config["seed"], "downscale", spec.name, replicate)
    times, picks, coarsening, condition = coarse_inputs(config, spec.coarsen_factor, store, stats)
    members, batch = opts["members"], sampling["batch_size"]
    rows = np.repeat(condition, members, axis=0)  # time-major: each time's members together
    finished = FinishedChunks(out, {"model": file_digest(model_path), "seed": seed, "downscaling": opts,
                                    "sampling": sampling, "times": [str(t) for t in times]})
    nfe = assemble.evaluations_per_sample(spec, sampling)
    log.info("%s: %d members from each of %d coarse test fields (%d x %d blocks); %d network evaluations each",
             spec.name, members, len(picks), spec.coarsen_factor, spec.coarsen_factor, nfe)
    shape = grid_shape(stats)
    bar = progress(len(rows), f"downscale {spec.name}")
    chunks = []
    t0 = time.perf_counter()
    for start in range(0, len(rows), batch):
        def make(start=start):  # called at once, in this iteration
            torch.manual_seed(derived_seed(seed, "downscale", str(start)))
            cond = torch.from_numpy(rows[start:start + batch]).to(device)
            with autocast(device):
                return assemble.generate(model, spec, len(cond), shape, sampling, device, cond=cond).cpu().numpy()

        chunks.append(finished.get_or_make(f"fields-{start:09d}", make)[0])
        bar.update(len(chunks[-1]))
    bar.close()
    seconds = time.perf_counter() - t0
    generated = np.concatenate(chunks)
    generated = generated.reshape(len(picks), members, *generated.shape[1:])  # (time, member, C, H, W)
    attrs = {"model": spec.name, "replicate": replicate, "family": spec.family, "seed": seed,
             "nu": str(["inf" if np.isinf(v) else v for v in spec.nu]), "coarsen_factor": spec.coarsen_factor,
             "network_evaluations_per_field": nfe, "sampling_seconds": round(seconds, 3),
             "training_steps": int(ckpt["steps"])}
    write_downscaled(generated, config, stats, store, times, picks, coarsening, attrs, out)
    finished.clear()
    log.info("wrote %s in %.1f s", out, seconds)
    return Path(out)


def quantile_map(observed: np.ndarray, modelled: np.ndarray, target: np.ndarray, bins: int,
                 lower_bound: float | None) -> np.ndarray:
    """Empirical quantile mapping per cell with python-cmethods: `target` (time, cells) through
    the CDF of `modelled` (time, cells) and the inverse CDF of `observed` (time, cells), each
    cell on its own (cmethods' kind "*" where the variable has a lower bound, which differs from
    "+" only at the lower end of the interpolation), floored at the bound."""
    from cmethods import adjust

    def array(values):
        return xr.DataArray(values, dims=("time", "cell"), name="field")  # cmethods returns a named Dataset

    mapped = adjust(method="quantile_mapping", obs=array(observed), simh=array(modelled),
                    simp=array(target).rename(time="t_simp"), n_quantiles=bins,
                    kind="*" if lower_bound is not None else "+",
                    input_core_dims={"obs": "time", "simh": "time", "simp": "t_simp"})
    out = np.asarray(mapped["field"].transpose("t_simp", "cell").values, dtype=np.float64)
    return out if lower_bound is None else np.maximum(out, lower_bound)


def downscale_baseline(config: dict, baseline: str, store: str | Path, stats_path: str | Path, out: str | Path) -> Path:
    """The deterministic baseline `baseline` (interpolation | quantile_mapping) on the same test
    times as the models, one member, written to `out`."""
    opts = config["downscaling"]
    stats = load_stats(stats_path)
    coarsening = Coarsening(stats, opts["factor"])
    times = load_split_times(store, "test")
    picks = chosen_times(times, opts["times"])
    test = {v: x[picks] for v, x in split_fields(store, "test").items()}
    fields = coarsening.interpolated(test)
    if baseline == "quantile_mapping":
        train = split_fields(store, "train")
        interpolated_train = coarsening.interpolated(train)
        real = coarsening.mask if coarsening.mask is not None else np.ones(coarsening.areas.shape, dtype=bool)
        for v in fields:
            mapped = np.full(fields[v].shape, np.nan)
            # the two training distributions over the same times: none where the truth is missing
            modelled = np.where(np.isnan(train[v]), np.nan, interpolated_train[v])
            mapped[:, real] = quantile_map(train[v][:, real], modelled[:, real], fields[v][:, real],
                                           opts["quantile_mapping_bins"], coarsening.lower_bound(v))
            fields[v] = mapped
            log.info("%s: quantile mapping per cell fitted on %d training fields", v, len(train[v]))
    elif baseline != "interpolation":
        raise ValueError(f"downscaling.baselines: unknown baseline '{baseline}'")
    # the post-processing every generated field gets (store.denormalise): below dry_below is dry
    fields = {v: make_dry_below(x, stats["variables"][v]) for v, x in fields.items()}
    attrs = {"model": baseline, "replicate": 0, "coarsen_factor": opts["factor"], "deterministic": 1}
    _write(_dataset({v: x[:, None] for v, x in fields.items()}, stats, times[picks], attrs), out, "init_time")
    log.info("wrote %s", out)
    return Path(out)
