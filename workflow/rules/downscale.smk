# Downscaling (a config with a downscaling section; config/downscaling.yaml): each model's
# ensembles of fine fields from the test split's coarse fields, the deterministic baselines, the
# scores against the paired truth, the comparisons and the report. Training is train.smk's.

DOWNSCALING_BASELINES = list(CFG["downscaling"]["baselines"])
# what a model's downscaled ensembles depend on (not the baselines' settings)
DOWNSCALE_KEYS = [f"downscaling.{k}" for k in ("factor", "times", "members", "conserve")]
DOWNSCALER_RUNS = replicate_names(CFG, DOWNSCALERS)
DOWNSCALED = DOWNSCALER_RUNS + DOWNSCALING_BASELINES
# the configured (or default: Student-t against its Gaussian twin) pairs, and every model
# against every baseline (a baseline is one deterministic run: no training-seed spread)
DOWNSCALING_PAIRS = COMPARISONS + [[m, b] for m in DOWNSCALERS for b in DOWNSCALING_BASELINES]
DOWNSCALING_RUNS_OF = {**runs_of(DOWNSCALERS), **{b: [b] for b in DOWNSCALING_BASELINES}}
# the convergence check (training.snapshots): each run's snapshots' fine fields, then its own
DOWNSCALING_CONVERGENCE = {run: [*(f"results/snapshots/{run}/snapshot_{k}.zarr" for k in SNAPSHOTS),
                                 f"results/downscaled/{run}.zarr"] for run in (DOWNSCALER_RUNS if SNAPSHOTS else [])}
DOWNSCALING_TAIL_ERROR = ["results/evaluation/tail_error.csv"] if SNAPSHOTS else []
DOWNSCALING_FIGURES = {
    **{f"fields_{v}": f"results/figures/downscaling_fields_{v}.png" for v in VARIABLES},
    "rank_histograms": "results/figures/rank_histograms.png",
    "loss": "results/figures/loss_curves.png",
}


wildcard_constraints:
    downscaler=one_of(DOWNSCALER_RUNS),
    baseline=one_of(DOWNSCALING_BASELINES),
    downscaled=one_of(DOWNSCALED),


def downscaled_path(run):
    return f"results/downscaled/{run}.zarr"


rule downscale:
    input:
        model="results/models/{downscaler}/model.pt",
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        directory("results/downscaled/{downscaler}.zarr"),
    params:
        config=section("seed", "sampling", *DOWNSCALE_KEYS, "training.device"),
    threads: CFG["sampling"]["threads"]
    log:
        "results/logs/downscale_{downscaler}.log",
    benchmark:
        "results/benchmarks/downscale_{downscaler}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/downscale.py"


if SNAPSHOTS:  # a rule with no output cannot be defined

    rule downscale_snapshots:
        # the convergence check: fine fields from every snapshot, from the same coarse test fields
        # and with the same noise as the model's own
        input:
            models=expand("results/models/{{downscaler}}/snapshot_{k}.pt", k=SNAPSHOTS),
            store="results/data/store.zarr",
            stats="results/data/stats.json",
        output:
            [directory(f"results/snapshots/{{downscaler}}/snapshot_{k}.zarr") for k in SNAPSHOTS],
        params:
            config=section("seed", "sampling", *DOWNSCALE_KEYS, "training.device"),
        threads: CFG["sampling"]["threads"]
        log:
            "results/logs/downscale_snapshots_{downscaler}.log",
        benchmark:
            "results/benchmarks/downscale_snapshots_{downscaler}.tsv"
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/downscale_snapshots.py"

    rule convergence:
        input:
            store="results/data/store.zarr",
            stats="results/data/stats.json",
            ensembles=[path for paths in DOWNSCALING_CONVERGENCE.values() for path in paths],
            reference=[],  # twCRPS has none: downscaling models are still improving or not
        output:
            report("results/evaluation/convergence.csv", caption="../report/convergence_table.rst",
                   category="Training"),
            report("results/evaluation/tail_error.csv", caption="../report/tail_error_table.rst", category="Training"),
        params:
            config=section("seed", "evaluation"),
            paths=DOWNSCALING_CONVERGENCE,
        log:
            "results/logs/convergence.log",
        benchmark:
            "results/benchmarks/convergence.tsv"
        conda:
            "../../envs/evaluate.yaml"
        script:
            "../scripts/convergence.py"


rule downscale_baseline:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        directory("results/downscaled/{baseline}.zarr"),
    params:
        config=section("downscaling.factor", "downscaling.times", "downscaling.quantile_mapping_bins"),
    log:
        "results/logs/downscale_{baseline}.log",
    benchmark:
        "results/benchmarks/downscale_{baseline}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/downscale_baseline.py"


rule verify_downscaled:
    input:
        downscaled="results/downscaled/{downscaled}.zarr",
        store="results/data/store.zarr",
        stats="results/data/stats.json",
    output:
        scores="results/evaluation/per_model/{downscaled}.csv",
        ranks="results/evaluation/rank_histograms/{downscaled}.csv",
    params:
        config=section("seed", "evaluation", "downscaling"),
    log:
        "results/logs/verify_downscaled_{downscaled}.log",
    benchmark:
        "results/benchmarks/verify_downscaled_{downscaled}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/verify_downscaled.py"


rule aa_check:
    # the A/A check (aa_check): every split of a model's trainings compared with itself on the
    # scores against the paired truth; every better / worse is a false verdict
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        runs=[downscaled_path(run) for run in replicate_names(CFG, AA_MODELS)],
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


rule metrics_table:
    input:
        expand("results/evaluation/per_model/{run}.csv", run=DOWNSCALED),
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
        expand("results/evaluation/rank_histograms/{run}.csv", run=DOWNSCALED),
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
        runs=[downscaled_path(run) for run in DOWNSCALED],
    output:
        report("results/evaluation/comparisons.csv", caption="../report/comparisons.rst", category="Metrics"),
    params:
        config=section("seed", "evaluation"),
        pairs=DOWNSCALING_PAIRS,
        runs=DOWNSCALING_RUNS_OF,
        paths={run: downscaled_path(run) for run in DOWNSCALED},
    log:
        "results/logs/comparisons.log",
    benchmark:
        "results/benchmarks/comparisons.tsv"
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/comparisons.py"


rule downscaling_figures:
    input:
        store="results/data/store.zarr",
        stats="results/data/stats.json",
        downscaled=[downscaled_path(run) for run in DOWNSCALERS + DOWNSCALING_BASELINES],
        ranks="results/evaluation/rank_histograms.csv",
        train_logs=expand("results/models/{model}/train_log.csv", model=MODELS),
    output:
        fields=[report(DOWNSCALING_FIGURES[f"fields_{v}"], caption="../report/downscaling_fields.rst",
                       category="Downscaling", labels={"variable": v}) for v in VARIABLES],
        ranks=report(DOWNSCALING_FIGURES["rank_histograms"], caption="../report/rank_histograms.rst",
                     category="Downscaling"),
        loss=report(DOWNSCALING_FIGURES["loss"], caption="../report/loss_curves.rst", category="Training"),
    params:
        config=section("seed", "models", "downscaling", "report"),
        runs=DOWNSCALERS + DOWNSCALING_BASELINES,
        models=MODELS,
        variables=VARIABLES,
    log:
        "results/logs/downscaling_figures.log",
    benchmark:
        "results/benchmarks/downscaling_figures.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/downscaling_figures.py"


rule provenance:
    input:
        "results/evaluation/metrics.csv",
        list(DOWNSCALING_FIGURES.values()),
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
        figures=list(DOWNSCALING_FIGURES.values()),
        provenance="results/provenance.json",
        stats="results/data/stats.json",
        tail_error=DOWNSCALING_TAIL_ERROR,
        aa_rates=[t for t in AA_CHECK_TABLES if t.endswith("aa_rates.csv")],
    output:
        "results/report.html",
    params:
        config=CFG,
        figures=DOWNSCALING_FIGURES,
        models=MODELS,
        baselines=DOWNSCALING_BASELINES,
    log:
        "results/logs/report.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/downscaling_report.py"
