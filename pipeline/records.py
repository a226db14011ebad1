"""The record model shared by every source, and the checks that turn raw input into records.

A source yields raw mappings: either flat rows (CSV columns or JSON fields, one of them the
timestamp, the rest channels) or records already in the shared schema::

    {"key": "pump-7", "timestamp": "2024-05-01T12:00:00Z", "values": {"flow": 3.2}, "label": 0}

:class:`RecordDecoder` validates either form into a :class:`Record` or raises
:class:`~spikewatch.errors.InvalidRecord` with a reason from :data:`DEAD_LETTER_REASONS`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from spikewatch.errors import InvalidRecord

#: Every reason a record can be dead-lettered for; the set is fixed so metric labels stay bounded.
DEAD_LETTER_REASONS = (
    "invalid_json",
    "not_an_object",
    "invalid_key",
    "missing_timestamp",
    "invalid_timestamp",
    "timestamp_in_future",
    "out_of_order",
    "duplicate",
    "non_numeric_value",
    "non_finite_value",
    "missing_channel",
    "unknown_channel",
    "no_channels",
    "invalid_label",
    "invalid_log_line",
)


class UnparsedLine(str):
    """Raw text that a source could not turn into a record, such as a log line off its format.

    The decoder dead-letters it with ``reason`` and ``detail``; the text is the dead letter's
    payload, so the line is kept as it was read.
    """

    reason: str
    detail: str

    def __new__(cls, text: str, reason: str, detail: str) -> UnparsedLine:
        line = super().__new__(cls, text)
        line.reason = reason
        line.detail = detail
        return line


@dataclass(slots=True, frozen=True)
class Record:
    """One observation of one stream key.

    ``timestamp`` is in seconds since the Unix epoch (UTC); ``values`` maps channel name to a
    finite float; ``label`` is 1 for a known anomaly, 0 for normal, None when unlabeled.
    """

    key: str
    timestamp: float
    values: Mapping[str, float]
    label: int | None = None


def parse_timestamp(value: Any) -> float:
    """Convert seconds since the epoch or ISO 8601 text to seconds since the epoch (UTC).

    Text without a UTC offset is read as UTC, which is how NAB and SKAB files are recorded.
    """
    if isinstance(value, bool):
        raise InvalidRecord("invalid_timestamp", f"timestamp {value!r} is a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidRecord("missing_timestamp", "timestamp is empty")
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRecord(
                    "invalid_timestamp",
                    f"timestamp {value!r} is neither ISO 8601 nor seconds since the epoch",
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            seconds = moment.timestamp()
    else:
        raise InvalidRecord("invalid_timestamp", f"timestamp {value!r} has type {type(value).__name__}")
    if not math.isfinite(seconds):
        raise InvalidRecord("invalid_timestamp", f"timestamp {value!r} is not finite")
    return seconds


def _parse_value(channel: str, value: Any) -> float:
    if value is None:
        raise InvalidRecord("missing_channel", f"channel {channel!r} has no value")
    if isinstance(value, bool):
        raise InvalidRecord("non_numeric_value", f"channel {channel!r} contains a boolean")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidRecord(
                "non_numeric_value", f"channel {channel!r} contains {value[:40]!r}, not a number"
            ) from None
    else:
        raise InvalidRecord(
            "non_numeric_value", f"channel {channel!r} contains a {type(value).__name__}, not a number"
        )
    if not math.isfinite(number):
        raise InvalidRecord("non_finite_value", f"channel {channel!r} contains {value!r}")
    return number


def _parse_label(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        label = int(float(value))
    except (TypeError, ValueError):
        raise InvalidRecord("invalid_label", f"label {value!r} is not 0 or 1") from None
    if label not in (0, 1):
        raise InvalidRecord("invalid_label", f"label {value!r} is not 0 or 1")
    return label


class RecordDecoder:
    """Validate raw mappings into :class:`Record` objects.

    Parameters
    ----------
    key_field, timestamp_field, label_field
        Field names in flat rows; an empty ``key_field`` puts every record under ``default_key``
        and an empty ``label_field`` leaves records unlabeled.
    ignore_fields
        Fields of flat rows that are neither channels nor key, timestamp or label.
    channels
        The channel names every record must carry. Empty: the first valid record fixes them.
    max_future_s
        A timestamp this many seconds past the wall clock is rejected as ``timestamp_in_future``.
    """

    def __init__(
        self,
        *,
        key_field: str = "",
        default_key: str = "default",
        timestamp_field: str = "timestamp",
        label_field: str = "",
        ignore_fields: Sequence[str] = (),
        channels: Sequence[str] = (),
        max_future_s: float = 86400.0,
    ) -> None:
        self.key_field = key_field
        self.default_key = default_key
        self.timestamp_field = timestamp_field
        self.label_field = label_field
        self.max_future_s = max_future_s
        self.channels: tuple[str, ...] = tuple(channels)
        self._reserved = {key_field, timestamp_field, label_field, *ignore_fields} - {""}
        # The wall clock is read again only when a timestamp passes the cached limit, and at most
        # once a second, because a per-record time.time() call costs more than the check.
        self._clock_read_at = 0.0
        self._latest_allowed = 0.0

    def decode(self, raw: Any, *, key_override: str | None = None) -> Record:
        """Validate one raw record; raise InvalidRecord with the reason when it is unusable.

        ``raw`` is a mapping, or ``str``/``bytes`` holding one JSON object. ``key``, when given,
        ``key_override``, when given, is the stream key (a Kafka message key) and replaces any key field.
        """
        if isinstance(raw, UnparsedLine):
            raise InvalidRecord(raw.reason, raw.detail)
        if isinstance(raw, (str, bytes, bytearray)):
            try:
                raw = json.loads(raw)
            # ValueError covers integers longer than Python's 4300-digit limit, RecursionError
            # nesting deeper than the parser's stack: both are bad input, not a failure.
            except (ValueError, RecursionError) as error:
                raise InvalidRecord("invalid_json", f"not valid JSON: {error}") from None
        if not isinstance(raw, Mapping):
            raise InvalidRecord("not_an_object", f"expected a JSON object, got {type(raw).__name__}")
        if isinstance(raw.get("values"), Mapping):
            key = raw.get("key", self.default_key)
            stamp = raw.get("timestamp")
            label = raw.get("label")
            fields = raw["values"]
        else:
            key = raw.get(self.key_field, self.default_key) if self.key_field else self.default_key
            stamp = raw.get(self.timestamp_field)
            label = raw.get(self.label_field) if self.label_field else None
            fields = {name: value for name, value in raw.items() if name not in self._reserved}
            if None in fields:
                # csv.DictReader files surplus cells of a row under the key None.
                raise InvalidRecord("unknown_channel", "row has more fields than the header")

        if key_override is not None:
            key = key_override
        if not isinstance(key, (str, int)) or isinstance(key, bool) or key == "":
            raise InvalidRecord("invalid_key", f"stream key {key!r} is not a non-empty string")
        if isinstance(key, str) and not key.isascii():
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                # Lone surrogates (a JSON "\ud800" escape, or undecodable bytes on stdin)
                # cannot be written to alerts, metrics or checkpoints.
                raise InvalidRecord("invalid_key", f"stream key {key!r} is not valid Unicode") from None
        if stamp is None:
            raise InvalidRecord("missing_timestamp", f"field {self.timestamp_field!r} is missing")
        timestamp = self._check_not_future(parse_timestamp(stamp))
        values = self._parse_channels(fields)
        return Record(str(key), timestamp, values, _parse_label(label))

    def _check_not_future(self, timestamp: float) -> float:
        if timestamp > self._latest_allowed:
            now = time.time()
            if now - self._clock_read_at >= 1.0:
                self._clock_read_at = now
                self._latest_allowed = now + self.max_future_s
            if timestamp > self._latest_allowed:
                raise InvalidRecord(
                    "timestamp_in_future",
                    f"timestamp {timestamp:.3f} is more than {self.max_future_s:g} s "
                    "ahead of the wall clock"
                    + (
                        "; it looks like milliseconds since the epoch, give seconds"
                        if timestamp > 1e11
                        else ""
                    ),
                )
        return timestamp

    def _parse_channels(self, fields: Mapping[str, Any]) -> dict[str, float]:
        if not self.channels:
            if not fields:
                raise InvalidRecord("no_channels", "record carries no channel values")
            values = {str(name): _parse_value(str(name), value) for name, value in fields.items()}
            # Fix the channel set only once a record has passed every check.
            self.channels = tuple(values)
            return values
        if len(fields) != len(self.channels) or any(name not in fields for name in self.channels):
            missing = [name for name in self.channels if name not in fields]
            if missing:
                raise InvalidRecord("missing_channel", f"channels {missing} are missing")
            unknown = [name for name in fields if name not in self.channels]
            raise InvalidRecord(
                "unknown_channel", f"channels {unknown} are not among {list(self.channels)}"
            )
        return {name: _parse_value(name, fields[name]) for name in self.channels}


def check_order(record: Record, newest_timestamp: float | None, max_lateness_s: float) -> None:
    """Reject a record that repeats or falls behind its key's newest accepted timestamp.

    A record at exactly the newest timestamp is a duplicate; one older than the newest by more
    than ``max_lateness_s`` seconds is out of order. Records within the lateness allowance are
    accepted in arrival order.
    """
    if newest_timestamp is None:
        return
    if record.timestamp == newest_timestamp:
        raise InvalidRecord(
            "duplicate", f"key {record.key!r} already has a record at {record.timestamp:.3f}"
        )
    if record.timestamp < newest_timestamp - max_lateness_s:
        raise InvalidRecord(
            "out_of_order",
            f"timestamp {record.timestamp:.3f} is {newest_timestamp - record.timestamp:g} s "
            f"behind key {record.key!r}'s newest record (lateness allowed: {max_lateness_s:g} s)",
        )
