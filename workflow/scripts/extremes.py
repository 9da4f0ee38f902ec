from htweather.evaluation import extremes, tables
from htweather.workflow import run_step


def step():
    p, i = snakemake.params, snakemake.input
    table = extremes.extremes_table(p.config, snakemake.wildcards.source, i.store, i.stats,
                                    i.sequences[0] if i.sequences else None)
    tables.write_table(table, snakemake.output[0])


run_step(snakemake, step)
