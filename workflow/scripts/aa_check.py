from htweather.evaluation import aa_check, tables
from htweather.workflow import run_step


def step():
    p, i = snakemake.params, snakemake.input
    paths = {run: path for run, path in zip([r for runs in p.runs.values() for r in runs], i.runs)}
    for table, path in zip(aa_check.aa_check_tables(p.config, p.runs, paths, i.store, i.stats), snakemake.output):
        tables.write_table(table, path)


run_step(snakemake, step)
