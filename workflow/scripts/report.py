from htweather.report import page
from htweather.workflow import run_step

p, i = snakemake.params, snakemake.input
run_step(snakemake, lambda: page.render(
    p.config, i.metrics, i.comparisons, p.figures, i.provenance, i.store, i.stats,
    ensembles=dict(zip(p.ensembles, i.ensembles)), train_logs=dict(zip(p.models, i.train_logs)),
    forecasts=dict(zip(p.forecasters, i.forecasts)),
    convergence_csv=i.convergence[0] if i.convergence else None, selections=list(i.selections),
    sampler_budget_csv=i.sampler_budget[0] if i.sampler_budget else None,
    aa_rates_csv=i.aa_rates[0] if i.aa_rates else None,
    out=snakemake.output[0]))
