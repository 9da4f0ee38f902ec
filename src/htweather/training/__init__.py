"""Stage 3, training: a model's weights from the store's training split.

- `examples`: training examples (and forecast windows) read from the store, batch by step;
- `checkpoints`: the full training state, written atomically, resumed only for the same setup;
- `train`: the loop (AdamW, warm-up, EMA, validation, stop signals);
- `stopping`: `steps: auto`, training until the validation tail error stops improving;
- `distributed`: data-parallel processes under torchrun; `rank`: what each of them runs.
"""
