"""Compiled LIF inference kernel.

Scoring runs every LIF layer over T steps for every window; in PyTorch each step is three tensor
operations of a few microseconds of dispatch each on small tensors, which dominated the
pipeline's time. This Numba kernel runs the same charge, fire and reset in one compiled loop. It
uses float32 throughout, with the same operation order as :class:`~spikewatch.spiking.neurons.LIF`
(``v·β`` rounded, then ``+ I``, then ``− v_threshold`` on a spike), so its spikes and membranes
equal the PyTorch path's bit for bit.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a declared dependency
    numba = None


def _lif_scan(current, membrane, spikes, ends, beta, v_threshold, every):
    steps, neurons = current.shape
    for step in range(steps):
        for i in range(neurons):
            v = membrane[i] * beta
            v = v + current[step, i]
            if v >= v_threshold:
                spikes[step, i] = 1.0
                v = v - v_threshold
            else:
                spikes[step, i] = 0.0
            membrane[i] = v
        if (step + 1) % every == 0:
            ends[(step + 1) // every - 1, :] = membrane


_compiled = numba.njit(cache=True, nogil=True)(_lif_scan) if numba is not None else None


def lif_scan(
    current: np.ndarray, membrane: np.ndarray, *, beta: float, v_threshold: float, every: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run LIF neurons over ``current [steps, neurons]`` from ``membrane [neurons]`` (float32).

    Returns spikes ``[steps, neurons]`` and the membrane after every ``every`` steps,
    ``[steps // every, neurons]``. ``membrane`` is left at the final state.
    """
    steps, neurons = current.shape
    spikes = np.empty((steps, neurons), dtype=np.float32)
    ends = np.empty((steps // every, neurons), dtype=np.float32)
    scan = _compiled or _lif_scan
    scan(current, membrane, spikes, ends, np.float32(beta), np.float32(v_threshold), every)
    return spikes, ends


AVAILABLE = _compiled is not None
