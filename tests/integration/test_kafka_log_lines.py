"""Raw log lines from a Kafka topic become template-count records, as with --log-format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from kafka import KafkaProducer

from spikewatch.commands.run import build_source
from spikewatch.config import Config
from spikewatch.engine import Engine
from spikewatch.logs.source import TemplateCountSource
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink
from tests.integration.broker import TansuBroker
from tests.integration.kafka_helpers import (
    START,
    checkpointed_counts,
    create_topic,
    worker_sections,
)

pytestmark = pytest.mark.integration

MESSAGES = ("node {} started", "disk sda{} is full", "fan {} slow")


def test_log_lines_from_kafka(tmp_path: Path, kafka_broker: TansuBroker) -> None:
    address = kafka_broker.address
    create_topic(address, "logs", partitions=1)
    # 300 lines, one every 20 s, in about 100 one-minute buckets.
    stamps = [START + 20 * index for index in range(300)]
    buckets = len({math.floor(stamp / 60) for stamp in stamps})
    lines = [
        f"- {stamp:.0f} INFO {MESSAGES[index % 3].format(index % 7)}"
        for index, stamp in enumerate(stamps)
    ]
    lines.insert(150, "truncated line")
    producer = KafkaProducer(bootstrap_servers=address, acks="all")
    for line in lines:
        producer.send("logs", value=line.encode())
    producer.close()

    sections = worker_sections(tmp_path, address, topic="logs", group="logs")
    sections["logs"] = {"format": "<Label> <Timestamp> <Level> <Content>", "bucket_seconds": 60.0}
    config = Config().with_overrides(sections)
    source = build_source(config)
    assert isinstance(source, TemplateCountSource)
    assert source.partitioned
    engine = Engine(
        config,
        source,
        alert_sinks=[JsonlAlertSink(config.alerts.path)],
        dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
    )
    summary = engine.run()

    assert summary.records == buckets + 1
    assert summary.records_accepted == buckets
    assert summary.dead_letters_by_reason == {"invalid_log_line": 1}
    letters = [json.loads(line) for line in Path(config.dead_letter.path).read_text().splitlines()]
    assert letters[0]["payload"] == "truncated line"
    assert summary.windows > 0

    # Every bucket record went to the key of the one partition, and templates were saved.
    per_partition, per_key = checkpointed_counts(config)
    assert per_key == {"default": buckets}
    assert list(per_partition) == ["logs:0"]
    assert Path(source.state_path).exists()
    assert [number for number, _, _ in source.templates.templates()] == [1, 2, 3]
