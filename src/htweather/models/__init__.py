"""Stage 2, models: what a model is and how it turns noise into fields.

- `diffusion/`: Student-t noise, EDM and flow-matching preconditioning, losses, samplers;
- `networks/`: the U-Net; `input_maps`: INC, softlog and PCP, the data-side baselines;
- `tail_index`: `nu: auto` (the exceedance fit) and Hill's tail index;
- `assemble`: a model from its config entry (spec, build, generate, load);
- `devices`: where a model runs (device, bf16 autocast, threads).
"""
