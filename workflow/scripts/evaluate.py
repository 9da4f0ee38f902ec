from htweather.evaluation import tables, tails
from htweather.workflow import run_step


def step():
    table = tails.evaluate_ensemble(snakemake.params.config, snakemake.wildcards.ensemble, snakemake.input.ensemble,
                                    snakemake.input.store, snakemake.input.stats)
    tables.write_table(table, snakemake.output[0])


run_step(snakemake, step)
