from htweather.evaluation import selection
from htweather.workflow import run_step

run_step(snakemake, lambda: selection.write_selection(
    snakemake.params.config, snakemake.wildcards.selected,
    dict(zip(snakemake.params.candidates, snakemake.input.ensembles)), snakemake.input.store,
    snakemake.input.stats, snakemake.output[0]))
