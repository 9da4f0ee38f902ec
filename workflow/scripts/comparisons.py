from htweather.evaluation import comparisons, tables
from htweather.workflow import run_step


def step():
    p, i = snakemake.params, snakemake.input
    table = comparisons.comparison_table(p.config, p.pairs, p.runs, p.paths, i.store, i.stats)
    tables.write_table(table, snakemake.output[0])


run_step(snakemake, step)
