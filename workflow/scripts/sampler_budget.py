from pathlib import Path

from htweather.evaluation import sampler_budget, tables
from htweather.report.plots import sampler_budget_figure
from htweather.workflow import run_step


def step():
    by_run = {Path(path).parent.name: path for path in snakemake.input.models}
    paths = {model: [by_run[run] for run in runs] for model, runs in snakemake.params.models.items()}
    table = sampler_budget.run(paths, snakemake.input.store, snakemake.input.stats, snakemake.params.config,
                               threads=snakemake.threads)
    tables.write_table(table, snakemake.output.table)
    sampler_budget_figure(table, snakemake.output.figure)


run_step(snakemake, step)
