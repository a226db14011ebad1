"""Spike encoders: turn a batch of scaled windows into the input of the spiking encoder.

Every encoder takes scaled windows ``[B, L, C]`` (batch, records, channels) and returns a tensor
``[T, B, C_in, L]`` for T simulation steps. Each is deterministic: the same window gives the same
spikes on every call, so scoring has no randomness and a replay scores identically.
"""

from __future__ import annotations

import math

import torch


class SpikeEncoder:
    """Base of the encoders; ``in_channels(C)`` gives C_in for a stream of C channels."""

    kind = ""

    def __init__(self, time_steps: int) -> None:
        if time_steps < 1:
            raise ValueError(f"time_steps = {time_steps} must be at least 1")
        self.time_steps = time_steps

    def in_channels(self, channels: int) -> int:
        return channels

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DirectEncoder(SpikeEncoder):
    """Feed the scaled values to the first convolution at every step, as Spikformer does.

    The first layer is then the only one that multiplies real numbers, and every later layer
    receives spikes. Output ``[T, B, C, L]``, the same values at each step.
    """

    kind = "direct"

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        x = windows.transpose(1, 2)
        return x.unsqueeze(0).expand(self.time_steps, *x.shape)


class RateEncoder(SpikeEncoder):
    """Rate coding: a value fires on a fraction of the T steps that grows with its size.

    The firing probability is ``sigmoid(x)`` of the scaled value, so 0 fires half the time and
    ±3 standard deviations fire almost always or almost never. Bernoulli draws would make a
    window's spikes differ from call to call; instead each (step, record, channel) compares
    against a fixed uniform dither drawn once from ``seed``, which keeps the code random-looking
    across positions but identical for the same window. Output ``[T, B, C, L]`` of 0/1.
    """

    kind = "rate"

    def __init__(self, time_steps: int, *, window_length: int, channels: int, seed: int = 0):
        super().__init__(time_steps)
        generator = torch.Generator().manual_seed(seed)
        self.dither = torch.rand(time_steps, 1, channels, window_length, generator=generator)

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        probability = torch.sigmoid(windows.transpose(1, 2)).unsqueeze(0)
        return (probability > self.dither).to(windows.dtype)


class DeltaEncoder(SpikeEncoder):
    """Send-on-delta coding: spike when a value moves by more than a threshold.

    For each channel there is an "up" and a "down" input; the change from the previous record
    ``Δx`` (0 for the first record of the window) fires the up input at steps
    ``t < |Δx| / threshold`` when it rises and the down input when it falls, a thermometer code
    of the size of the move over T steps. Output ``[T, B, 2C, L]`` of 0/1.
    """

    kind = "delta"

    def __init__(self, time_steps: int, *, threshold: float = 0.5) -> None:
        super().__init__(time_steps)
        if not threshold > 0 or not math.isfinite(threshold):
            raise ValueError(f"delta threshold = {threshold} must be a positive finite number")
        self.threshold = threshold
        self.levels = torch.arange(1, time_steps + 1, dtype=torch.float32).reshape(-1, 1, 1, 1)

    def in_channels(self, channels: int) -> int:
        return 2 * channels

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        x = windows.transpose(1, 2)
        delta = torch.zeros_like(x)
        delta[..., 1:] = x[..., 1:] - x[..., :-1]
        crossings = (delta / self.threshold).unsqueeze(0)
        up = (crossings >= self.levels).to(windows.dtype)
        down = (-crossings >= self.levels).to(windows.dtype)
        return torch.cat([up, down], dim=2)


def build_encoder(
    kind: str, *, time_steps: int, window_length: int, channels: int, delta_threshold: float, seed: int
) -> SpikeEncoder:
    """Build the encoder named by ``kind``: "direct", "rate" or "delta"."""
    if kind == "direct":
        return DirectEncoder(time_steps)
    if kind == "rate":
        return RateEncoder(time_steps, window_length=window_length, channels=channels, seed=seed)
    if kind == "delta":
        return DeltaEncoder(time_steps, threshold=delta_threshold)
    raise ValueError(f"encoding kind {kind!r} is not one of 'direct', 'rate', 'delta'")


def amplitude_features(windows: torch.Tensor, *, recent: int) -> torch.Tensor:
    """Log-scaled size of each channel's deviation, ``[..., L, C] -> [..., 2C]``.

    A spike train saturates: once a neuron fires at every step, 5 and 50 standard deviations
    look alike, and a spiking readout cannot tell a level shift of any size from an ordinary
    busy window. These two numbers per channel, ``log(1 + mean |z|)`` over the newest
    ``recent`` records and ``log(1 + max |z|)`` over the window, give the detector the size of
    a deviation beside the spiking encoder's description of its shape.
    """
    size = windows.abs()
    recent_mean = size[..., -recent:, :].mean(dim=-2)
    window_max = size.amax(dim=-2)
    return torch.log1p(torch.cat([recent_mean, window_max], dim=-1))
