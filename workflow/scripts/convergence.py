from htweather.evaluation import convergence, tables
from htweather.workflow import run_step

p, i = snakemake.params, snakemake.input
run_step(snakemake, lambda: tables.write_table(convergence.convergence_table(p.config, p.paths, i.store, i.stats),
                                               snakemake.output[0]))
