"""Detector health: notice when the scores stop telling windows apart."""

from __future__ import annotations

import numpy as np


class ScoreHealth:
    """Flags a score stream whose recent variance has collapsed.

    A one-class detector can reach a trivial solution that maps every input to (nearly) the same
    score: Deep SVDD's hypersphere collapse, a transformation detector whose views no longer
    depend on the input, or an encoder whose neurons stopped firing. Every window then looks
    alike and no threshold can separate anomalies. The monitor keeps the last ``window`` scores
    and reports a collapse when their standard deviation is at most
    ``relative_tolerance · |mean| + absolute_tolerance``.

    A stream that really is constant (a flat-lined sensor) also trips it; the flag is a warning
    to look, not an error.

    Parameters
    ----------
    window
        Recent scores the variance is taken over.
    min_scores
        Scores needed before the monitor judges at all.
    relative_tolerance
        Standard deviation, as a fraction of the mean score's magnitude, at or below which the
        scores count as constant. 1e-4 is well above float32 rounding (about 6e-8) and well
        below the spread of any useful score.
    absolute_tolerance
        Standard deviation at or below which scores near zero count as constant.

    Examples
    --------
    >>> health = ScoreHealth(window=64, min_scores=16)
    >>> health.update([0.5] * 20)
    True
    >>> health.update(np.linspace(0.0, 1.0, 64))
    False
    """

    def __init__(
        self,
        *,
        window: int = 256,
        min_scores: int = 32,
        relative_tolerance: float = 1e-4,
        absolute_tolerance: float = 1e-8,
    ) -> None:
        if not 2 <= min_scores <= window:
            raise ValueError(f"min_scores = {min_scores} must be in [2, window = {window}]")
        self.min_scores = min_scores
        self.relative_tolerance = relative_tolerance
        self.absolute_tolerance = absolute_tolerance
        self.scores = np.zeros(window, dtype=np.float64)
        self.count = 0
        self.collapsed = False

    def update(self, scores) -> bool:
        """Add scores, oldest first; return whether the recent scores have collapsed."""
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        capacity = self.scores.shape[0]
        # Only the newest `capacity` values can stay; the older ones still count as seen.
        self.count += max(values.shape[0] - capacity, 0)
        for value in values[-capacity:]:
            self.scores[self.count % capacity] = value
            self.count += 1
        if self.count < self.min_scores:
            self.collapsed = False
            return False
        recent = self.scores[: min(self.count, capacity)]
        recent = recent[np.isfinite(recent)]
        if recent.size < self.min_scores:
            self.collapsed = False
            return False
        spread = float(recent.std())
        self.collapsed = spread <= self.relative_tolerance * abs(float(recent.mean())) + self.absolute_tolerance
        return self.collapsed

    def state_dict(self) -> dict:
        return {"scores": self.scores.copy(), "count": self.count, "collapsed": self.collapsed}

    def load_state_dict(self, state: dict) -> None:
        scores = np.asarray(state["scores"], dtype=np.float64)
        if scores.shape != self.scores.shape:
            raise ValueError(
                f"score health window of {scores.shape[0]} scores does not match the configured "
                f"{self.scores.shape[0]}"
            )
        self.scores = scores.copy()
        self.count = int(state["count"])
        self.collapsed = bool(state["collapsed"])
