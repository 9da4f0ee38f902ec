import os
import subprocess
import sys
from pathlib import Path

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
