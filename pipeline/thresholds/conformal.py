"""A false-alarm budget held by a conformal threshold."""

from __future__ import annotations

import math

import numpy as np

from spikewatch.thresholds.base import ScoreThreshold

SECONDS_PER_DAY = 86_400.0
#: Intervals between a key's consecutive windows kept to measure its window rate; their median
#: ignores the odd gap or burst.
INTERVALS_KEPT = 32


class ConformalThreshold(ScoreThreshold):
    """The threshold that lets through ``false_alarms_per_day`` normal windows per key per day.

    The operator states a budget of false alarms per key per day. Let Δ be the key's interval
    between windows in seconds: ``window_interval_s`` if given, else the median of its recent
    intervals. The budget is then a probability per window ``α = false_alarms_per_day · Δ /
    86400``. The calibration set is the key's ``history``
    most recent scores judged normal: scored while no alert of the key was open. A new score s
    gets the conformal p-value ``p(s) = (1 + #{c ≥ s}) / (n + 1)`` over the n calibration
    scores c, and it exceeds the threshold exactly when ``p(s) ≤ α``. The threshold is the
    ``⌈(n + 1)(1 − α)⌉``-th smallest calibration score, and +inf when that rank exceeds n
    (too few scores to spend so small a budget).

    If the calibration scores and a new normal score are exchangeable, the probability that the
    normal score exceeds the threshold is at most α. Window scores of a stream are correlated
    and drift, so this is a target and not a guarantee; the measured rates are in
    ``docs/detectors.md``. An alert needs ``alerts.open_after`` windows over the threshold in a
    row, so alerts are at most as frequent as windows over the threshold.

    Parameters
    ----------
    false_alarms_per_day
        The budget: windows over the threshold per key per day on normal data.
    window_interval_s
        Seconds between two windows of a key; 0 measures it from the window timestamps.
    history, min_history
        Calibration scores kept, and needed before the threshold is trusted.
    """

    __slots__ = ("false_alarms_per_day", "window_interval_s", "last_timestamp", "intervals", "interval_count", "_cached")

    kind = "conformal"

    def __init__(
        self,
        *,
        false_alarms_per_day: float,
        window_interval_s: float = 0.0,
        history: int,
        min_history: int,
    ) -> None:
        if not false_alarms_per_day > 0:
            raise ValueError(f"false_alarms_per_day = {false_alarms_per_day} must be positive")
        if not window_interval_s >= 0:
            raise ValueError(f"window_interval_s = {window_interval_s} must be at least 0")
        super().__init__(history=history, min_history=min_history)
        self.false_alarms_per_day = false_alarms_per_day
        self.window_interval_s = window_interval_s
        self.last_timestamp: float | None = None
        self.intervals = np.zeros(INTERVALS_KEPT, dtype=np.float64)
        self.interval_count = 0
        self._cached: float | None = None

    @property
    def interval_s(self) -> float | None:
        """Seconds between two windows of the key: configured, or the median measured one."""
        if self.window_interval_s > 0:
            return self.window_interval_s
        if self.interval_count == 0:
            return None
        return float(np.median(self.intervals[: min(self.interval_count, INTERVALS_KEPT)]))

    @property
    def alpha(self) -> float | None:
        """The budget as a probability per window, or None before the first interval is known."""
        interval = self.interval_s
        if interval is None:
            return None
        return min(self.false_alarms_per_day * interval / SECONDS_PER_DAY, 1.0)

    def threshold(self) -> float | None:
        if not self.ready:
            return None
        if self._cached is None:
            alpha = self.alpha
            if alpha is None:
                return None
            calibration = np.sort(self.recent.astype(np.float64))
            rank = math.ceil((calibration.size + 1) * (1.0 - alpha))
            self._cached = math.inf if rank > calibration.size else float(calibration[rank - 1])
        return self._cached

    def learn(self, score: float, *, timestamp: float | None = None, in_alert: bool = False) -> None:
        if timestamp is not None:
            if self.last_timestamp is not None and timestamp > self.last_timestamp:
                self.intervals[self.interval_count % INTERVALS_KEPT] = timestamp - self.last_timestamp
                self.interval_count += 1
            self.last_timestamp = timestamp
        if not in_alert:
            self._remember(score)
        self._cached = None

    @property
    def memory_bytes(self) -> int:
        return self.scores.nbytes + self.intervals.nbytes

    def to_dict(self) -> dict:
        state = super().to_dict()
        state.update(
            last_timestamp=self.last_timestamp,
            intervals=self.intervals.copy(),
            interval_count=self.interval_count,
        )
        return state

    def load_dict(self, state: dict) -> None:
        super().load_dict(state)
        self.last_timestamp = None if state["last_timestamp"] is None else float(state["last_timestamp"])
        intervals = np.asarray(state["intervals"], dtype=np.float64)
        if intervals.shape != self.intervals.shape:
            raise ValueError(f"conformal state keeps {intervals.shape[0]} intervals, expected {INTERVALS_KEPT}")
        self.intervals = intervals.copy()
        self.interval_count = int(state["interval_count"])
        self._cached = None
