"""A record that cannot be decoded is dead-lettered and never blocks its partition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from spikewatch.config import Config
from tests.integration.broker import TansuBroker
from tests.integration.kafka_helpers import (
    EngineWorker,
    checkpointed_counts,
    create_topic,
    read_topic,
    spike_records,
    worker_sections,
)

pytestmark = pytest.mark.integration


def test_truncated_record_is_dead_lettered(tmp_path: Path, kafka_broker: TansuBroker) -> None:
    address = kafka_broker.address
    create_topic(address, "readings", partitions=1)
    first, second = (json.dumps(r).encode() for r in spike_records(["pump-7"], 2, spike_at=99))
    truncated = first[: len(first) // 2]
    producer = KafkaProducer(bootstrap_servers=address, acks="all")
    for value in (first, truncated, second):
        producer.send("readings", key=b"pump-7", value=value)
    producer.close()

    sections = worker_sections(
        tmp_path,
        address,
        topic="readings",
        group="dead-letters",
        kafka={"dead_letter_topic": "readings-dead"},
    )
    config = Config().with_overrides(sections)
    worker = EngineWorker(config, "worker")
    worker.start()
    summary = worker.finish(timeout_s=60)

    assert summary.records == 3
    assert summary.records_accepted == 2
    assert summary.dead_letters_by_reason == {"invalid_json": 1}
    assert worker.sample("spikewatch_dead_letters_total", reason="invalid_json") == 1

    letters = read_topic(address, "readings-dead")
    assert len(letters) == 1
    letter = letters[0]
    headers = {name: value.decode() for name, value in letter.headers}
    assert letter.value == truncated
    assert headers["reason"] == "invalid_json"
    assert headers["source_topic"] == "readings"
    assert headers["source_partition"] == "0"
    assert headers["source_offset"] == "1"

    # The offset moved past the bad record and the third record reached the key's state.
    per_partition, per_key = checkpointed_counts(config)
    assert per_partition == {"readings:0": 3}
    assert per_key == {"pump-7": 2}
    consumer = KafkaConsumer(
        bootstrap_servers=address, group_id="dead-letters", enable_auto_commit=False
    )
    try:
        assert consumer.committed(TopicPartition("readings", 0)) == 3
    finally:
        consumer.close(autocommit=False)
