from htweather import report
from htweather.workflow import run_step

run_step(snakemake, lambda: report.write_provenance(
    report.provenance(snakemake.params.config, snakemake.params.root, "results/benchmarks"), snakemake.output[0]))
