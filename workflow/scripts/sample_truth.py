from htweather import sample
from htweather.workflow import run_step

run_step(snakemake, lambda: sample.sample_truth(snakemake.params.config, snakemake.input.stats, snakemake.output[0]))
