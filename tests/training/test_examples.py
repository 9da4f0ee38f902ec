"""Training examples of a forecast model: the history comes oldest first."""

import numpy as np
import pandas as pd
import torch

from htweather.training.examples import Examples


def test_training_history_is_oldest_first():
    class Fields:  # what Examples reads from: times, and rows by index
        times = pd.date_range("2000-01-01", periods=6, freq="6h")
        values = np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1).repeat(2, axis=1)

        def __getitem__(self, rows):
            return torch.from_numpy(self.values[rows])

    examples = Examples(Fields(), history=2, where="test")
    np.testing.assert_array_equal(examples.targets, [2, 3, 4, 5])
    x0, stacked = examples.read([1, 3])  # targets 3 and 5
    np.testing.assert_array_equal(x0[:, 0, 0, 0].numpy(), [3, 5])
    # channels: [t-2 (both variables), t-1 (both variables)]
    np.testing.assert_array_equal(stacked[:, :, 0, 0].numpy(), [[1, 1, 2, 2], [3, 3, 4, 4]])
