from htweather import train
from htweather.workflow import run_step

run_step(snakemake, lambda: train.train(snakemake.params.config, snakemake.wildcards.model, snakemake.input.store,
                                        snakemake.input.stats, snakemake.output.model.rsplit("/", 1)[0],
                                        threads=snakemake.threads))
