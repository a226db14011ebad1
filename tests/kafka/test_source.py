"""KafkaSource against a fake consumer: positions, commits, rebalances and the idle timeout."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError

from spikewatch.checkpoint import save_checkpoint
from spikewatch.config import Config
from spikewatch.kafka import source as source_module
from spikewatch.kafka.source import KafkaSource
from spikewatch.metrics import PipelineMetrics
from tests.kafka.fakes import FakeConsumer, message

TP0, TP1 = TopicPartition("readings", 0), TopicPartition("readings", 1)
RECORD = json.dumps({"key": "pump-7", "timestamp": 1.0, "values": {"flow": 3.2}}).encode()


class Listener:
    """Records the calls that the source makes on the engine."""

    def __init__(self, source: KafkaSource | None = None) -> None:
        self.source = source
        self.calls: list[tuple] = []

    def partitions_revoked(self, partitions: list[str]) -> None:
        self.calls.append(("revoked", partitions))
        # As the engine does: write the checkpoint, then let the source commit.
        position = self.source.checkpoint_position(None)
        state = {
            "source": {"name": self.source.name, "position": position},
            "written_at": time.time(),
            "keys": [],
        }
        save_checkpoint(self.source.checkpoint_path(""), state)
        self.source.commit(position)

    def partitions_assigned(self, saved: dict) -> None:
        self.calls.append(("assigned", {p: s is not None for p, s in saved.items()}))

    def forget_partitions(self, partitions: list[str]) -> None:
        self.calls.append(("forget", sorted(partitions)))


def make_source(
    tmp_path: Path, **kafka: object
) -> tuple[KafkaSource, FakeConsumer, Listener, PipelineMetrics]:
    consumers: list[FakeConsumer] = []

    def factory(**options: object) -> FakeConsumer:
        consumers.append(FakeConsumer(**options))
        return consumers[-1]

    config = Config().with_overrides(
        {
            "checkpoint": {"path": str(tmp_path / "run.ckpt")},
            "kafka": {
                "topics": ["readings"],
                "group_id": "g",
                "worker_id": "me",
                "poll_timeout_ms": 10,
                **kafka,
            },
        }
    )
    source = KafkaSource(config, consumer_factory=factory)
    listener, metrics = Listener(source), PipelineMetrics()
    source.bind(listener, metrics)
    source._open()
    return source, consumers[0], listener, metrics


def test_consumer_commits_by_hand(tmp_path: Path) -> None:
    _, consumer, _, _ = make_source(tmp_path, max_poll_interval_ms=10_000)
    assert consumer.options["enable_auto_commit"] is False
    assert consumer.options["group_id"] == "g"
    assert consumer.options["max_poll_interval_ms"] == 10_000


def test_items_carry_partition_offset_and_message_key(tmp_path: Path) -> None:
    source, consumer, _, _ = make_source(tmp_path)
    consumer.rebalance("assigned", {TP0})
    consumer.polls.append({TP0: [message("readings", 0, 7, RECORD, key=b"pump-\xff")]})
    items = iter(source)
    item = next(items)
    assert item.payload == RECORD
    assert item.position == {"topic": "readings", "partition": 0, "offset": 7}
    assert item.partition == "readings:0"
    assert item.key == "pump-\\xff"
    position = source.checkpoint_position(None)
    assert position["readings:0"]["offset"] == 8
    assert position["readings:0"]["records"] == 1


def test_record_keys_when_configured(tmp_path: Path) -> None:
    source, consumer, _, _ = make_source(tmp_path, key_from="record")
    consumer.rebalance("assigned", {TP0})
    consumer.polls.append({TP0: [message("readings", 0, 0, RECORD, key=b"other")]})
    assert next(iter(source)).key is None


def test_commit_failed_by_rebalance_is_counted_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, consumer, _, metrics = make_source(tmp_path)
    consumer.rebalance("assigned", {TP0})
    consumer.polls.append({TP0: [message("readings", 0, 0, RECORD)]})
    next(iter(source))
    consumer.commit_errors.append(CommitFailedError())
    source.commit(source.checkpoint_position(None))
    assert (
        metrics.registry.get_sample_value("spikewatch_kafka_commits_total", {"result": "failed"})
        == 1
    )
    assert metrics.registry.get_sample_value("spikewatch_broker_connection_errors_total") == 0
    assert "group is rebalancing" in caplog.text
    source.commit(source.checkpoint_position(None))
    assert consumer.commits == [{"readings:0": 1}]


def test_commit_timeout_counts_a_connection_error(tmp_path: Path) -> None:
    source, consumer, _, metrics = make_source(tmp_path)
    consumer.rebalance("assigned", {TP0})
    consumer.polls.append({TP0: [message("readings", 0, 0, RECORD)]})
    next(iter(source))
    consumer.commit_errors.append(KafkaTimeoutError())
    source.commit(source.checkpoint_position(None))
    assert metrics.registry.get_sample_value("spikewatch_broker_connection_errors_total") == 1


def test_revocation_checkpoints_then_commits_and_keeps_partition(tmp_path: Path) -> None:
    source, consumer, listener, metrics = make_source(tmp_path)
    consumer.rebalance("assigned", {TP0, TP1})
    consumer.polls.append(
        {TP0: [message("readings", 0, 4, RECORD)], TP1: [message("readings", 1, 9, RECORD)]}
    )
    items = iter(source)
    next(items), next(items)
    consumer.rebalance("revoked", {TP0, TP1})
    consumer.rebalance("assigned", {TP1})
    next(items)  # an idle poll, after the rebalance
    # The commit inside the revocation went through the awaited asynchronous commit.
    assert consumer.async_commits == [{"readings:0": 5, "readings:1": 10}]
    assert ("revoked", ["readings:0", "readings:1"]) in listener.calls
    assert (
        metrics.registry.get_sample_value("spikewatch_kafka_rebalances_total", {"event": "revoked"})
        == 2
    )
    assert metrics.registry.get_sample_value("spikewatch_kafka_assigned_partitions") == 1
    # The partition given up stays in the checkpoint, frozen, but is no longer committed.
    position = source.checkpoint_position(None)
    assert set(position) == {"readings:0", "readings:1"}
    assert position["readings:1"]["checkpointed_at"] > position["readings:0"]["checkpointed_at"]
    source.commit(position)
    assert consumer.commits[-1] == {"readings:1": 10}


def test_lost_partitions_are_not_committed(tmp_path: Path) -> None:
    source, consumer, listener, metrics = make_source(tmp_path)
    consumer.rebalance("assigned", {TP0})
    consumer.polls.append({TP0: [message("readings", 0, 0, RECORD)]})
    items = iter(source)
    next(items)
    consumer.rebalance("lost", {TP0})
    next(items)
    assert consumer.async_commits == []
    assert consumer.commits == []
    assert ("revoked", ["readings:0"]) in listener.calls
    assert (
        metrics.registry.get_sample_value("spikewatch_kafka_rebalances_total", {"event": "lost"})
        == 1
    )


def _worker_file(
    tmp_path: Path, worker: str, partitions: dict[str, dict], *, written_at: float
) -> None:
    directory = tmp_path / "run-g"
    save_checkpoint(
        directory / f"{worker}.ckpt",
        {
            "source": {"name": "kafka:readings", "position": partitions},
            "written_at": written_at,
            "keys": [],
        },
    )


def test_assignment_seeks_to_newest_checkpoint(tmp_path: Path) -> None:
    _worker_file(
        tmp_path,
        "old",
        {"readings:0": {"offset": 10, "records": 10, "checkpointed_at": 1.0}},
        written_at=1.0,
    )
    _worker_file(
        tmp_path,
        "new",
        {"readings:0": {"offset": 25, "records": 25, "checkpointed_at": 2.0}},
        written_at=2.0,
    )
    source, consumer, listener, _ = make_source(tmp_path)
    consumer.rebalance("assigned", {TP0, TP1})
    assert next(iter(source)) is None
    assert consumer.seeks == {TP0: 25}
    assert listener.calls == [("assigned", {"readings:0": True, "readings:1": False})]
    assert source.checkpoint_position(None)["readings:0"]["records"] == 25


def test_given_up_partition_is_forgotten_once_checkpointed_elsewhere(tmp_path: Path) -> None:
    source, consumer, listener, _ = make_source(tmp_path)
    consumer.rebalance("assigned", {TP0, TP1})
    consumer.polls.append({TP0: [message("readings", 0, 0, RECORD)]})
    items = iter(source)
    next(items)
    consumer.rebalance("revoked", {TP0, TP1})
    consumer.rebalance("assigned", {TP1})
    next(items)
    assert "readings:0" in source.checkpoint_position(None)
    # Another worker checkpoints readings:0 later; the next assignment drops this worker's copy.
    _worker_file(
        tmp_path,
        "other",
        {"readings:0": {"offset": 40, "records": 40, "checkpointed_at": 9e9}},
        written_at=9e9,
    )
    consumer.rebalance("revoked", {TP1})
    consumer.rebalance("assigned", {TP1})
    next(items)
    assert ("forget", ["readings:0"]) in listener.calls
    assert "readings:0" not in source.checkpoint_position(None)


def test_listener_error_is_raised_on_polling_thread(tmp_path: Path) -> None:
    source, consumer, listener, _ = make_source(tmp_path)

    def fail(saved: dict) -> None:
        raise RuntimeError("restore failed")

    listener.partitions_assigned = fail
    consumer.rebalance("assigned", {TP0})
    with pytest.raises(RuntimeError, match="restore failed"):
        next(iter(source))


def test_idle_timeout_ends_iteration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "broker_reachable", lambda servers: True)
    source, consumer, _, _ = make_source(tmp_path, idle_timeout_s=0.05)
    consumer.rebalance("assigned", {TP0})
    consumer.polls.append({TP0: [message("readings", 0, 0, RECORD)]})
    items = list(source)
    assert sum(item is not None for item in items) == 1
    assert source.end_reason.startswith("idle for 0.05 s")


def test_outage_does_not_count_as_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spikewatch")
    reachable = {"now": False}
    monkeypatch.setattr(source_module, "broker_reachable", lambda servers: reachable["now"])
    source, consumer, _, metrics = make_source(
        tmp_path, idle_timeout_s=0.05, backoff_initial_ms=1, backoff_max_ms=2
    )
    consumer.rebalance("assigned", {TP0})
    items = iter(source)
    for _ in range(20):
        assert next(items) is None
    assert "no Kafka broker reachable" in caplog.text
    assert metrics.registry.get_sample_value("spikewatch_broker_connection_errors_total") >= 1
    reachable["now"] = True
    assert all(item is None for item in items)
    assert "reachable again" in caplog.text
    assert source.end_reason.startswith("idle")
