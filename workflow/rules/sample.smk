# Sampling: ensembles in physical units; forecasts and free-running sequences of the forecast
# models; the truth ensemble and sequences when the data are synthetic.


rule sample:
    input:
        model="results/models/{generator}/model.pt",
        stats="results/data/stats.json",
    output:
        directory("results/samples/{generator}.zarr"),
    params:
        config=section("seed", "sampling", "training.device"),
    threads: CFG["sampling"]["threads"]
    log:
        "results/logs/sample_{generator}.log",
    benchmark:
        "results/benchmarks/sample_{generator}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/sample.py"


if SNAPSHOTS:  # a rule with no output cannot be defined

    rule sample_snapshots:
        # every snapshot of a run in one job: a job's start-up (imports, loading) costs more than
        # sampling a small ensemble
        input:
            models=expand("results/models/{{generator}}/snapshot_{k}.pt", k=SNAPSHOTS),
            stats="results/data/stats.json",
        output:
            [directory(f"results/snapshots/{{generator}}/snapshot_{k}.zarr") for k in SNAPSHOTS],
        params:
            config={**section("seed", "sampling", "training.device"),
                    "sampling": {**CFG["sampling"], "members": CFG["evaluation"]["convergence_members"]}},
        threads: CFG["sampling"]["threads"]
        log:
            "results/logs/sample_snapshots_{generator}.log",
        benchmark:
            "results/benchmarks/sample_snapshots_{generator}.tsv"
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/sample_snapshots.py"

    rule forecast_snapshots:
        # the convergence check of a forecast model: lead-1 forecasts from each snapshot, from the
        # same start times and with the same members as its own forecasts
        input:
            models=expand("results/models/{{forecaster}}/snapshot_{k}.pt", k=SNAPSHOTS),
            store="results/data/store.zarr",
            stats="results/data/stats.json",
        output:
            [directory(f"results/snapshots/{{forecaster}}/snapshot_{k}.zarr") for k in SNAPSHOTS],
        params:
            config=forecaster_section,
        threads: CFG["sampling"]["threads"]
        log:
            "results/logs/forecast_snapshots_{forecaster}.log",
        benchmark:
            "results/benchmarks/forecast_snapshots_{forecaster}.tsv"
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/forecast_snapshots.py"


rule sample_truth:
    input:
        stats="results/data/stats.json",
    output:
        directory("results/samples/truth.zarr"),
    params:
        config=section("seed", "data.source", "data.synthetic", "data.variables", "sampling.members"),
    log:
        "results/logs/sample_truth.log",
    benchmark:
        "results/benchmarks/sample_truth.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/sample_truth.py"


rule forecast:
    input:
        model="results/models/{forecaster}/model.pt",
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        forecasts=directory("results/forecasts/{forecaster}.zarr"),
        sequences=directory("results/sequences/{forecaster}.zarr"),
    params:
        config=forecaster_section,
    threads: CFG["sampling"]["threads"]
    # the longest chain (train -> forecast -> verify / return levels): start it as soon as it can
    priority: 10
    log:
        "results/logs/forecast_{forecaster}.log",
    benchmark:
        "results/benchmarks/forecast_{forecaster}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/forecast.py"


rule truth_sequences:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        directory("results/sequences/truth.zarr"),
    params:
        config=section("seed", "data.source", "data.synthetic", "data.variables", "evaluation.truth_sequences"),
    log:
        "results/logs/truth_sequences.log",
    benchmark:
        "results/benchmarks/truth_sequences.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/truth_sequences.py"
