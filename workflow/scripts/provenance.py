from htweather.report import provenance
from htweather.workflow import run_step

run_step(snakemake, lambda: provenance.write_provenance(
    provenance.provenance(snakemake.params.config, snakemake.params.root, "results/benchmarks"), snakemake.output[0]))
