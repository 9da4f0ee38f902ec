# Evaluation: each ensemble against the test split; forecast skill and calibration; return levels
# and quantile maps; then one tidy table, and the comparisons of models with their baselines.


rule evaluate:
    input:
        ensemble="results/samples/{ensemble}.zarr",
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        "results/evaluation/per_model/{ensemble}.csv",
    params:
        config=section("seed", "evaluation"),
    log:
        "results/logs/evaluate_{ensemble}.log",
    benchmark:
        "results/benchmarks/evaluate_{ensemble}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate.py"


rule select_nu:
    # nu: select: the candidates' ensembles against the validation split
    input:
        ensembles=lambda wildcards: expand("results/samples/{candidate}.zarr",
                                           candidate=candidates_of(wildcards.selected)),
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        "results/selection/{selected}.json",
    params:
        config=selection_section,
        candidates=lambda wildcards: candidates_of(wildcards.selected),
    log:
        "results/logs/select_nu_{selected}.log",
    benchmark:
        "results/benchmarks/select_nu_{selected}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/select_nu.py"


rule verify_forecasts:
    input:
        forecasts="results/forecasts/{forecaster}.zarr",
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        scores="results/evaluation/per_model/{forecaster}.csv",
        ranks="results/evaluation/rank_histograms/{forecaster}.csv",
    params:
        config=section("seed", "evaluation"),
    log:
        "results/logs/verify_forecasts_{forecaster}.log",
    benchmark:
        "results/benchmarks/verify_forecasts_{forecaster}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/verify_forecasts.py"


rule return_levels:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        sequences=source_sequences,
    output:
        "results/evaluation/per_model/return_levels_{source}.csv",
    params:
        config=section("seed", "evaluation"),
    log:
        "results/logs/return_levels_{source}.log",
    benchmark:
        "results/benchmarks/return_levels_{source}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/extremes.py"


rule quantile_maps:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        ensembles=expand("results/samples/{ensemble}.zarr", ensemble=ENSEMBLES),
        sequences=expand("results/sequences/{source}.zarr", source=SEQUENCES),
    output:
        report("results/evaluation/quantile_maps.nc", caption="../report/quantile_maps_file.rst", category="Extremes"),
    params:
        config=section("seed", "evaluation"),
        ensembles=ENSEMBLES,
        sequences=SEQUENCES,
    log:
        "results/logs/quantile_maps.log",
    benchmark:
        "results/benchmarks/quantile_maps.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/quantile_maps.py"


rule metrics_table:
    input:
        expand("results/evaluation/per_model/{model}.csv", model=GENERATOR_RUNS + TRUTH + FORECASTER_RUNS),
        expand("results/evaluation/per_model/return_levels_{source}.csv", source=["data"] + FORECASTER_RUNS + TRUTH),
    output:
        report("results/evaluation/metrics.csv", caption="../report/metrics.rst", category="Metrics"),
    params:
        confidence=CFG["evaluation"]["confidence"],
    log:
        "results/logs/metrics_table.log",
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/metrics_table.py"


rule rank_histograms:
    input:
        expand("results/evaluation/rank_histograms/{forecaster}.csv", forecaster=FORECASTER_RUNS),
    output:
        "results/evaluation/rank_histograms.csv",
    log:
        "results/logs/rank_histograms.log",
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/rank_histograms.py"


rule comparisons:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        runs=list(COMPARED_RUNS.values()),
    output:
        report("results/evaluation/comparisons.csv", caption="../report/comparisons.rst", category="Metrics"),
    params:
        config=section("seed", "evaluation"),
        pairs=COMPARISONS,
        runs=runs_of(COMPARED),
        paths=COMPARED_RUNS,
    log:
        "results/logs/comparisons.log",
    benchmark:
        "results/benchmarks/comparisons.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/comparisons.py"


rule aa_check:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        runs=[f"results/samples/{run}.zarr" for run in replicate_names(CFG, AA_MODELS)],
    output:
        report("results/evaluation/aa_check.csv", caption="../report/aa_check.rst", category="Metrics"),
        report("results/evaluation/aa_rates.csv", caption="../report/aa_rates.rst", category="Metrics"),
        report("results/evaluation/aa_power.csv", caption="../report/aa_power.rst", category="Metrics"),
    params:
        config=section("seed", "evaluation", "aa_check"),
        runs=runs_of(AA_MODELS),
    log:
        "results/logs/aa_check.log",
    benchmark:
        "results/benchmarks/aa_check.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/aa_check.py"


rule convergence:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        ensembles=[path for paths in CONVERGENCE.values() for path in paths],
        # the reference sample: the true process's ensemble where it is known, else the validation split
        reference=["results/samples/truth.zarr"] if SYNTHETIC else [],
    output:
        report("results/evaluation/convergence.csv", caption="../report/convergence_table.rst", category="Training"),
        report("results/evaluation/tail_error.csv", caption="../report/tail_error_table.rst", category="Training"),
    params:
        config=section("seed", "evaluation"),
        paths=CONVERGENCE,
    log:
        "results/logs/convergence.log",
    benchmark:
        "results/benchmarks/convergence.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/convergence.py"


if SAMPLER_BUDGET:

    rule sampler_budget:
        # evaluation.sampler_budget: tail error against network evaluations per solver
        input:
            models=expand("results/models/{run}/model.pt", run=GENERATOR_RUNS),
            store="results/data/store.zarr",
            stats="results/data/stats.json",
        output:
            table="results/evaluation/sampler_budget.csv",
            figure=report(FIGURES.get("sampler_budget", "results/figures/sampler_budget.png"),
                          caption="../report/sampler_budget.rst", category="Sampling"),
        params:
            config=section("seed", "sampling", "evaluation", "training.device"),
            models={model: replicate_names(CFG, [model]) for model in GENERATORS},
        threads: CFG["sampling"]["threads"]
        log:
            "results/logs/sampler_budget.log",
        benchmark:
            "results/benchmarks/sampler_budget.tsv"
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/sampler_budget.py"
