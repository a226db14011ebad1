"""Per-key streaming thresholds on window scores."""

from __future__ import annotations

import numpy as np


class RunningQuantile:
    """The q-quantile of a key's most recent ``history`` scores, times a margin.

    A key's threshold is not trusted until it has ``min_history`` scores; until then
    :meth:`threshold` returns ``None`` and the key cannot alert. Scores are kept in a ring buffer
    of float32, ``4 · history`` bytes per key.
    """

    __slots__ = ("quantile", "margin", "min_history", "scores", "count", "_cached")

    def __init__(self, *, quantile: float, history: int, min_history: int, margin: float = 1.0):
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile = {quantile} must be in (0, 1)")
        self.quantile = quantile
        self.margin = margin
        self.min_history = min_history
        self.scores = np.zeros(history, dtype=np.float32)
        self.count = 0
        self._cached: float | None = None

    @property
    def ready(self) -> bool:
        return self.count >= self.min_history

    def threshold(self) -> float | None:
        """The current threshold, or None while the key has too few scores."""
        if not self.ready:
            return None
        if self._cached is None:
            live = self.scores[: min(self.count, self.scores.shape[0])]
            self._cached = float(np.quantile(live, self.quantile)) * self.margin
        return self._cached

    def quantile_of(self, q: float) -> float:
        """The q-quantile of the recent scores (no margin); +inf when there are none."""
        if self.count == 0:
            return float("inf")
        live = self.scores[: min(self.count, self.scores.shape[0])]
        return float(np.quantile(live, q))

    def learn(self, score: float) -> None:
        """Add one score to the history."""
        self.scores[self.count % self.scores.shape[0]] = score
        self.count += 1
        self._cached = None

    def to_dict(self) -> dict:
        return {"scores": self.scores.copy(), "count": self.count}

    def load_dict(self, state: dict) -> None:
        scores = np.asarray(state["scores"], dtype=np.float32)
        if scores.shape != self.scores.shape:
            raise ValueError(
                f"threshold history of {scores.shape[0]} scores does not match the configured "
                f"{self.scores.shape[0]}"
            )
        self.scores = scores.copy()
        self.count = int(state["count"])
        self._cached = None
