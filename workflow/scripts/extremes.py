from htweather import evaluate
from htweather.runtime import atomic_path
from htweather.workflow import run_step


def step():
    p, i = snakemake.params, snakemake.input
    sequences = dict(zip(p.sequences, i.sequences))
    evaluate.write_table(evaluate.extremes_table(p.config, i.store, i.stats, sequences), snakemake.output.levels)
    maps = evaluate.quantile_maps(p.config, i.store, i.stats, dict(zip(p.ensembles, i.ensembles)), sequences)
    with atomic_path(snakemake.output.maps) as tmp:
        maps.to_netcdf(tmp)


run_step(snakemake, step)
