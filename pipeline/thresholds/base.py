"""The state every per-key threshold shares: a ring buffer of the key's recent scores."""

from __future__ import annotations

from typing import Any

import numpy as np


def conformal_p_values(calibration: np.ndarray, scores: Any) -> float | np.ndarray:
    """Conformal p-values of ``scores`` against ``calibration`` scores judged normal.

    ``p(s) = (1 + #{c ≥ s}) / (n + 1)`` over the n calibration scores c. A small p-value means
    anomalous: few normal scores were as high. Under exchangeability of the calibration scores
    and a new normal score, ``P(p(s) ≤ α) ≤ α`` for every α. A scalar gives a float, an array
    of scores an array of the same shape, through the same computation.
    """
    ordered = np.sort(np.asarray(calibration, dtype=np.float64))
    values = np.asarray(scores, dtype=np.float64)
    at_least = ordered.size - np.searchsorted(ordered, values, side="left")
    p_values = (1.0 + at_least) / (ordered.size + 1.0)
    return float(p_values) if p_values.ndim == 0 else p_values


class ScoreThreshold:
    """Base of the per-key thresholds.

    A threshold learns from each scored window of its key (:meth:`learn`, after the alert
    decision of that window) and gives the current threshold (:meth:`threshold`), or None until
    it has ``min_history`` scores and is trusted. Every kind keeps the key's ``history`` most
    recent scores it learned from, as float32 (``4 · history`` bytes per key): the engine judges
    a window normal against their quantiles and feeds their p-values to drift detection.

    Parameters
    ----------
    history
        Recent scores kept.
    min_history
        Scores needed before the threshold is trusted.
    """

    __slots__ = ("min_history", "scores", "count", "_sorted")

    kind = ""

    def __init__(self, *, history: int, min_history: int) -> None:
        if history < 2:
            raise ValueError(f"history = {history} must be at least 2")
        if not 1 <= min_history <= history:
            raise ValueError(f"min_history = {min_history} must be in [1, history = {history}]")
        self.min_history = min_history
        self.scores = np.zeros(history, dtype=np.float32)
        self.count = 0
        # The kept scores in ascending order, maintained on every insert, so a quantile or a
        # p-value is a lookup rather than a sort per window.
        self._sorted = np.zeros(history, dtype=np.float32)

    @property
    def ready(self) -> bool:
        return self.count >= self.min_history

    @property
    def recent(self) -> np.ndarray:
        """The kept scores, in ring order (not time order)."""
        return self.scores[: min(self.count, self.scores.shape[0])]

    @property
    def memory_bytes(self) -> int:
        return self.scores.nbytes

    def threshold(self) -> float | None:
        """Return the current threshold, or None while the key has too few scores."""
        raise NotImplementedError

    def learn(self, score: float, *, timestamp: float | None = None, in_alert: bool = False) -> None:
        """Learn from one scored window of the key.

        ``timestamp`` is the window's newest record time in seconds, ``in_alert`` whether the
        key's alert was open after this window's decision. The base keeps every score.
        """
        self._remember(score)

    def _remember(self, score: float) -> None:
        history = self.scores.shape[0]
        slot = self.count % history
        value = np.float32(score)
        ordered = self._sorted
        size = min(self.count, history)
        if self.count >= history:  # drop the score this one overwrites from the sorted view
            index = int(np.searchsorted(ordered[:size], self.scores[slot]))
            ordered[index : size - 1] = ordered[index + 1 : size]
            size -= 1
        index = int(np.searchsorted(ordered[:size], value))
        ordered[index + 1 : size + 1] = ordered[index:size]
        ordered[index] = value
        self.scores[slot] = value
        self.count += 1

    def quantile_of(self, q: float) -> float:
        """The q-quantile of the recent scores, interpolated linearly; +inf when there are none."""
        size = min(self.count, self.scores.shape[0])
        if size == 0:
            return float("inf")
        position = q * (size - 1)
        low = int(position)
        high = min(low + 1, size - 1)
        ordered = self._sorted
        return float(ordered[low]) + (float(ordered[high]) - float(ordered[low])) * (position - low)

    def p_value(self, scores: Any) -> float | np.ndarray:
        """Conformal p-values of ``scores`` against the recent scores; small means anomalous."""
        size = min(self.count, self.scores.shape[0])
        values = np.asarray(scores, dtype=np.float64)
        at_least = size - np.searchsorted(self._sorted[:size], values, side="left")
        p_values = (1.0 + at_least) / (size + 1.0)
        return float(p_values) if p_values.ndim == 0 else p_values

    def to_dict(self) -> dict:
        return {"kind": self.kind, "scores": self.scores.copy(), "count": self.count}

    def load_dict(self, state: dict) -> None:
        kind = state.get("kind", self.kind)
        if kind != self.kind:
            raise ValueError(f"threshold state of kind {kind!r} cannot load into a {self.kind!r} threshold")
        scores = np.asarray(state["scores"], dtype=np.float32)
        if scores.shape != self.scores.shape:
            raise ValueError(
                f"threshold history of {scores.shape[0]} scores does not match the configured "
                f"{self.scores.shape[0]}"
            )
        self.scores = scores.copy()
        self.count = int(state["count"])
        self._sorted = np.zeros_like(self.scores)
        size = min(self.count, self.scores.shape[0])
        self._sorted[:size] = np.sort(self.scores[:size])
