from htweather.evaluation import convergence, tables
from htweather.workflow import run_step

p, i = snakemake.params, snakemake.input
reference = i.reference[0] if i.reference else None  # None: the validation split
run_step(snakemake, lambda: tables.write_table(
    convergence.convergence_table(p.config, p.paths, i.store, i.stats, reference), snakemake.output[0]))
