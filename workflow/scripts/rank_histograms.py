from htweather import evaluate
from htweather.workflow import run_step

run_step(snakemake, lambda: evaluate.combine_plain(list(snakemake.input), snakemake.output[0]))
