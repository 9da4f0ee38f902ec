from htweather.evaluation import tables
from htweather.workflow import run_step

run_step(snakemake, lambda: tables.combine_plain(list(snakemake.input), snakemake.output[0]))
