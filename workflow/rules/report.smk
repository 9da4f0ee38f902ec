# Report: figures, provenance and the self-contained HTML page.

report: "../report/workflow.rst"


rule figures:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        ensembles=expand("results/samples/{ensemble}.zarr", ensemble=ENSEMBLES),
        train_logs=expand("results/models/{model}/train_log.csv", model=MODELS),
    output:
        histograms=report(FIGURES["histograms"], caption="../report/tail_histograms.rst", category="Tails"),
        qq=report(FIGURES["qq"], caption="../report/qq.rst", category="Tails"),
        loss=report(FIGURES["loss"], caption="../report/loss_curves.rst", category="Training"),
        maps=[report(FIGURES[f"maps_{v}"], caption="../report/maps.rst", category="Sample maps",
                     labels={"variable": v}) for v in VARIABLES],
    params:
        config=section("data.source", "data.synthetic", "models", "report"),
        ensembles=ENSEMBLES,
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
        figures=list(FIGURES.values()),
        provenance="results/provenance.json",
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        ensembles=expand("results/samples/{ensemble}.zarr", ensemble=ENSEMBLES),
        train_logs=expand("results/models/{model}/train_log.csv", model=MODELS),
    output:
        "results/report.html",
    params:
        config=CFG,
        ensembles=ENSEMBLES,
        models=MODELS,
        figures=FIGURES,
    log:
        "results/logs/report.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report.py"
