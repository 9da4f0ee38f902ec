from htweather.data import ingest
from htweather.config import load_config
from htweather.workflow import run_step

config = load_config({"data": snakemake.params.config}, check_paths=False)
run_step(snakemake, lambda: ingest.ingest(config, list(snakemake.input), snakemake.output.store, snakemake.output.stats))
