"""Producing recorded streams: message format, validation and pacing."""

from __future__ import annotations

import json
from pathlib import Path

from spikewatch.kafka.produce import (
    ProduceSummary,
    decoded_records,
    produce_records,
    record_message,
)
from spikewatch.records import Record, RecordDecoder
from spikewatch.sources import CsvSource


class ListProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = False

    def send(self, topic: str, *, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        self.flushed = True


def test_record_message_is_shared_schema_keyed_by_stream_key() -> None:
    key, value = record_message(Record("pump-7", 60.0, {"flow": 3.2}, 1))
    assert key == b"pump-7"
    assert json.loads(value) == {
        "key": "pump-7",
        "timestamp": 60.0,
        "values": {"flow": 3.2},
        "label": 1,
    }


def test_csv_rows_are_validated_and_sent(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("timestamp,host,cpu\n60,a,1.5\n120,b,oops\n180,a,2.5\n")
    summary = ProduceSummary()
    decoder = RecordDecoder(key_field="host")
    producer = ListProducer()
    produce_records(
        decoded_records(CsvSource(path), decoder, summary), producer, "readings", summary=summary
    )
    assert [(topic, key) for topic, key, _ in producer.sent] == [
        ("readings", b"a"),
        ("readings", b"a"),
    ]
    assert producer.flushed
    assert summary.records == 2
    assert summary.skipped_by_reason == {"non_numeric_value": 1}
    assert "skipped 1 invalid rows" in summary.format("readings")


def test_max_records_stops_early(tmp_path: Path) -> None:
    records = iter([Record("k", float(t), {"v": 1.0}) for t in range(10)])
    summary = produce_records(records, ListProducer(), "readings", max_records=3)
    assert summary.records == 3
