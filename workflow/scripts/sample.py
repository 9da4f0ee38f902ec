from htweather.generation import sample
from htweather.workflow import run_step

run_step(snakemake, lambda: sample.sample(snakemake.params.config, snakemake.input.model, snakemake.input.stats,
                                          snakemake.output[0], threads=snakemake.threads))
