from htweather.generation import downscale
from htweather.workflow import run_step

run_step(snakemake, lambda: downscale.downscale_baseline(snakemake.params.config, snakemake.wildcards.baseline,
                                                         snakemake.input.store, snakemake.input.stats,
                                                         snakemake.output[0]))
