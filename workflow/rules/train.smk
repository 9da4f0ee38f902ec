# Training: one job per model (GPU jobs on the cluster profile).


rule train:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        selection=nu_selection,
    output:
        model="results/models/{model}/model.pt",
        train_log="results/models/{model}/train_log.csv",
        snapshots=expand("results/models/{{model}}/snapshot_{k}.pt", k=SNAPSHOTS),
    params:
        config=model_section,
    threads: CFG["training"]["threads"]
    log:
        "results/logs/train_{model}.log",
    benchmark:
        "results/benchmarks/train_{model}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train.py"
