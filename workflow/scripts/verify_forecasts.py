from htweather import evaluate, verification
from htweather.workflow import run_step


def step():
    scores, ranks = verification.verify(snakemake.params.config, snakemake.wildcards.forecaster,
                                        snakemake.input.forecasts, snakemake.input.store, snakemake.input.stats)
    evaluate.write_table(scores, snakemake.output.scores)
    evaluate.write_table(ranks, snakemake.output.ranks)


run_step(snakemake, step)
