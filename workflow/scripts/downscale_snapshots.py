from htweather.generation import downscale
from htweather.workflow import run_step


def step():
    for model, out in zip(snakemake.input.models, snakemake.output):
        downscale.downscale(snakemake.params.config, model, snakemake.input.store, snakemake.input.stats, out,
                            threads=snakemake.threads)


run_step(snakemake, step)
