# Data: the embedded synthetic ERA5-style files (or the user's NetCDF) -> normalised zarr store.

if SYNTHETIC:
    import pandas as pd

    _years = sorted(set(pd.date_range(CFG["data"]["synthetic"]["start"], CFG["data"]["synthetic"]["end"],
                                      freq=CFG["data"]["synthetic"]["freq"]).year))
    RAW_FILES = [f"results/raw/era5_synthetic_{year}.nc" for year in _years]

    rule synthetic_data:
        output:
            RAW_FILES,
        params:
            config=section("seed", "data.synthetic"),
        log:
            "results/logs/synthetic_data.log",
        benchmark:
            "results/benchmarks/synthetic_data.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../scripts/synthetic_data.py"

else:
    RAW_FILES = input_files(CFG)


rule ingest:
    input:
        RAW_FILES,
    output:
        store=directory("results/data/store.zarr"),
        stats="results/data/stats.json",
    params:
        config={k: v for k, v in section("data")["data"].items() if k != "synthetic"},
    log:
        "results/logs/ingest.log",
    benchmark:
        "results/benchmarks/ingest.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/ingest.py"
