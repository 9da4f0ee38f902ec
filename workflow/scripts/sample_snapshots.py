from htweather.generation import sample
from htweather.workflow import run_step


def step():
    for model, out in zip(snakemake.input.models, snakemake.output):
        sample.sample(snakemake.params.config, model, snakemake.input.stats, out, threads=snakemake.threads)


run_step(snakemake, step)
