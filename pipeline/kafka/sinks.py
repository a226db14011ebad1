"""Kafka sinks: an alerts topic and a dead-letter topic.

Both keep every message until the broker acknowledges it. The engine calls ``flush`` before
each checkpoint, and it returns only when every message so far is acknowledged, so a checkpoint
never covers an alert or dead letter that was not delivered. After a failure, messages are sent
again through a new producer, because a producer whose broker lost its state never recovers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from spikewatch.alerting import Alert
from spikewatch.config import KafkaConfig
from spikewatch.errors import SpikewatchError
from spikewatch.kafka.client import Backoff, new_producer
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks import AlertSink, DeadLetter, DeadLetterSink

logger = logging.getLogger(__name__)

#: Newest messages per partition of the alerts topic read back to learn which alerts were
#: already delivered. A replay after a crash repeats at most the alerts since the last checkpoint,
#: which are among the newest messages of their key's partition.
DEDUPE_LOOKBACK_RECORDS = 10_000


class DeliveryError(SpikewatchError):
    """Messages to a Kafka topic stayed unacknowledged for ``kafka.delivery_timeout_s``."""


class ReliableProducer:
    """Send messages and, on :meth:`flush`, wait until each one is acknowledged.

    A message whose send fails is sent again through a new producer, after a backoff, until
    ``delivery_timeout_s`` has passed since the flush began.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        metrics: PipelineMetrics,
        producer_factory: Callable[..., Any] = new_producer,
    ) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self._producer_factory = producer_factory
        self._producer: Any = None
        # [topic, key, value, headers, future]; the future is None when the send itself failed.
        self._unacknowledged: list[list[Any]] = []
        self.resent = 0

    def _open(self) -> Any:
        if self._producer is None:
            timeout_ms = self.kafka.request_timeout_ms
            try:
                self._producer = self._producer_factory(
                    self.kafka,
                    max_block_ms=timeout_ms,
                    delivery_timeout_ms=timeout_ms + 1000,
                )
            except KafkaError as error:
                self.metrics.broker_connection_errors.inc()
                logger.warning(
                    "cannot create a Kafka producer (%s); messages wait for the next flush", error
                )
        return self._producer

    def _send(self, message: list[Any]) -> None:
        producer = self._open()
        message[4] = None
        if producer is None:
            return
        topic, key, value, headers, _ = message
        try:
            message[4] = producer.send(topic, value=value, key=key, headers=headers)
        except KafkaError as error:
            logger.debug("send to %s failed: %s", topic, error)

    def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        message = [topic, key, value, headers, None]
        self._unacknowledged.append(message)
        self._send(message)
        if len(self._unacknowledged) > 1000:
            self._unacknowledged = [
                m for m in self._unacknowledged if not (m[4] is not None and m[4].succeeded())
            ]

    def _settle(self) -> list[list[Any]]:
        """Wait for the producer; return the messages that are not acknowledged."""
        if self._producer is not None:
            try:
                self._producer.flush(timeout=self.kafka.request_timeout_ms / 1000)
            except KafkaError:
                pass
        return [m for m in self._unacknowledged if m[4] is None or not m[4].succeeded()]

    def flush(self) -> None:
        """Return once every message is acknowledged; raise DeliveryError after the timeout."""
        deadline = time.monotonic() + self.kafka.delivery_timeout_s
        backoff = Backoff(
            initial_s=self.kafka.backoff_initial_ms / 1000, max_s=self.kafka.backoff_max_ms / 1000
        )
        while True:
            failed = self._settle()
            if not failed:
                self._unacknowledged.clear()
                if backoff.failures:
                    logger.info("all messages acknowledged after %d retries", backoff.failures)
                return
            errors = {
                type(m[4].exception).__name__ for m in failed if m[4] is not None and m[4].failed()
            }
            topics = sorted({m[0] for m in failed})
            if time.monotonic() >= deadline:
                raise DeliveryError(
                    f"{len(failed)} messages to {topics} were not acknowledged within "
                    f"kafka.delivery_timeout_s = {self.kafka.delivery_timeout_s:g} s "
                    f"({', '.join(sorted(errors)) or 'no answer'}); no checkpoint was written, "
                    "so a restart processes their records again"
                )
            self.metrics.broker_connection_errors.inc()
            delay = backoff.next_delay_s()
            logger.warning(
                "%d messages to %s not acknowledged (%s); resending them with a new producer in "
                "%g s; the checkpoint waits for them",
                len(failed),
                topics,
                ", ".join(sorted(errors)) or "no answer",
                delay,
            )
            time.sleep(delay)
            self._discard_producer()
            for message in failed:
                self._send(message)
                self.resent += 1

    def _discard_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=0)
            except Exception as error:  # noqa: BLE001 - the producer is thrown away either way
                logger.debug("closing a failed producer raised %s", error)
            self._producer = None

    def close(self) -> None:
        self.flush()
        if self._producer is not None:
            self._producer.close(timeout=self.kafka.request_timeout_ms / 1000)
            self._producer = None


class KafkaAlertSink(AlertSink):
    """Produce each alert state change to ``topic``, keyed by stream key.

    The value is the alert's JSON (with ``alert_id``); the headers ``alert_id`` and ``status``
    repeat it for consumers that filter without parsing. The (alert_id, status) pairs already on
    the topic are read back at start and whenever partitions are assigned, so an alert replayed
    after a crash or a rebalance is not produced twice.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        topic: str,
        metrics: PipelineMetrics,
        producer_factory: Callable[..., Any] = new_producer,
        consumer_factory: Callable[..., Any] = KafkaConsumer,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.producer = ReliableProducer(kafka, metrics=metrics, producer_factory=producer_factory)
        self._consumer_factory = consumer_factory
        self.delivered: set[tuple[str, str]] = set()
        self.written = 0
        self.duplicates = 0
        self.reload_delivered()

    def reload_delivered(self) -> None:
        """Add the (alert_id, status) pairs of the topic's newest messages to ``delivered``."""
        try:
            found = read_delivered_alerts(
                self.kafka, self.topic, consumer_factory=self._consumer_factory
            )
        except KafkaError as error:
            logger.warning(
                "cannot read alerts topic %s back (%s); alerts replayed before it is readable "
                "may be produced twice",
                self.topic,
                error,
            )
            return
        self.delivered |= found
        logger.info("alerts topic %s contains %d alert state changes", self.topic, len(found))

    def send(self, alert: Alert) -> bool:
        marker = (alert.alert_id, alert.status)
        if marker in self.delivered:
            self.duplicates += 1
            return False
        self.delivered.add(marker)
        self.producer.send(
            self.topic,
            key=alert.key.encode(),
            value=json.dumps(alert.to_json()).encode(),
            headers=[("alert_id", alert.alert_id.encode()), ("status", alert.status.encode())],
        )
        self.written += 1
        return True

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


def read_delivered_alerts(
    kafka: KafkaConfig, topic: str, *, consumer_factory: Callable[..., Any] = KafkaConsumer
) -> set[tuple[str, str]]:
    """(alert_id, status) of the newest DEDUPE_LOOKBACK_RECORDS messages of each partition."""
    consumer = consumer_factory(
        bootstrap_servers=list(kafka.bootstrap_servers),
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=kafka.request_timeout_ms,
    )
    found: set[tuple[str, str]] = set()
    try:
        numbers = consumer.partitions_for_topic(topic) or set()
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        if not partitions:
            return found
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(starts[tp], ends[tp] - DEDUPE_LOOKBACK_RECORDS))
        deadline = time.monotonic() + kafka.request_timeout_ms / 1000
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                logger.warning(
                    "reading alerts topic %s back timed out; it may be read only in part", topic
                )
                break
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    headers = {
                        name: value.decode("utf-8", "replace")
                        for name, value in record.headers or []
                    }
                    if "alert_id" in headers and "status" in headers:
                        found.add((headers["alert_id"], headers["status"]))
    finally:
        consumer.close(autocommit=False)
    return found


class KafkaDeadLetterSink(DeadLetterSink):
    """Produce rejected records to ``topic`` with their original bytes as the value.

    Headers: ``reason``, ``detail``, ``source`` (the source name), and for Kafka records
    ``source_topic``, ``source_partition`` and ``source_offset``. Messages are keyed by the
    source partition, so the dead letters of one partition stay in order. Delivery is at least
    once: records replayed after a crash are dead-lettered again.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        topic: str,
        metrics: PipelineMetrics,
        producer_factory: Callable[..., Any] = new_producer,
    ) -> None:
        self.topic = topic
        self.producer = ReliableProducer(kafka, metrics=metrics, producer_factory=producer_factory)
        self.written = 0

    def send(self, letter: DeadLetter) -> None:
        payload = letter.payload
        if isinstance(payload, (bytes, bytearray)):
            value = bytes(payload)
        elif isinstance(payload, str):
            value = payload.encode()
        else:
            value = json.dumps(payload, default=str).encode()
        headers = [
            ("reason", letter.reason.encode()),
            ("detail", letter.detail.encode()),
            ("source", letter.source.encode()),
        ]
        key = None
        position = letter.position
        if isinstance(position, dict) and {"topic", "partition", "offset"} <= position.keys():
            headers += [
                ("source_topic", str(position["topic"]).encode()),
                ("source_partition", str(position["partition"]).encode()),
                ("source_offset", str(position["offset"]).encode()),
            ]
            key = f"{position['topic']}:{position['partition']}".encode()
        else:
            headers.append(("source_position", json.dumps(position, default=str).encode()))
        self.producer.send(self.topic, key=key, value=value, headers=headers)
        self.written += 1

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()
