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
    the h states before it, only where those are consecutive time steps."""

    def __init__(self, fields: SplitFields, history: int, where: str):
        self.fields = fields
        self.history = history
        self.targets = regular_windows(fields.times, before=history, after=0)
        if len(self.targets) == 0:
            raise ConfigError(f"{where}: the split has no {history + 1} consecutive time steps to train on")

    def __len__(self) -> int:
        return len(self.targets)

    def read(self, positions) -> tuple[torch.Tensor, ...]:
        """(x0,) or (x0, cond) for the examples at `positions`."""
        index = self.targets[np.asarray(positions)]
        if self.history == 0:
            return (self.fields[index],)
        rows = np.stack([index - self.history + j for j in range(self.history)] + [index])  # oldest first
        flat = self.fields[rows.reshape(-1)]
        states = flat.reshape(self.history + 1, len(index), *flat.shape[1:])
        return states[-1], torch.cat(list(states[:-1]), dim=1)

    def batch(self, positions, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        tensors = [t.to(device, non_blocking=True) for t in self.read(positions)]
        return tensors[0], (tensors[1] if len(tensors) > 1 else None)


class StepBatches(torch.utils.data.Dataset):
    """Item `step`: this rank's share of the global batch of that step. The examples of a step
    are a function of (seed, step) alone, so a resumed run, a run with data-loader workers
    reading ahead and a run on N ranks all train on the same examples."""

    def __init__(self, examples: Examples, global_batch: int, seed: int, group: Group):
        self.examples, self.global_batch, self.seed = examples, global_batch, seed
        self.share = slice(group.rank * global_batch // group.world, (group.rank + 1) * global_batch // group.world)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "batch", str(step)))
        positions = torch.randint(len(self.examples), (self.global_batch,), generator=generator)
        return self.examples.read(positions[self.share].numpy())
