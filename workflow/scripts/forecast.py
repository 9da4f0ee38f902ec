from htweather.generation import forecast
from htweather.workflow import run_step

run_step(snakemake, lambda: forecast.forecast(snakemake.params.config, snakemake.input.model, snakemake.input.store,
                                              snakemake.input.stats, snakemake.output.forecasts,
                                              snakemake.output.sequences, threads=snakemake.threads))
