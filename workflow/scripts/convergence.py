from htweather.evaluation import convergence, tables
from htweather.workflow import run_step

p, i = snakemake.params, snakemake.input
reference = i.reference[0] if i.reference else None  # None: the validation split


def write():
    table = convergence.convergence_table(p.config, p.paths, i.store, i.stats, reference)
    tables.write_table(table, snakemake.output[0])
    tables.write_table(convergence.tail_error_table(table), snakemake.output[1])  # the composite, per model


run_step(snakemake, write)
