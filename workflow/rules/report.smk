# Report: figures, provenance and the self-contained HTML page.

report: "../report/workflow.rst"


# The figures that exist only for some configs (a nu sweep, forecast models), with their captions.
_OPTIONAL_FIGURES = {
    "nu_sweep": ("../report/nu_sweep.rst", "How nu matters"),
    "forecast_skill": ("../report/forecast_skill.rst", "Forecasts"),
    "rank_histograms": ("../report/rank_histograms.rst", "Forecasts"),
    "return_levels": ("../report/return_levels.rst", "Tails"),
    "convergence": ("../report/convergence.rst", "Training"),
    "spatial": ("../report/spatial_structure.rst", "Fields"),
}
CONVERGENCE_TABLE = ["results/evaluation/convergence.csv"] if CONVERGENCE else []


rule figures:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        ensembles=expand("results/samples/{ensemble}.zarr", ensemble=ENSEMBLES),
        replicate_ensembles=expand("results/samples/{run}.zarr", run=REPLICATE_GENERATOR_RUNS),
        forecasts=expand("results/forecasts/{forecaster}.zarr", forecaster=FORECASTERS),
        train_logs=expand("results/models/{model}/train_log.csv", model=MODELS),
        metrics="results/evaluation/metrics.csv",
        ranks="results/evaluation/rank_histograms.csv",
        maps="results/evaluation/quantile_maps.nc",
        convergence=CONVERGENCE_TABLE,
    output:
        histograms=report(FIGURES["histograms"], caption="../report/tail_histograms.rst", category="Tails"),
        qq=report(FIGURES["qq"], caption="../report/qq.rst", category="Tails"),
        quantile_maps=[report(FIGURES[f"quantile_maps_{v}"], caption="../report/quantile_maps.rst", category="Tails",
                              labels={"variable": v}) for v in VARIABLES],
        loss=report(FIGURES["loss"], caption="../report/loss_curves.rst", category="Training"),
        maps=[report(FIGURES[f"maps_{v}"], caption="../report/maps.rst", category="Sample maps",
                     labels={"variable": v}) for v in VARIABLES],
        optional=[report(FIGURES[k], caption=caption, category=category)
                  for k, (caption, category) in _OPTIONAL_FIGURES.items() if k in FIGURES],
    params:
        config=section("seed", "data.source", "data.synthetic", "models", "nu_sweep", "report", "evaluation.spatial"),
        ensembles=ENSEMBLES,
        replicate_runs=REPLICATE_GENERATOR_RUNS,
        forecasters=FORECASTERS,
        models=MODELS,
        figures=FIGURES,
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/figures.py"


rule provenance:
    input:
        "results/evaluation/metrics.csv",
        list(FIGURES.values()),
    output:
        report("results/provenance.json", caption="../report/provenance.rst", category="Provenance"),
    params:
        config=CFG,
        root=str(ROOT),
    log:
        "results/logs/provenance.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/provenance.py"


rule report:
    input:
        metrics="results/evaluation/metrics.csv",
        comparisons="results/evaluation/comparisons.csv",
        convergence=CONVERGENCE_TABLE,
        sampler_budget=SAMPLER_BUDGET_TABLE,
        aa_rates=[t for t in AA_CHECK_TABLES if t.endswith("aa_rates.csv")],
        selections=SELECTIONS,
        figures=list(FIGURES.values()),
        provenance="results/provenance.json",
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        ensembles=expand("results/samples/{ensemble}.zarr", ensemble=ENSEMBLES),
        forecasts=expand("results/forecasts/{forecaster}.zarr", forecaster=FORECASTERS),
        train_logs=expand("results/models/{model}/train_log.csv", model=MODELS),
    output:
        "results/report.html",
    params:
        config=CFG,
        ensembles=ENSEMBLES,
        forecasters=FORECASTERS,
        models=MODELS,
        figures=FIGURES,
    log:
        "results/logs/report.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report.py"
