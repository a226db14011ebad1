"""Template counts per stream key and fixed time bucket, emitted as records of the shared schema.

Bucket ``i`` of a key covers the timestamps ``[i * bucket_seconds, (i + 1) * bucket_seconds)``.
Each key has at most one open bucket. It closes when a line of that key falls into a later
bucket, when :meth:`BucketCounter.close_through` is given a time past its end, or at the end of
the stream. A closed bucket becomes one record::

    {"key": "R02-M1", "timestamp": 1117838520.0, "values": {"lines": 3.0, ...}, "label": 1}

with the bucket's start as its timestamp. ``label`` is 1 when a line of the bucket was labeled
anomalous, 0 when none was, and None for an unlabeled stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from spikewatch.logs.templates import LINES_CHANNEL, NEW_TEMPLATES_CHANNEL


@dataclass(slots=True)
class _OpenBucket:
    index: int
    counts: list[float]
    label: int | None
    first_sequence: int
    position_before: Any


@dataclass(slots=True)
class BucketCounter:
    """Counts lines per key, bucket and channel.

    Parameters
    ----------
    names
        Channel names, as from :func:`~spikewatch.logs.templates.template_channel_names`: the
        line count, the new-template count, then one per template channel.
    bucket_seconds
        Width of a bucket in seconds.
    max_empty_buckets
        Buckets without a line between two buckets of a key that are emitted as zero counts;
        a longer silence is cut to this many. 0 emits only buckets that hold a line.
    """

    names: list[str]
    bucket_seconds: float
    max_empty_buckets: int = 0
    open: dict[str, _OpenBucket] = field(default_factory=dict)
    late_lines: int = 0
    newest_timestamp: float = -math.inf

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds = {self.bucket_seconds} must be positive")
        if self.max_empty_buckets < 0:
            raise ValueError(f"max_empty_buckets = {self.max_empty_buckets} must be 0 or more")
        if self.names[:2] != [LINES_CHANNEL, NEW_TEMPLATES_CHANNEL]:
            raise ValueError(
                f"names must start with {LINES_CHANNEL!r} and {NEW_TEMPLATES_CHANNEL!r}, "
                f"got {self.names[:2]}"
            )

    def add(
        self,
        key: str,
        timestamp: float,
        template_index: int,
        is_new: bool,
        label: int | None,
        *,
        sequence: int,
        position_before: Any,
    ) -> list[dict]:
        """Count one line; return the records of the buckets it closes, oldest first.

        ``sequence`` numbers the lines in reading order and ``position_before`` is the source
        position just before this line; :meth:`safe_position` uses both. A line older than its
        key's open bucket is counted in the open bucket and in :attr:`late_lines`, because the
        older bucket has been emitted already.
        """
        index = math.floor(timestamp / self.bucket_seconds)
        self.newest_timestamp = max(self.newest_timestamp, timestamp)
        closed: list[dict] = []
        bucket = self.open.get(key)
        if bucket is not None and index > bucket.index:
            closed.append(self._record(key, bucket))
            empty = min(index - bucket.index - 1, self.max_empty_buckets)
            quiet_label = None if bucket.label is None else 0
            for skipped in range(bucket.index + 1, bucket.index + 1 + empty):
                closed.append(self._empty_record(key, skipped, quiet_label))
            bucket = None
        if bucket is None:
            bucket = _OpenBucket(index, [0.0] * len(self.names), label, sequence, position_before)
            self.open[key] = bucket
        elif index < bucket.index:
            self.late_lines += 1
        bucket.counts[0] += 1
        if is_new:
            bucket.counts[1] += 1
        bucket.counts[2 + template_index] += 1
        if label is not None:
            bucket.label = max(bucket.label or 0, label)
        return closed

    def close_through(self, timestamp: float) -> list[dict]:
        """Close every open bucket that ends at or before ``timestamp``."""
        due = [
            key
            for key, bucket in self.open.items()
            if (bucket.index + 1) * self.bucket_seconds <= timestamp
        ]
        return [self._record(key, self.open.pop(key)) for key in due]

    def close_all(self) -> list[dict]:
        """Close every open bucket, at the end of the stream."""
        records = [self._record(key, bucket) for key, bucket in self.open.items()]
        self.open.clear()
        return records

    def safe_position(self, newest_position: Any) -> Any:
        """The latest source position whose lines are all in emitted records.

        It is the position before the first line of the oldest open bucket, or
        ``newest_position`` when no bucket is open. Resuming after it re-reads the lines of
        the buckets that were still open.
        """
        if not self.open:
            return newest_position
        oldest = min(self.open.values(), key=lambda bucket: bucket.first_sequence)
        return oldest.position_before

    def _record(self, key: str, bucket: _OpenBucket) -> dict:
        return {
            "key": key,
            "timestamp": bucket.index * self.bucket_seconds,
            "values": dict(zip(self.names, bucket.counts, strict=True)),
            "label": bucket.label,
        }

    def _empty_record(self, key: str, index: int, label: int | None) -> dict:
        return {
            "key": key,
            "timestamp": index * self.bucket_seconds,
            "values": dict.fromkeys(self.names, 0.0),
            "label": label,
        }
