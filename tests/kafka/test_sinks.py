"""The alerts and dead-letter topics with fake producers: delivery, resends and deduplication."""

from __future__ import annotations

import json

import pytest

from spikewatch.alerting import Alert
from spikewatch.config import KafkaConfig
from spikewatch.kafka import sinks as sinks_module
from spikewatch.kafka.sinks import (
    DeliveryError,
    KafkaAlertSink,
    KafkaDeadLetterSink,
    ReliableProducer,
)
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks import DeadLetter
from tests.kafka.fakes import producer_factory

KAFKA = KafkaConfig(backoff_initial_ms=1, backoff_max_ms=2, delivery_timeout_s=0.5)


def alert(status: str = "firing") -> Alert:
    return Alert(
        "a1b2", "pump-7", status, 10.0, None, 3.5, 1.0, ["flow"], 2, "spikformer+deep_svdd"
    )


def test_failed_sends_are_resent_with_a_new_producer(caplog: pytest.LogCaptureFixture) -> None:
    factory = producer_factory([2, 0])
    metrics = PipelineMetrics()
    producer = ReliableProducer(KAFKA, metrics=metrics, producer_factory=factory)
    for number in range(3):
        producer.send("alerts", key=b"k", value=str(number).encode(), headers=[])
    producer.flush()
    assert len(factory.built) == 2
    assert factory.built[0].closed
    assert [m["value"] for m in factory.built[0].sent] == [b"2"]
    assert sorted(m["value"] for m in factory.built[1].sent) == [b"0", b"1"]
    assert producer.resent == 2
    assert metrics.registry.get_sample_value("spikewatch_broker_connection_errors_total") == 1
    assert "resending them with a new producer" in caplog.text


def test_flush_gives_up_after_delivery_timeout() -> None:
    factory = producer_factory([10**6] * 10**4)
    producer = ReliableProducer(KAFKA, metrics=PipelineMetrics(), producer_factory=factory)
    producer.send("alerts", key=None, value=b"x", headers=[])
    with pytest.raises(DeliveryError, match="delivery_timeout_s"):
        producer.flush()


def test_alert_sink_keys_by_stream_key_and_dedupes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sinks_module,
        "read_delivered_alerts",
        lambda kafka, topic, consumer_factory: {("old", "firing")},
    )
    factory = producer_factory([])
    sink = KafkaAlertSink(
        KAFKA, topic="alerts", metrics=PipelineMetrics(), producer_factory=factory
    )
    assert sink.send(alert()) is True
    assert sink.send(alert()) is False
    assert sink.send(alert("resolved")) is True
    assert sink.send(Alert("old", "pump-1", "firing", 1.0, None, 1.0, 1.0, [], 2, "x")) is False
    sink.flush()
    sent = factory.built[0].sent
    assert [m["headers"]["status"] for m in sent] == [b"firing", b"resolved"]
    assert sent[0]["key"] == b"pump-7"
    assert sent[0]["headers"]["alert_id"] == b"a1b2"
    assert json.loads(sent[0]["value"])["alert_id"] == "a1b2"
    assert sink.duplicates == 2


def test_dead_letter_keeps_original_bytes_and_position() -> None:
    factory = producer_factory([])
    sink = KafkaDeadLetterSink(
        KAFKA, topic="dead", metrics=PipelineMetrics(), producer_factory=factory
    )
    position = {"topic": "readings", "partition": 3, "offset": 41}
    sink.send(
        DeadLetter("invalid_json", "not valid JSON", b'{"key": "pu', "kafka:readings", position)
    )
    sink.flush()
    (sent,) = factory.built[0].sent
    assert sent["value"] == b'{"key": "pu'
    assert sent["key"] == b"readings:3"
    assert sent["headers"]["reason"] == b"invalid_json"
    assert sent["headers"]["source_partition"] == b"3"
    assert sent["headers"]["source_offset"] == b"41"


def test_dead_letter_from_a_file_source_keeps_its_position() -> None:
    factory = producer_factory([])
    sink = KafkaDeadLetterSink(
        KAFKA, topic="dead", metrics=PipelineMetrics(), producer_factory=factory
    )
    sink.send(DeadLetter("missing_timestamp", "no timestamp", {"value": 1}, "data.csv", 12))
    sink.flush()
    (sent,) = factory.built[0].sent
    assert json.loads(sent["value"]) == {"value": 1}
    assert sent["headers"]["source_position"] == b"12"
