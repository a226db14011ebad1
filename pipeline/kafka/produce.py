"""Producing recorded streams to a topic, as ``spikewatch produce`` does."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from spikewatch.errors import InvalidRecord
from spikewatch.records import Record, RecordDecoder
from spikewatch.sources import Source
from spikewatch.sources.pacing import Pacer

logger = logging.getLogger(__name__)


def record_message(record: Record) -> tuple[bytes, bytes]:
    """Message key (the stream key) and JSON value of ``record`` in the shared record schema."""
    value: dict[str, Any] = {
        "key": record.key,
        "timestamp": record.timestamp,
        "values": dict(record.values),
    }
    if record.label is not None:
        value["label"] = record.label
    return record.key.encode(), json.dumps(value).encode()


@dataclass
class ProduceSummary:
    """Counts of one ``produce`` call: records sent, rows skipped by reason, keys and seconds."""

    records: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    seconds: float = 0.0

    def format(self, topic: str) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        line = (
            f"sent {self.records} records of {len(self.keys)} keys to topic {topic} "
            f"in {self.seconds:.1f} s ({rate:,.0f} records/s)"
        )
        if self.skipped:
            line += f"; skipped {self.skipped} invalid rows {self.skipped_by_reason}"
        return line


def decoded_records(
    source: Source, decoder: RecordDecoder, summary: ProduceSummary
) -> Iterator[Record]:
    """Records of ``source`` that pass validation; invalid rows are counted in ``summary``."""
    for item in source:
        if item is None:
            continue
        try:
            yield decoder.decode(item.payload, key_override=item.key)
        except InvalidRecord as error:
            summary.skipped += 1
            summary.skipped_by_reason[error.reason] = (
                summary.skipped_by_reason.get(error.reason, 0) + 1
            )
            if summary.skipped <= 5:
                logger.warning("skipping row %s of %s: %s", item.position, source.name, error)


def produce_records(
    records: Iterator[Record],
    producer: Any,
    topic: str,
    *,
    speed: float = 0.0,
    max_records: int | None = None,
    summary: ProduceSummary | None = None,
) -> ProduceSummary:
    """Send ``records`` to ``topic`` keyed by stream key, at ``speed`` times real time (0: at once).

    Returns once the broker has acknowledged every record.
    """
    summary = summary or ProduceSummary()
    pacer = Pacer(speed)
    started = time.perf_counter()
    for record in records:
        if max_records is not None and summary.records >= max_records:
            break
        delay = pacer.delay(record.key, record.timestamp)
        if delay > 0:
            time.sleep(delay)
        key, value = record_message(record)
        producer.send(topic, key=key, value=value)
        summary.records += 1
        summary.keys.add(record.key)
    producer.flush()
    summary.seconds = time.perf_counter() - started
    return summary
