"""`htweather check` and the workflow's start: what ingestion would reject (a variable no file
holds, a split outside the source's times, units that do not convert, a YAML syntax error) is
caught from the config and the source's metadata, before any job runs, as one line naming the
key or file, with exit code 2 and nothing written. The source cases use the real multi-file
WFDE5 sample (../shared/data/era5-samples) and skip when it is absent."""

import pytest
import yaml
from conftest import REPO, SHARED_SAMPLES, snakemake

from htweather import cli
from htweather.config import load_config
from htweather.data import ingest
from htweather.errors import HtweatherError

# precipitation_flux.nc (pr), wind_speed.nc (Wind), air_temperature.nc (Tair)
WFDE5 = SHARED_SAMPLES / "wfde5-uk-2017-01"
WFDE5_SPLITS = {"train": ["2017-01-01", "2017-01-20T23:00"], "validation": ["2017-01-21", "2017-01-24T23:00"],
                "test": ["2017-01-25", "2017-01-31T23:00"]}
WFDE5_VARIABLES = {"pr": {"units": "mm h-1", "lower_bound": 0.0}, "Wind": {}, "Tair": {}}
PREFIX = "htweather: config error: "

# kind -> (the config's data section changed from the good one, the line expected after PREFIX)
SOURCE_CASES = {
    "variable_in_no_file": (
        {"variables": {**WFDE5_VARIABLES, "msl": {}}},
        (f"data.variables.msl: no input file holds it (looked for msl, mean_sea_level_pressure, psl in "
         f"{WFDE5}/air_temperature.nc and the 2 other file(s), which hold: Tair, Wind, pr)")),
    "split_outside_the_source": (
        {"splits": {**WFDE5_SPLITS, "test": ["2018-01-01", "2018-01-31T23:00"]}},
        (f"data.splits.test: 2018-01-01 .. 2018-01-31T23:00 selects no time of {WFDE5}/air_temperature.nc "
         f"(+2 files) (2017-01-01 00:00:00 .. 2017-01-31 23:00:00)")),
    "units_that_do_not_convert": (
        {"variables": {**WFDE5_VARIABLES, "pr": {"units": "furlongs", "lower_bound": 0.0}}},
        "data.variables.pr.units: cannot convert 'kg m-2 s-1' to 'furlongs' (known: "),
}
# an unclosed brace on line 4; the parser finds out on line 5
BAD_YAML = "seed: 1\ndata:\n  source: synthetic\n  variables: {t2m: {}\ntraining: {steps: 3}\n"
BAD_YAML_LINE = ("bad.yaml, line 5: not valid YAML: expected ',' or '}', but got '<scalar>' "
                 "(while parsing a flow mapping started on line 4)")


def wfde5_config(**data_changes) -> dict:
    """A config of the three WFDE5 files (the glob), with data keys replaced."""
    return {"seed": 1, "data": {"source": str(WFDE5 / "*.nc"), "variables": WFDE5_VARIABLES,
                                "splits": WFDE5_SPLITS, "time_chunk": 8, **data_changes}}


def write_config(folder, kind: str):
    """The bad config of `kind` as a file in `folder`, and the line `check` must print."""
    path = folder / "bad.yaml"
    if kind == "yaml_syntax":
        path.write_text(BAD_YAML)
        return path, f"{PREFIX}{folder}/{BAD_YAML_LINE}"
    if not WFDE5.is_dir():
        pytest.skip(f"real sample data not present at {WFDE5}")
    changes, line = SOURCE_CASES[kind]
    path.write_text(yaml.safe_dump(wfde5_config(**changes)))
    return path, PREFIX + line


def check(path, capsys) -> tuple[int, list[str]]:
    code = cli.main(["check", str(path)])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


KINDS = [*SOURCE_CASES, "yaml_syntax"]


@pytest.mark.parametrize("kind", KINDS)
def test_check_fails_with_one_line_naming_the_key_and_writes_nothing(kind, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written relative to the working directory would show
    path, expected = write_config(tmp_path, kind)
    code, lines = check(path, capsys)
    assert code == 2
    assert len(lines) == 1
    if kind == "units_that_do_not_convert":  # then the list of known conversions
        assert lines[0].startswith(expected)
    else:
        assert lines[0] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize("kind", list(SOURCE_CASES))
def test_ingestion_rejects_what_check_rejects_with_the_same_message(kind, tmp_path, capsys):
    path, _ = write_config(tmp_path, kind)
    _, check_lines = check(path, capsys)
    config = load_config(path)
    with pytest.raises(HtweatherError) as error:
        ingest.ingest(config, None, tmp_path / "store.zarr", tmp_path / "stats.json")
    assert check_lines == [f"{PREFIX}{error.value}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_good_multi_file_config_passes_check(samples_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(wfde5_config()))
    assert cli.main(["check", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.strip().startswith(f"{path}: ok; values scanned (") and "error" not in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.yaml"]


def test_check_converts_the_synthetic_units_as_ingestion_will(tmp_path, capsys):
    """The synthetic source is written by the workflow later: its units are known up front."""
    path = tmp_path / "units.yaml"
    path.write_text("data: {variables: {t2m: {units: degC}, tp: {units: mm h-1}}}\n")
    assert cli.main(["check", str(path)]) == 0
    path.write_text("data: {variables: {t2m: {units: furlongs}}}\n")
    code, lines = check(path, capsys)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"{PREFIX}data.variables.t2m.units: cannot convert 'K' to 'furlongs'")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_workflow_start_fails_with_the_line_check_prints(kind, tmp_path, capsys):
    """`snakemake -n` (several seconds each) stops at its start with `check`'s line, before any
    job runs. A YAML syntax error is the exception: Snakemake reads --configfile itself before
    the workflow's code runs, so it fails with its own message (no line number), still before
    any job and writing nothing."""
    path, _ = write_config(tmp_path, kind)
    _, check_lines = check(path, capsys)
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = snakemake(workdir, "-n", "--configfile", str(path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if kind == "yaml_syntax":
        assert result.returncode != 0 and "Config file is not valid JSON or YAML" in result.stdout + result.stderr
    else:
        assert result.returncode == 2
        assert lines == check_lines
    assert list(workdir.iterdir()) == []


def test_shipped_real_data_config_passes_check(samples_dir, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # its source is relative: ../shared/data/...
    assert cli.main(["check", "config/wfde5-precip.yaml"]) == 0


# --- bad values and degenerate grids: made from the tiny config's synthetic file -----------------

TINY_SPLITS = {"train": ["2000-01-01", "2000-01-31T18:00"], "validation": ["2000-02-01", "2000-02-14T18:00"],
               "test": ["2000-02-15", "2000-02-29T18:00"]}


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    from conftest import load_tiny_config

    from htweather.data import synthetic

    folder = tmp_path_factory.mktemp("raw")
    return synthetic.write_netcdf(load_tiny_config()["data"]["synthetic"], folder, seed=1)[0]


def _spoil(source, folder, how: str):
    """A copy of the synthetic file spoiled in one way; returns its path."""
    import numpy as np
    import xarray as xr

    ds = xr.open_dataset(source).load()
    train = ds.time.values <= np.datetime64("2000-01-31T18:00")
    if how == "equal_latitudes":  # a degenerate grid: every row at one latitude
        ds = ds.assign_coords(latitude=np.full(ds.sizes["latitude"], 50.0))
    elif how == "repeated_latitude":
        lat = ds.latitude.values.copy()
        lat[3] = lat[2]
        ds = ds.assign_coords(latitude=lat)
    elif how == "non_monotonic_longitude":
        lon = ds.longitude.values.copy()
        lon[[4, 5]] = lon[[5, 4]]
        ds = ds.assign_coords(longitude=lon)
    elif how == "constant_in_train":
        ds["w"][train] = 0.25
    elif how == "missing_in_train":
        ds["w"][train] = np.nan
    elif how == "infinite":
        ds["t2m"][30, 4, 5] = np.inf
    path = folder / f"{how}.nc"
    ds.to_netcdf(path)
    return path


BAD_VALUES = {
    "equal_latitudes": r"latitude 50 is repeated \(every latitude value is the same\): zero grid spacing",
    "repeated_latitude": r"latitude 57.5 is repeated \(at latitude indices 2 and 3\): zero grid spacing",
    "non_monotonic_longitude": r"longitude is not monotonic \(\S+ is followed by \S+ at index 5",
    "constant_in_train": r"variable 'w' \(data.variables.w\) is constant over the train split \(data.splits\): "
                         r"every value is 0.25",
    "missing_in_train": r"variable 'w' \(data.variables.w\) is missing \(NaN\) everywhere in the train split",
    "infinite": r"variable 't2m' \(data.variables.t2m\) has 1 infinite values",
}


@pytest.mark.parametrize("how", list(BAD_VALUES))
def test_check_catches_degenerate_grids_and_bad_values_in_one_line(how, synthetic_file, tmp_path, capsys,
                                                                   monkeypatch):
    """Each is refused by `check` (the values are scanned: the selection is small), in one line
    naming the file, the variable or coordinate and the key, with exit code 2 and nothing
    written; ingestion refuses it too, leaving no store."""
    import re

    monkeypatch.chdir(tmp_path)
    bad = _spoil(synthetic_file, tmp_path, how)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": str(bad), "splits": TINY_SPLITS, "time_chunk": 8,
                                             "variables": {"t2m": {}, "w": {}, "tp": {"units": "mm",
                                                                                     "lower_bound": 0.0}}}}))
    code, lines = check(path, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"{PREFIX}{bad}: ") and re.search(BAD_VALUES[how], lines[0]), lines[0]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(HtweatherError):
        ingest.ingest(load_config(path), None, tmp_path / "store.zarr", tmp_path / "stats.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store, no statistics, no temporaries


def test_check_scan_says_how_long_it_took(synthetic_file, tmp_path, capsys):
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": str(synthetic_file), "splits": TINY_SPLITS}}))
    assert cli.main(["check", "--scan", str(path)]) == 0
    out = capsys.readouterr().out.strip()
    import re
    assert re.fullmatch(rf"{re.escape(str(path))}: ok; values scanned \(\d+\.\d MB\) in \d+\.\d s", out), out


def test_check_leaves_large_selections_to_scan(synthetic_file, tmp_path, capsys, monkeypatch):
    """Above SCAN_BYTES, `check` reads metadata only and says so; a constant variable then
    passes `check` and is caught by `check --scan`."""
    monkeypatch.setattr(ingest, "SCAN_BYTES", 1000.0)
    bad = _spoil(synthetic_file, tmp_path, "constant_in_train")
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": str(bad), "splits": TINY_SPLITS}}))
    assert cli.main(["check", str(path)]) == 0
    assert "values not scanned" in capsys.readouterr().out
    code, lines = check_scan(path, capsys)
    assert code == 2 and "is constant over the train split" in lines[0]


def check_scan(path, capsys):
    code = cli.main(["check", "--scan", str(path)])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_projected_grid_that_does_not_advance_has_cells_of_zero_area(tmp_path):
    """A y, x grid whose 2-D latitude is the same in every row: zero-area cells, refused."""
    import numpy as np
    import xarray as xr

    from conftest import GRID_SPLITS, GRID_TIME

    ny, nx = 6, 7
    rng = np.random.default_rng(0)
    lat = np.full((ny, nx), 45.0)
    lon = np.tile(np.linspace(-100, -94, nx), (ny, 1))
    ds = xr.Dataset({"tp": (("time", "y", "x"), rng.gamma(0.5, 1.0, (len(GRID_TIME), ny, nx)), {"units": "mm"})},
                    coords={"time": GRID_TIME, "y": np.arange(ny) * 3000.0, "x": np.arange(nx) * 3000.0,
                            "lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})
    path = tmp_path / "flat.nc"
    ds.to_netcdf(path)
    config = load_config({"data": {"source": str(path), "splits": GRID_SPLITS,
                                   "variables": {"tp": {"units": "mm", "lower_bound": 0.0}}}})
    with pytest.raises(HtweatherError, match=r"flat.nc: 42 of 42 grid cells have zero area .*degenerate grid"):
        ingest.check_source(config)
