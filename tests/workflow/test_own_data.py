"""The README's "Run it on your own data" example, as written there, on the CDS file in
../shared/data: the config block is taken from the README (its source pointed at the shared
file), run by the README's command with a small training budget layered on top."""

import html
import re
import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO, SHARED_SAMPLES, snakemake

ERA5 = SHARED_SAMPLES / "ERA5_monthly_t2m_msl_tp.nc"
# only the budget shrinks: the data, variables, splits and models are the README's
SMALL = {"architecture": {"base_channels": 8, "channel_mult": [1, 2], "embedding_dim": 16},
         "training": {"steps": 10, "batch_size": 4, "checkpoint_every": 5, "log_every": 5, "warmup_steps": 2},
         "sampling": {"members": 8, "batch_size": 8, "edm": {"steps": 4}},
         "forecast": {"init_times": 2, "members": 4},
         "evaluation": {"bootstrap": 10, "gev_bootstrap": 5, "convergence_members": 4, "block_steps": 12},
         "report": {"map_members": 2}}


def readme_example() -> tuple[dict, str, str]:
    """The YAML config (parsed and as written) and the command of the README's own-data section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Run it on your own data", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    config = next(body for lang, body in blocks if lang == "yaml")
    command = next(body for lang, body in blocks if lang == "bash")
    return yaml.safe_load(config), command.strip(), config


def test_the_readme_example_is_short_and_valid():
    from htweather.config import load_config
    config, command, text = readme_example()
    assert command == "snakemake --cores all --configfile my-era5.yaml"
    assert len([line for line in text.splitlines() if line.strip()]) <= 12  # "a config of about ten lines"
    load_config(config, check_paths=False)


@pytest.mark.slow
@pytest.mark.skipif(not ERA5.exists(), reason="../shared/data/era5-samples is not here")
def test_the_readme_example_runs_on_a_real_cds_file(tmp_path):
    config, command, text = readme_example()
    shutil.copy(ERA5, tmp_path / config["data"]["source"])
    (tmp_path / "my-era5.yaml").write_text(text)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL))
    # as the README says (the config file named from the run's directory), plus the small budget
    args = [str(tmp_path / a) if a == "my-era5.yaml" else a for a in command.split()[1:]]
    result = snakemake(tmp_path, *args, str(tmp_path / "small.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = pd.read_csv(tmp_path / "results/evaluation/metrics.csv")
    assert {"edm", "tedm", "data"} <= set(metrics.model) and set(metrics.variable) == {"tp"}
    assert {"quantile_0.999", "exceedance_ratio_p999"} <= set(metrics[metrics.model == "tedm"].metric)
    page = html.unescape((tmp_path / "results/report.html").read_text())
    assert "The data's 99.9th percentile is" in page and "t-EDM against EDM (3 vs 3 runs)" in page
