from htweather.generation import downscale
from htweather.workflow import run_step

run_step(snakemake, lambda: downscale.downscale(snakemake.params.config, snakemake.input.model, snakemake.input.store,
                                                snakemake.input.stats, snakemake.output[0], threads=snakemake.threads))
