from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO.parent / "shared" / "data" / "era5-samples"


@pytest.fixture
def samples_dir() -> Path:
    """The real ERA5-family files beside the checkout; tests using it skip when it is absent."""
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"real sample data not present at {SHARED_SAMPLES}")
    return SHARED_SAMPLES


@pytest.fixture
def tiny_config() -> dict:
    """A validated tiny config (12 x 12 grid, two months of 6-hourly data)."""
    import yaml

    from htweather.config import load_config

    return load_config(yaml.safe_load((REPO / "config" / "test.yaml").read_text()))
