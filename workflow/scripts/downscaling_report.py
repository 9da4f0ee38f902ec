from htweather.report import downscaling
from htweather.workflow import run_step

p, i = snakemake.params, snakemake.input
run_step(snakemake, lambda: downscaling.render(p.config, i.metrics, i.comparisons, p.figures, i.provenance, i.stats,
                                               p.baselines, snakemake.output[0],
                                               tail_error_csv=i.tail_error[0] if i.tail_error else None,
                                               aa_rates_csv=i.aa_rates[0] if i.aa_rates else None))
