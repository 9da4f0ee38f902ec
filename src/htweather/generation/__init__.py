"""Stage 4, generation: trained models -> ensembles in physical units.

- `sample`: unconditional ensembles; `forecast`: ensemble forecasts and free-running sequences
  of a conditional model; `truth`: the same from the synthetic data's true process.
"""
