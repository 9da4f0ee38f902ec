from htweather.generation import truth
from htweather.workflow import run_step

run_step(snakemake, lambda: truth.sample_truth(snakemake.params.config, snakemake.input.stats, snakemake.output[0]))
