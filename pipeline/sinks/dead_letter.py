"""Dead-letter sinks: records that cannot be used, with the reason, so nothing is lost silently."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class DeadLetter:
    """A rejected record: its original payload, where it came from, and why it was rejected."""

    reason: str
    detail: str
    payload: Any
    source: str
    position: Any

    def to_json(self) -> dict:
        payload = self.payload
        if isinstance(payload, (bytes, bytearray)):
            try:
                payload = bytes(payload).decode("utf-8")
            except UnicodeDecodeError:
                payload = {"base64": base64.b64encode(bytes(payload)).decode("ascii")}
        return {
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "position": self.position,
            "payload": payload,
        }


class DeadLetterSink:
    """Base of the dead-letter sinks."""

    def send(self, letter: DeadLetter) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make written letters durable; called before every checkpoint."""

    def close(self) -> None:
        self.flush()


class JsonlDeadLetterSink(DeadLetterSink):
    """Append dead letters as JSON lines.

    Delivery is at least once: records replayed after a restart from a checkpoint are rejected
    again and appear twice; ``source`` and ``position`` identify the copies.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        _terminate_torn_line(self.path, self._file)
        self.written = 0

    def send(self, letter: DeadLetter) -> None:
        self._file.write(json.dumps(letter.to_json(), default=str) + "\n")
        self.written += 1

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
