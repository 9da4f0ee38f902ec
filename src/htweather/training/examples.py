"""Training examples from the store: the normalised fields of a split, read by row (in memory
or chunk by chunk from the store), the windows a forecast model trains on, and the batch of
each step as a function of (seed, step) alone, so that a resumed run, a run with loader workers
and a run on N data-parallel ranks train on the same examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.store import SplitReader, load_split_times
from ..data.windows import regular_windows
from ..errors import ConfigError
from ..models.assemble import grid_positions
from ..runtime import derived_seed
from .distributed import Group


class SplitFields:
    """The normalised fields of one split (time, C, H, W) float32, read by row: held in memory,
    or (`in_memory=False`, for data-loader workers) read from the zarr store chunk by chunk at
    each request, so that a split larger than memory trains. `input_map` (INC) is applied on read."""

    def __init__(self, store: str | Path, split: str, input_map=None, in_memory: bool = True,
                 rows: int | None = None, values: np.ndarray | None = None):
        self.store, self.split, self.input_map = str(store), split, input_map
        self.times = load_split_times(store, split)[:rows]
        self._array, self._reader = None, None
        if in_memory:  # `values`: the split, already read (normalised, before the input map)
            self._array = self._read(slice(0, len(self.times)), values)

    def _read(self, rows, values: np.ndarray | None = None) -> np.ndarray:
        if values is None:
            if self._reader is None:  # opened once per process (workers open their own)
                self._reader = SplitReader(self.store, self.split)
            values = self._reader(rows)
        return self.input_map.forward(values) if self.input_map is not None else values

    def __len__(self) -> int:
        return len(self.times)

    def __getstate__(self):  # workers reopen the store themselves
        return {**self.__dict__, "_reader": None}

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        if self._array is not None:
            return torch.from_numpy(self._array[rows])
        unique, inverse = np.unique(rows, return_inverse=True)  # each time step read once
        return torch.from_numpy(self._read(unique)[inverse.reshape(-1)])


class Examples:
    """Training examples of one split: a field, and for a forecast model (h = condition_steps > 0)
    the h states before it, only where those are consecutive time steps; for a downscaling model
    its row of `conditions` (the coarse field on the fine grid). With `patch` = P, each
    example is a P x P crop (at `offsets`) of them, its masked cells NaN (no weight in the loss),
    with the crop's grid positions appended to the condition (`assemble.grid_positions`)."""

    def __init__(self, fields: SplitFields, history: int, where: str, patch: int | None = None,
                 mask: np.ndarray | None = None, conditions: np.ndarray | None = None):
        self.fields = fields
        # downscaling: each field's condition (the coarse field on the fine grid), row by row
        self.conditions = None if conditions is None else torch.from_numpy(np.ascontiguousarray(conditions))
        self.history = history
        self.targets = regular_windows(fields.times, before=history, after=0)
        if len(self.targets) == 0:
            raise ConfigError(f"{where}: the split has no {history + 1} consecutive time steps to train on")
        self.patch = patch
        if patch:
            self.grid = tuple(fields[np.zeros(1, dtype=np.int64)].shape[-2:])
            if patch > min(self.grid):
                raise ConfigError(f"training.patch: {patch} is larger than the grid ({self.grid[0]} x {self.grid[1]})")
            self.positions = grid_positions(self.grid)
            self.mask = None if mask is None else torch.from_numpy(np.asarray(mask, dtype=bool))

    def __len__(self) -> int:
        return len(self.targets)

    def offsets(self, n: int, generator: torch.Generator) -> np.ndarray:
        """(n, 2) random top-left corners of crops (none without a patch size)."""
        if not self.patch:
            return np.zeros((n, 2), dtype=np.int64)
        return torch.stack([torch.randint(size - self.patch + 1, (n,), generator=generator)
                            for size in self.grid], dim=1).numpy()

    def read(self, positions, offsets=None) -> tuple[torch.Tensor, ...]:
        """(x0,) or (x0, cond) for the examples at `positions` (cropped at `offsets`, default the
        top-left corner, for a patch-trained model)."""
        index = self.targets[np.asarray(positions)]
        if self.conditions is not None:
            tensors = (self.fields[index], self.conditions[index])
        elif self.history == 0:
            tensors = (self.fields[index],)
        else:
            rows = np.stack([index - self.history + j for j in range(self.history)] + [index])  # oldest first
            flat = self.fields[rows.reshape(-1)]
            states = flat.reshape(self.history + 1, len(index), *flat.shape[1:])
            tensors = (states[-1], torch.cat(list(states[:-1]), dim=1))
        return self._crop(tensors, offsets) if self.patch else tensors

    def _crop(self, tensors, offsets) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.patch
        offsets = np.zeros((len(tensors[0]), 2), dtype=np.int64) if offsets is None else np.asarray(offsets)

        def crop(t, b):
            i, j = offsets[b]
            return t[..., i:i + p, j:j + p]

        x0 = torch.stack([crop(tensors[0][b], b) for b in range(len(offsets))])
        if self.mask is not None:  # masked cells: missing, so that the loss gives them no weight
            hidden = ~torch.stack([crop(self.mask, b) for b in range(len(offsets))])[:, None]
            x0 = x0.masked_fill(hidden, float("nan"))
        cond = [torch.stack([crop(self.positions, b) for b in range(len(offsets))])]
        if len(tensors) > 1:
            cond.insert(0, torch.stack([crop(tensors[1][b], b) for b in range(len(offsets))]))
        return x0, torch.cat(cond, dim=1)

    def batch(self, positions, device, offsets=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        tensors = [t.to(device, non_blocking=True) for t in self.read(positions, offsets)]
        return tensors[0], (tensors[1] if len(tensors) > 1 else None)


class StepBatches(torch.utils.data.Dataset):
    """Item `step`: this rank's share of the global batch of that step, as (x0, cond or None,
    loss weights or None). The examples of a step are a function of (seed, step) alone, so a
    resumed run, a run with data-loader workers reading ahead and a run on N ranks all train on
    the same examples. `sampling` (`importance.ExtremeSampling`): draw the examples from its
    probabilities, with its unbiasing weights; None: uniformly, unweighted."""

    def __init__(self, examples: Examples, global_batch: int, seed: int, group: Group, sampling=None):
        self.examples, self.global_batch, self.seed, self.sampling = examples, global_batch, seed, sampling
        self.share = slice(group.rank * global_batch // group.world, (group.rank + 1) * global_batch // group.world)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "batch", str(step)))
        if self.sampling is None:
            positions = torch.randint(len(self.examples), (self.global_batch,), generator=generator)
        else:
            positions = self.sampling.draw(self.global_batch, generator)
        offsets = self.examples.offsets(self.global_batch, generator)  # crops; drawn after the positions
        positions = positions[self.share]
        tensors = self.examples.read(positions.numpy(), offsets[self.share])
        weights = None if self.sampling is None else self.sampling.weights[positions]
        return tensors[0], (tensors[1] if len(tensors) > 1 else None), weights
