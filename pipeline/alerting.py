"""The alert policy: hysteresis over per-window decisions and deterministic alert ids.

Thresholds decide whether one window is anomalous; the policy decides when that becomes an
alert. An alert opens after ``open_after`` consecutive windows above the threshold and resolves
after ``resolve_after`` consecutive windows below it, so one noisy window neither opens nor
closes one.

An alert's id is a hash of the model fingerprint, the stream key and the end timestamp of the
first window of the run that opened it. Replaying the same windows through the same model gives
the same id, and the alert sinks drop an (id, status) pair they have already written, so a replay
after a crash raises no second alert.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone


def format_timestamp(seconds: float) -> str:
    """ISO 8601 UTC text for seconds since the epoch."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def alert_id(fingerprint: str, key: str, start: float) -> str:
    """Deterministic id of the alert that opened on ``key`` with a run starting at ``start``."""
    digest = hashlib.sha256(f"{fingerprint}\x1f{key}\x1f{start!r}".encode()).hexdigest()
    return digest[:20]


@dataclass(slots=True)
class Alert:
    """One state change of an alert, as written to the sinks."""

    alert_id: str
    key: str
    status: str  # "firing" or "resolved"
    start: float
    end: float | None
    peak_score: float
    threshold: float
    top_channels: list[str]
    windows: int
    detector: str

    def to_json(self) -> dict:
        data = asdict(self)
        data["start"] = format_timestamp(self.start)
        data["end"] = format_timestamp(self.end) if self.end is not None else None
        return data


@dataclass(slots=True)
class AlertState:
    """Per-key hysteresis counters and the open alert, if any."""

    above: int = 0
    below: int = 0
    run_start: float | None = None
    open_alert: dict | None = None
    peak_channels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "above": self.above,
            "below": self.below,
            "run_start": self.run_start,
            "open_alert": dict(self.open_alert) if self.open_alert else None,
            "peak_channels": list(self.peak_channels),
        }

    @classmethod
    def from_dict(cls, state: dict) -> AlertState:
        return cls(
            above=int(state["above"]),
            below=int(state["below"]),
            run_start=state["run_start"],
            open_alert=dict(state["open_alert"]) if state["open_alert"] else None,
            peak_channels=list(state["peak_channels"]),
        )


class AlertPolicy:
    """Hysteresis: open after ``open_after`` windows above, resolve after ``resolve_after`` below.

    Parameters
    ----------
    open_after, resolve_after
        Consecutive windows above (below) the threshold that open (resolve) an alert.
    fingerprint
        Identifies the model configuration; part of every alert id.
    detector
        Name written into each alert.
    """

    def __init__(self, *, open_after: int, resolve_after: int, fingerprint: str, detector: str):
        if open_after < 1 or resolve_after < 1:
            raise ValueError(
                f"open_after = {open_after} and resolve_after = {resolve_after} must be ≥ 1"
            )
        self.open_after = open_after
        self.resolve_after = resolve_after
        self.fingerprint = fingerprint
        self.detector = detector

    def observe(
        self,
        state: AlertState,
        *,
        key: str,
        timestamp: float,
        score: float,
        threshold: float,
        top_channels: list[str],
    ) -> Alert | None:
        """Feed one scored window of ``key``; return the alert state change it causes, if any."""
        if score > threshold:
            state.below = 0
            if state.above == 0:
                state.run_start = timestamp
            state.above += 1
            if state.open_alert is not None:
                alert = state.open_alert
                alert["windows"] += 1
                if score > alert["peak_score"]:
                    alert["peak_score"] = score
                    alert["threshold"] = threshold
                    alert["top_channels"] = top_channels
                return None
            if state.above >= self.open_after:
                state.open_alert = {
                    "alert_id": alert_id(self.fingerprint, key, state.run_start),
                    "start": state.run_start,
                    "peak_score": score,
                    "threshold": threshold,
                    "top_channels": top_channels,
                    "windows": state.above,
                }
                return self._alert(key, state.open_alert, "firing", end=None)
            return None

        state.above = 0
        if state.open_alert is None:
            return None
        state.below += 1
        if state.below < self.resolve_after:
            return None
        resolved = self._alert(key, state.open_alert, "resolved", end=timestamp)
        state.open_alert = None
        state.below = 0
        return resolved

    def _alert(self, key: str, alert: dict, status: str, *, end: float | None) -> Alert:
        return Alert(
            alert_id=alert["alert_id"],
            key=key,
            status=status,
            start=alert["start"],
            end=end,
            peak_score=float(alert["peak_score"]),
            threshold=float(alert["threshold"]),
            top_channels=list(alert["top_channels"]),
            windows=int(alert["windows"]),
            detector=self.detector,
        )
