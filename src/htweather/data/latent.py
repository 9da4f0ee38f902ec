"""Gaussian random fields for the synthetic generators: unit variance, correlation
exp(-r^2 / L^2) at distance r cells, persistent and drifting in time (an AR(1) process on a
shifted field)."""

from __future__ import annotations

import numpy as np


class LatentField:
    """Unit-variance Gaussian fields with correlation exp(-r^2/L^2), made by convolving white
    noise with a Gaussian kernel on a periodic domain padded so the wrap-around is invisible."""

    def __init__(self, nlat: int, nlon: int, length: float):
        pad = int(np.ceil(4 * length))
        self.shape = (nlat + pad, nlon + pad)
        self.crop = (nlat, nlon)
        dy = np.minimum(np.arange(self.shape[0]), self.shape[0] - np.arange(self.shape[0]))
        dx = np.minimum(np.arange(self.shape[1]), self.shape[1] - np.arange(self.shape[1]))
        r2 = dy[:, None] ** 2 + dx[None, :] ** 2
        # kernel exp(-2 r^2 / L^2) convolved with itself gives covariance exp(-r^2 / L^2)
        kernel = np.exp(-2.0 * r2 / length**2)
        kernel /= np.sqrt((kernel**2).sum())  # unit variance for unit white noise
        self.kernel_hat = np.fft.rfft2(kernel)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent fields on the padded domain, shape (n, *self.shape)."""
        white = rng.standard_normal((n, *self.shape))
        return np.fft.irfft2(np.fft.rfft2(white) * self.kernel_hat, s=self.shape)


def gaussian_sequence(spec: dict, n_times: int, rng: np.random.Generator, fields: int = 3) -> np.ndarray:
    """`fields` independent N(0, 1) fields (n_times, fields, nlat, nlon), persistent in time:
    spec's correlation_length, persistence and advection."""
    field = LatentField(spec["nlat"], spec["nlon"], spec["correlation_length"])
    phi = spec["persistence"]
    shift = tuple(spec["advection"])
    innovation_scale = np.sqrt(1.0 - phi**2)
    out = np.empty((n_times, fields, *field.crop))
    state = field.draw(rng, fields)  # stationary start
    for t in range(n_times):
        if t > 0:
            # AR(1) of a drifting field: stationary, unit variance, same spatial covariance
            state = phi * np.roll(state, shift, axis=(1, 2)) + innovation_scale * field.draw(rng, fields)
        out[t] = state[:, : field.crop[0], : field.crop[1]]
    return out
