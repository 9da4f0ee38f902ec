from htweather.generation import forecast
from htweather.workflow import run_step


def step():
    for model, out in zip(snakemake.input.models, snakemake.output):
        forecast.forecast(snakemake.params.config, model, snakemake.input.store, snakemake.input.stats, out, None,
                          threads=snakemake.threads, leads=1)


run_step(snakemake, step)
