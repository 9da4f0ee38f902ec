from htweather.data import synthetic
from htweather.workflow import run_step

cfg = snakemake.params.config
run_step(snakemake, lambda: synthetic.write_netcdf(cfg["data"]["synthetic"], snakemake.output[0].rsplit("/", 1)[0], cfg["seed"]))
