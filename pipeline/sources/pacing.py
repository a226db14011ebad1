"""Replay at a multiple of real time."""

from __future__ import annotations

import time


class Pacer:
    """Sleep so that records are released ``speed`` times faster than they were recorded.

    Each key keeps its own clock, anchored at its first record, because keys of one replay may
    cover different periods (the demo's series do). ``speed`` 0 disables pacing.
    """

    def __init__(self, speed: float) -> None:
        if speed < 0:
            raise ValueError(f"speed = {speed} must be 0 (as fast as possible) or positive")
        self.speed = speed
        self._anchors: dict[str, tuple[float, float]] = {}

    def delay(self, key: str, timestamp: float) -> float:
        """Seconds to wait before releasing a record of ``key`` at ``timestamp``."""
        if self.speed == 0:
            return 0.0
        now = time.monotonic()
        anchor = self._anchors.setdefault(key, (timestamp, now))
        due = anchor[1] + (timestamp - anchor[0]) / self.speed
        return max(due - now, 0.0)
