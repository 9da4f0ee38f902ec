"""Stage 1, data: sources in the forms reanalysis comes in -> the analysis-ready zarr store.

- `catalog`: ERA5 variable names across products; `sources`: opening NetCDF, GRIB and zarr in
  one layout; `transforms`: per-variable transforms and unit conversions;
- `synthetic`: the embedded data (the files; the copula generator, closed-form marginals),
  `storms`: the storm-cell generator (the default), `latent`: the Gaussian fields both use;
- `ingest`: writing the store and its statistics; `store`: reading it back;
- `windows`: runs of consecutive time steps.

Nothing here imports torch.
"""
