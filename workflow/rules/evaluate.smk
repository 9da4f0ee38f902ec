# Evaluation: each ensemble against the test split, then one tidy table.


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


rule metrics_table:
    input:
        expand("results/evaluation/per_model/{ensemble}.csv", ensemble=ENSEMBLES),
    output:
        report("results/evaluation/metrics.csv", caption="../report/metrics.rst", category="Metrics"),
    log:
        "results/logs/metrics_table.log",
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/metrics_table.py"
