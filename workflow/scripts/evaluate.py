import pandas as pd

from htweather.data.store import test_fields
from htweather.evaluation import spatial, tables, tails
from htweather.workflow import run_step


def step():
    config, model, store = snakemake.params.config, snakemake.wildcards.ensemble, snakemake.input.store
    data = test_fields(store)  # read once for the marginal and the spatial metrics
    marginal = tails.evaluate_ensemble(config, model, snakemake.input.ensemble, store, snakemake.input.stats, data)
    structure = spatial.structure_table(config, model, snakemake.input.ensemble, store, snakemake.input.stats, data)
    tables.write_table(pd.concat([marginal, structure], ignore_index=True), snakemake.output[0])


run_step(snakemake, step)
