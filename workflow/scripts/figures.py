from htweather import report
from htweather.workflow import run_step

p = snakemake.params
run_step(snakemake, lambda: report.make_figures(
    p.config, snakemake.input.store, snakemake.input.stats,
    ensembles=dict(zip(p.ensembles, snakemake.input.ensembles)),
    train_logs=dict(zip(p.models, snakemake.input.train_logs)),
    out=p.figures))
