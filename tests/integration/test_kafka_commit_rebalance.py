"""A second worker joins between a worker's poll and its commit: the commit fails, nothing breaks."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.structs import MemberState

from spikewatch.config import Config
from tests.integration.broker import TansuBroker
from tests.integration.kafka_helpers import (
    BackgroundProducer,
    EngineWorker,
    alert_pairs,
    checkpointed_counts,
    create_topic,
    jsonl_alert_pairs,
    produce,
    read_topic,
    spike_records,
    wait_until,
    worker_sections,
)

pytestmark = pytest.mark.integration

WARM_RECORDS = 120
TRICKLE_RECORDS = 20
GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10_000}


class GroupLeader(threading.Thread):
    """A plain member that joins the group first, so that it leads every rebalance.

    tansu 0.6.0 did not let a new member complete its join while the group's leader stalled,
    until the leader was evicted, and then left the group without a leader for minutes. With this
    member as leader, the worker that the test stalls is never the leader. Its client id sorts
    after the workers', and the range assignor hands the one partition to the member id that
    sorts first, so it consumes only while no worker is in the group; it never commits.
    """

    def __init__(self, address: str, topic: str, group: str) -> None:
        super().__init__(name="group-leader", daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=address, group_id=group, client_id="zz-leader", enable_auto_commit=False, **GROUP_TIMEOUTS
        )
        self.consumer.subscribe([topic])
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.consumer.poll(timeout_ms=200)
        self.consumer.close(autocommit=False)


def test_commit_during_join_is_survived(
    tmp_path: Path, kafka_broker: TansuBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spikewatch")
    address = kafka_broker.address
    create_topic(address, "trickle", partitions=1)
    records = spike_records(["pump-1"], WARM_RECORDS + TRICKLE_RECORDS, spike_at=WARM_RECORDS + 8)
    produce(address, "trickle", records[:WARM_RECORDS])

    def config(name: str) -> Config:
        return Config().with_overrides(
            worker_sections(
                tmp_path,
                address,
                topic="trickle",
                group="trickle",
                # Both workers live in this process, so HOSTNAME-PID would not tell them apart.
                kafka={"alerts_topic": "trickle-alerts", "worker_id": name},
                alerts={"path": str(tmp_path / f"{name}-alerts.jsonl")},
            )
        )

    leader = GroupLeader(address, "trickle", "trickle")
    first, second = EngineWorker(config("first"), "first"), EngineWorker(config("second"), "second")
    real_commit = first.source.commit
    second.started = False

    def commit_while_second_joins(position: dict) -> None:
        # The first commit after the warm-up records were polled starts the second worker and
        # waits until the group has formed a new generation with it. The first worker, which
        # does not poll meanwhile, then commits from the generation before.
        if not second.started and first.engine.summary.records >= WARM_RECORDS:
            second.started = True
            before = first.source._consumer.group_metadata().generation_id
            second.start()
            wait_until(
                lambda: second.source._consumer is not None
                and second.source._consumer.group_metadata().state == MemberState.STABLE
                and second.source._consumer.group_metadata().generation_id > before,
                timeout_s=60,
                what="the second worker to join a new generation of the group",
            )
        real_commit(position)

    first.source.commit = commit_while_second_joins
    # One record a second, so records arrive before, during and after the rebalances.
    producer = BackgroundProducer(address, "trickle", records[WARM_RECORDS:], interval_s=1.0)
    leader.start()
    try:
        wait_until(lambda: leader.consumer.assignment(), timeout_s=60, what="the group leader to join")
        first.start()
        wait_until(lambda: first.engine.summary.records > 0, timeout_s=60, what="the first worker to poll records")
        producer.start()
        producer.join(120)
        assert producer.error is None
        summaries = [first.finish(timeout_s=120), second.finish(timeout_s=120)]
    finally:
        producer.stop()
        for worker in (first, second):
            worker.engine.request_stop("test ended")
            if worker.is_alive():
                worker.join(30)
        leader.stopped.set()
        leader.join(30)

    # The commit failed because of the rebalance, was counted, and the worker carried on.
    assert first.sample("spikewatch_kafka_commits_total", result="failed") >= 1
    assert "offset commit failed because the group is rebalancing" in caplog.text
    assert "CommitFailedError" in caplog.text
    assert first.sample("spikewatch_kafka_commits_total", result="ok") >= 1

    # No record lost: each was folded once into the partition's state, and processed once.
    per_partition, per_key = checkpointed_counts(first.config)
    assert per_partition == {"trickle:0": len(records)}
    assert per_key == Counter({"pump-1": len(records)})
    assert sum(summary.records for summary in summaries) == len(records)

    # No alert twice, on the topic or across the two workers' files.
    on_topic = alert_pairs(read_topic(address, "trickle-alerts"))
    in_files = jsonl_alert_pairs(tmp_path / "first-alerts.jsonl") + jsonl_alert_pairs(
        tmp_path / "second-alerts.jsonl"
    )
    assert on_topic, "no alert was raised, so the duplicate check proves nothing"
    assert len(set(on_topic)) == len(on_topic)
    assert sorted(in_files) == sorted(on_topic)
