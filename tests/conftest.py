import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO.parent / "shared" / "data" / "era5-samples"
RADAR_SAMPLES = REPO.parent / "shared" / "data" / "radar-samples"


@pytest.fixture
def samples_dir() -> Path:
    """The real ERA5-family files beside the checkout; tests using it skip when it is absent."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"real sample data not present at {SHARED_SAMPLES}")
    return SHARED_SAMPLES


@pytest.fixture
def radar_dir() -> Path:
    """The real MRMS radar frames beside the checkout; tests using it skip when it is absent."""
    if not (RADAR_SAMPLES / "mrms-2019-06-10").is_dir():
        pytest.skip(f"real radar data not present at {RADAR_SAMPLES}")
    return RADAR_SAMPLES / "mrms-2019-06-10"


def load_tiny_config() -> dict:
    """A validated tiny config (12 x 12 grid, two months of 6-hourly data)."""
    import yaml

    from htweather.config import load_config

    return load_config(yaml.safe_load((REPO / "config" / "test.yaml").read_text()))


@pytest.fixture
def tiny_config() -> dict:
    return load_tiny_config()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The tiny config's synthetic data ingested into a store, once per test module:
    (config, folder holding store.zarr and stats.json)."""
    from htweather.data import ingest, synthetic

    cfg = load_tiny_config()
    root = tmp_path_factory.mktemp("store")
    files = synthetic.write_netcdf(cfg["data"]["synthetic"], root / "raw", seed=cfg["seed"])
    ingest.ingest(cfg, [str(f) for f in files], root / "store.zarr", root / "stats.json")
    return cfg, root


def snakemake(workdir, *args, timeout=900):
    """Run the workflow in `workdir` (a fresh process, as a user would)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                           "--directory", str(workdir), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole workflow on the tiny config, run locally on 2 cores (shared by the workflow
    tests and by the SLURM test that compares its outputs with this run's)."""
    workdir = tmp_path_factory.mktemp("run")
    result = snakemake(workdir, "--cores", "2", "--configfile", str(REPO / "config" / "test.yaml"))
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


# A projected grid's test data (tests/data/test_grids.py, tests/workflow/test_projected_grid.py)
GRID_TIME = pd.date_range("2001-01-01", periods=40, freq="6h")
GRID_SPLITS = {"train": ["2001-01-01", "2001-01-07T18:00"], "validation": ["2001-01-08", "2001-01-08T18:00"],
          "test": ["2001-01-09", "2001-01-10T18:00"]}


def rotated_to_geographic(rlat, rlon, pole_lat=39.25, pole_lon=-162.0):
    """Geographic latitude and longitude of rotated-pole coordinates (degrees): the rotated
    origin lands at (90 - pole_lat, pole_lon + 180), as in EURO-CORDEX."""
    phi, lam = np.deg2rad(rlat), np.deg2rad(rlon)
    v = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    tilt, turn = np.deg2rad(90.0 - pole_lat), np.deg2rad(pole_lon + 180.0)
    ry = np.array([[np.cos(tilt), 0, -np.sin(tilt)], [0, 1, 0], [np.sin(tilt), 0, np.cos(tilt)]])
    rz = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    x, y, z = np.tensordot(rz @ ry, v, axes=1)
    return np.rad2deg(np.arcsin(z)), np.rad2deg(np.arctan2(y, x))


# A small ERA5-style ensemble GRIB (tests/data/test_grib.py, tests/workflow/test_grib_ensemble.py)
GRIB_GRID = {"Ni": 9, "Nj": 7, "latitudeOfFirstGridPointInDegrees": 56.0, "longitudeOfFirstGridPointInDegrees": -4.0,
             "latitudeOfLastGridPointInDegrees": 50.0, "longitudeOfLastGridPointInDegrees": 4.0,
             "iDirectionIncrementInDegrees": 1.0, "jDirectionIncrementInDegrees": 1.0}


def write_grib_ensemble(path, times, levels=(850, 500), members=10, seed=0, hybrid_too=False) -> np.ndarray:
    """GRIB2 temperature `t` on pressure levels, `members` members per time (the `number` key of
    an ensemble product, as the CDS delivers ERA5's 10-member ensemble), on a 7 x 9 0.25-degree
    box over the UK, written with eccodes. Heavy-ish tails: Student-t anomalies. With
    `hybrid_too`, the same parameter also on a model level: a file cfgrib needs a filter for.
    Returns the values, (time, level, member, 7, 9)."""
    import eccodes

    rng = np.random.default_rng(seed)
    values = np.empty((len(times), len(levels), members, 7, 9))
    with open(path, "wb") as out:
        for i, t in enumerate(times):
            for j, level in enumerate(levels):
                base = 290.0 - (1000 - level) / 8 + 3 * rng.standard_t(4, size=(7, 9))
                for number in range(members):
                    field = base + rng.standard_t(3, size=(7, 9))
                    values[i, j, number] = field
                    h = eccodes.codes_grib_new_from_samples("GRIB2")
                    if members > 1:
                        eccodes.codes_set(h, "productDefinitionTemplateNumber", 1)
                    keys = {"centre": "ecmf", "dataDate": int(t.strftime("%Y%m%d")), "dataTime": int(t.strftime("%H%M")),
                            "discipline": 0, "parameterCategory": 0, "parameterNumber": 0, "stepRange": 0,
                            "typeOfFirstFixedSurface": 100, "scaleFactorOfFirstFixedSurface": 0,
                            "scaledValueOfFirstFixedSurface": level * 100, **GRIB_GRID}
                    if members > 1:
                        keys.update(typeOfEnsembleForecast=3, perturbationNumber=number,
                                    numberOfForecastsInEnsemble=members)
                    for key, value in keys.items():
                        eccodes.codes_set(h, key, value)
                    eccodes.codes_set_values(h, field.ravel())
                    eccodes.codes_write(h, out)
                    eccodes.codes_release(h)
            if hybrid_too:
                h = eccodes.codes_grib_new_from_samples("GRIB2")
                for key, value in {"centre": "ecmf", "dataDate": int(t.strftime("%Y%m%d")),
                                   "dataTime": int(t.strftime("%H%M")), "discipline": 0, "parameterCategory": 0,
                                   "parameterNumber": 0, "stepRange": 0, "typeOfFirstFixedSurface": 105,
                                   "scaleFactorOfFirstFixedSurface": 0, "scaledValueOfFirstFixedSurface": 137,
                                   **GRIB_GRID}.items():
                    eccodes.codes_set(h, key, value)
                eccodes.codes_set_values(h, np.full(63, 285.0))
                eccodes.codes_write(h, out)
                eccodes.codes_release(h)
    return values


# A small workflow on such a GRIB (tests/workflow/test_grib_ensemble.py, tests/workflow/test_faults.py)
GRIB_WORKFLOW_CONFIG = {
    "seed": 3,
    "data": {"variables": {"t@850": {}, "t@500": {}},
             "splits": {"train": ["2001-01-01", "2001-01-07T18:00"], "validation": ["2001-01-08", "2001-01-08T18:00"],
                        "test": ["2001-01-09", "2001-01-10T18:00"]}},
    "architecture": {"base_channels": 8, "channel_mult": [1, 2], "embedding_dim": 16},
    "models": {"edm": {"family": "edm", "nu": "inf"}, "tedm": {"family": "edm", "nu": 5}},
    "comparisons": [["tedm", "edm"]],
    "nu_sweep": None,
    "training": {"steps": 10, "batch_size": 4, "checkpoint_every": 5, "log_every": 5, "warmup_steps": 2},
    "sampling": {"members": 8, "batch_size": 8, "edm": {"steps": 4}},
    "evaluation": {"bootstrap": 10, "block_steps": 4, "convergence_members": 4},
    "report": {"map_members": 2},
}
