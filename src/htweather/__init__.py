"""htweather: heavy-tailed diffusion (t-EDM, t-Flow) for weather generation.

One subpackage per stage of the pipeline, imports running from later stages to earlier ones:
`data` -> `models` -> `training` -> `generation` -> `evaluation` -> `report`. Beside them, the
glue that every stage may use: `config` (validated config), `errors` (the one error type),
`runtime` (seeds, atomic writes, progress, logging), `tail_metrics` (the key tail metrics that
the stop rule of training and the evaluation both read), `workflow` (Snakemake rule glue) and
`cli` (the command line).
"""
