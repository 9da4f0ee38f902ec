# Sampling: ensembles in physical units; the truth ensemble when the data are synthetic.


rule sample:
    input:
        model="results/models/{model}/model.pt",
        stats="results/data/stats.json",
    output:
        directory("results/samples/{model}.zarr"),
    params:
        config=section("seed", "sampling", "training.device"),
    threads: CFG["sampling"]["threads"]
    log:
        "results/logs/sample_{model}.log",
    benchmark:
        "results/benchmarks/sample_{model}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/sample.py"


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
