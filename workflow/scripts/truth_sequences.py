from htweather import sample
from htweather.workflow import run_step

run_step(snakemake, lambda: sample.truth_sequences(snakemake.params.config, snakemake.input.store,
                                                   snakemake.input.stats, snakemake.output[0]))
