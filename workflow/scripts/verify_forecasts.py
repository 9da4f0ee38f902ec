from htweather.evaluation import forecasts, tables
from htweather.workflow import run_step


def step():
    scores, ranks = forecasts.verify(snakemake.params.config, snakemake.wildcards.forecaster,
                                     snakemake.input.forecasts, snakemake.input.store, snakemake.input.stats)
    tables.write_table(scores, snakemake.output.scores)
    tables.write_table(ranks, snakemake.output.ranks)


run_step(snakemake, step)
