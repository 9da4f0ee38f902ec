from htweather.evaluation import downscaling, tables
from htweather.workflow import run_step


def step():
    scores, ranks = downscaling.verify_downscaled(snakemake.params.config, snakemake.wildcards.downscaled,
                                                  snakemake.input.downscaled, snakemake.input.store,
                                                  snakemake.input.stats)
    tables.write_table(scores, snakemake.output.scores)
    tables.write_table(ranks, snakemake.output.ranks)


run_step(snakemake, step)
