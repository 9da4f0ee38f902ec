from htweather.config import split_replicate
from htweather.training import train
from htweather.workflow import run_step

# One process per GPU the job was given (resources: gpu, e.g. from the cluster profile);
# more than one runs data-parallel under torchrun inside this job.
# The guard: data-loader workers are spawned, and a spawned process re-imports this file.
if __name__ == "__main__":
    processes = max(1, int(snakemake.resources.get("gpu", 0) or 0))
    model, replicate = split_replicate(snakemake.wildcards.model)
    selection = list(snakemake.input.selection)  # [the nu: select choice] or []
    run_step(snakemake, lambda: train.train(snakemake.params.config, model, snakemake.input.store,
                                            snakemake.input.stats, snakemake.output.model.rsplit("/", 1)[0],
                                            threads=snakemake.threads, processes=processes, replicate=replicate,
                                            nu_selection=selection[0] if selection else None))
