from htweather.report import figures
from htweather.workflow import run_step

p, i = snakemake.params, snakemake.input
run_step(snakemake, lambda: figures.make_figures(
    p.config, i.store, i.stats,
    ensembles=dict(zip(p.ensembles, i.ensembles)),
    train_logs=dict(zip(p.models, i.train_logs)),
    out=p.figures, metrics_csv=i.metrics, ranks_csv=i.ranks, maps_nc=i.maps,
    convergence_csv=i.convergence[0] if i.convergence else None,
    replicate_ensembles=dict(zip(p.replicate_runs, i.replicate_ensembles)),
    forecasts=dict(zip(p.forecasters, i.forecasts))))
