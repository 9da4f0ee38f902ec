from htweather.evaluation import extremes
from htweather.runtime import atomic_path
from htweather.workflow import run_step


def step():
    p, i = snakemake.params, snakemake.input
    maps = extremes.quantile_maps(p.config, i.store, i.stats, dict(zip(p.ensembles, i.ensembles)),
                                  dict(zip(p.sequences, i.sequences)))
    with atomic_path(snakemake.output[0]) as tmp:
        maps.to_netcdf(tmp)


run_step(snakemake, step)
