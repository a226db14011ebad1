"""Per-key online standardisation of channel values."""

from __future__ import annotations

import numpy as np

#: Scaled values are clipped to ±this many standard deviations. A channel that was constant and
#: then moves would otherwise give values near 1e6 that saturate every neuron downstream for
#: windows to come; 100 is far beyond any threshold that matters and still finite.
MAX_ABS_SCALED = 100.0


class OnlineScaler:
    """Running mean and variance per channel (Welford/Chan), used to standardise windows.

    ``update`` merges a block of rows with Chan et al.'s parallel formula, so a window's new rows
    cost one NumPy call rather than one per record. A channel whose variance is still zero
    (constant so far, or a single row) is scaled with a standard deviation of 1, so it maps to 0
    instead of dividing by zero.
    """

    __slots__ = ("count", "mean", "m2")

    def __init__(self, channels: int) -> None:
        self.count = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def update(self, rows: np.ndarray) -> None:
        """Merge rows ``[n, channels]`` into the running statistics."""
        n = rows.shape[0]
        if n == 0:
            return
        block_mean = rows.mean(axis=0)
        block_m2 = ((rows - block_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = block_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + block_m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        variance = self.m2 / max(self.count - 1, 1)
        std = np.sqrt(variance)
        # A relative floor treats float noise on a constant channel as constant.
        floor = 1e-9 * np.maximum(np.abs(self.mean), 1.0)
        return np.where(std > floor, std, 1.0)

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """Standardise rows ``[n, channels]`` with the current statistics, clipped to ±100."""
        scaled = (rows - self.mean) / self.std
        return np.clip(scaled, -MAX_ABS_SCALED, MAX_ABS_SCALED)
