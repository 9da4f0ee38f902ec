from htweather.generation import truth
from htweather.workflow import run_step

run_step(snakemake, lambda: truth.truth_sequences(snakemake.params.config, snakemake.input.store,
                                                  snakemake.input.stats, snakemake.output[0]))
