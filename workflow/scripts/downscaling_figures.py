from htweather.report import downscaling
from htweather.workflow import run_step

p, i, o = snakemake.params, snakemake.input, snakemake.output
run_step(snakemake, lambda: downscaling.make_figures(
    p.config, i.store, i.stats, dict(zip(p.runs, i.downscaled)), i.ranks, dict(zip(p.models, i.train_logs)),
    {"fields": dict(zip(p.variables, o.fields)), "ranks": o.ranks, "loss": o.loss}))
