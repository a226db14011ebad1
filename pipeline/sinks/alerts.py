"""Alert sinks. Every sink is idempotent: an (alert_id, status) pair is delivered once."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from spikewatch.alerting import Alert

logger = logging.getLogger(__name__)


class AlertSink:
    """Base of the alert sinks: ``send`` delivers one alert state change, ``flush`` and ``close``."""

    def send(self, alert: Alert) -> bool:
        """Deliver ``alert``; return False when it was a duplicate and was dropped."""
        raise NotImplementedError

    def flush(self) -> None:
        """Make delivered alerts durable; called before every checkpoint."""

    def close(self) -> None:
        self.flush()


class JsonlAlertSink(AlertSink):
    """Append alerts as JSON lines, one line per state change.

    The (alert_id, status) pairs already in the file are read at start, so an alert replayed after
    a restart is dropped rather than written twice. A torn last line (a crash mid-write) is
    skipped with a warning.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.delivered: set[tuple[str, str]] = set()
        if self.path.exists():
            self._load_delivered()
        self._file = self.path.open("a", encoding="utf-8")
        _terminate_torn_line(self.path, self._file)
        self.written = 0
        self.duplicates = 0

    def _load_delivered(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    alert = json.loads(line)
                    self.delivered.add((alert["alert_id"], alert["status"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    logger.warning("%s line %d is not an alert; ignoring it", self.path, number)
        logger.info("%s already contains %d alert state changes", self.path, len(self.delivered))

    def send(self, alert: Alert) -> bool:
        marker = (alert.alert_id, alert.status)
        if marker in self.delivered:
            self.duplicates += 1
            return False
        self.delivered.add(marker)
        self._file.write(json.dumps(alert.to_json()) + "\n")
        self.written += 1
        return True

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()


def _terminate_torn_line(path: Path, handle) -> None:
    """End a last line cut short by a crash, so the next line does not fuse with it."""
    if path.stat().st_size == 0:
        return
    with path.open("rb") as reader:
        reader.seek(-1, os.SEEK_END)
        if reader.read(1) != b"\n":
            handle.write("\n")
