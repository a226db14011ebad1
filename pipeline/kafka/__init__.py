"""Kafka: consume live streams in a consumer group, with key state that follows partitions.

Each worker is one member of the consumer group ``kafka.group_id``. The key state (window,
scaler, membranes, threshold, alert state) of a stream key belongs to the partition that carries
the key, and moves with it. Processing is at least once, and no alert is delivered twice:

1. Every ``checkpoint.interval_s`` a worker scores the windows that are pending and flushes
   the alert and dead-letter sinks until the broker has acknowledged them. It then writes its
   checkpoint file (model, keys, and per partition the next offset), and only then commits
   those offsets to the group.
2. When the group revokes partitions (a worker joins or leaves), the worker runs step 1 at once
   and then releases the revoked partitions' keys. A partition lost because the worker's
   membership went out of date (an eviction, or a generation the group has moved past) is
   checkpointed but not committed.
3. When the group assigns partitions, the worker takes each partition's keys and next offset
   from the newest copy in the group's checkpoint directory, and seeks there. A partition that
   no checkpoint contains starts with empty keys at the group's committed offset.
4. A worker that crashes leaves its last checkpoint behind. Its partitions' next owner restores
   that checkpoint and processes the records after it again. Windows replayed in their first
   order get the same alert ids, and the alert sinks drop ids they have already delivered.
5. A commit that fails because the group rebalanced (kafka-python's ``CommitFailedError``), or
   because no broker answered, is logged and counted. The worker carries on, and rejoins the
   group at its next poll.

Records that cannot be decoded or validated go to ``kafka.dead_letter_topic`` (or the JSON-lines
dead-letter file) and their offsets move on with the rest.

NOTE: a worker that owns several partitions may interleave them differently when it replays
them, so the shared model's online updates see another order and a replayed window can score
slightly differently, and alert under another id. Replays of a single partition are exact.
"""

from __future__ import annotations

from spikewatch.config import Config
from spikewatch.kafka.client import quiet_client_logs
from spikewatch.kafka.sinks import KafkaAlertSink, KafkaDeadLetterSink
from spikewatch.kafka.source import KafkaSource
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks import AlertSink, DeadLetterSink

__all__ = [
    "KafkaAlertSink",
    "KafkaDeadLetterSink",
    "KafkaSource",
    "build_kafka_sinks",
    "build_kafka_source",
]


def build_kafka_source(config: Config) -> KafkaSource:
    """Build the source of ``source.kind = "kafka"``; it joins the group at its first poll."""
    quiet_client_logs()
    return KafkaSource(config)


def build_kafka_sinks(
    config: Config,
    source: object,
    metrics: PipelineMetrics,
    *,
    alert_sinks: list[AlertSink],
    dead_letter_sink: DeadLetterSink,
) -> tuple[list[AlertSink], DeadLetterSink]:
    """Add the alerts topic to ``alert_sinks`` and replace the dead-letter sink by the topic.

    Each is changed only when its topic is configured. The alerts topic is read back whenever
    ``source`` (a :class:`KafkaSource`) gets partitions, so alerts replayed after a rebalance
    are recognised as delivered.
    """
    kafka = config.kafka
    if kafka.alerts_topic:
        sink = KafkaAlertSink(kafka, topic=kafka.alerts_topic, metrics=metrics)
        alert_sinks = [*alert_sinks, sink]
        if isinstance(source, KafkaSource):
            source.on_assigned.append(sink.reload_delivered)
    if kafka.dead_letter_topic:
        dead_letter_sink.close()
        dead_letter_sink = KafkaDeadLetterSink(
            kafka, topic=kafka.dead_letter_topic, metrics=metrics
        )
    return alert_sinks, dead_letter_sink
