from htweather import evaluate
from htweather.workflow import run_step


def step():
    table = evaluate.evaluate(snakemake.params.config, snakemake.wildcards.ensemble, snakemake.input.ensemble,
                              snakemake.input.store, snakemake.input.stats)
    evaluate.write_table(table, snakemake.output[0])


run_step(snakemake, step)
