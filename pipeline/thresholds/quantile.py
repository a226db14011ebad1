"""The running-quantile threshold."""

from __future__ import annotations

from spikewatch.thresholds.base import ScoreThreshold


class RunningQuantile(ScoreThreshold):
    """The q-quantile of a key's most recent ``history`` scores, times a margin.

    A key's threshold is not trusted until it has ``min_history`` scores; until then
    :meth:`threshold` returns ``None`` and the key cannot alert. The margin multiplies the
    quantile, so it raises the threshold only for positive scores. Scores above the threshold
    are remembered as the threshold (winsorised), so an anomaly does not raise the threshold
    that is meant to catch it.
    """

    __slots__ = ("quantile", "margin", "_cached")

    kind = "quantile"

    def __init__(self, *, quantile: float, history: int, min_history: int, margin: float = 1.0):
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile = {quantile} must be in (0, 1)")
        super().__init__(history=history, min_history=min_history)
        self.quantile = quantile
        self.margin = margin
        self._cached: float | None = None

    def threshold(self) -> float | None:
        if not self.ready:
            return None
        if self._cached is None:
            self._cached = self.quantile_of(self.quantile) * self.margin
        return self._cached

    def learn(self, score: float, *, timestamp: float | None = None, in_alert: bool = False) -> None:
        # A score above the threshold enters the history at the threshold's value. Taken as it
        # is, one anomalous window would become the new 99th percentile of a short history and
        # hide the next window of the same anomaly from the alert policy.
        threshold = self.threshold()
        if threshold is not None and score > threshold:
            score = threshold
        self._remember(score)
        self._cached = None

    def load_dict(self, state: dict) -> None:
        super().load_dict(state)
        self._cached = None
