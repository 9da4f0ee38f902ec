from htweather.evaluation import tables
from htweather.workflow import run_step

run_step(snakemake, lambda: tables.combine(list(snakemake.input), snakemake.output[0], snakemake.params.confidence))
