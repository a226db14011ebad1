"""Two workers share a 4-partition topic; one leaves and comes back; state moves with partitions."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest

from spikewatch.checkpoint import load_checkpoint
from spikewatch.config import Config
from spikewatch.kafka.state import group_directory, partition_entries
from tests.integration.broker import Process, TansuBroker
from tests.integration.kafka_helpers import (
    BackgroundProducer,
    checkpointed_counts,
    create_topic,
    keys_covering,
    read_topic,
    spike_records,
    start_cli_worker,
    wait_until,
    worker_sections,
    write_config,
)

pytestmark = pytest.mark.integration

KEYS = keys_covering(4, per_partition=3)


def _last_checkpoint(directory: Path, worker: Process) -> dict:
    """``worker``'s last checkpoint ({} before its first one)."""
    path = directory / f"{socket.gethostname()}-{worker.pid}.ckpt"
    try:
        return load_checkpoint(path)
    except Exception:  # noqa: BLE001 - missing or being replaced: read again at the next poll
        return {}


def _owned(directory: Path, worker: Process) -> set[str]:
    """Partitions that ``worker`` checkpointed last time as its own."""
    state = _last_checkpoint(directory, worker)
    entries = partition_entries(state) if state else {}
    newest = max((entry["checkpointed_at"] for entry in entries.values()), default=None)
    # Partitions it gave up keep the older time of their release.
    return {p for p, entry in entries.items() if entry["checkpointed_at"] == newest}


def _processed(directory: Path, worker: Process) -> int:
    """Records ``worker`` had processed at its last checkpoint."""
    state = _last_checkpoint(directory, worker)
    return state["totals"]["records"] if state else 0


def test_partitions_and_state_follow_workers(tmp_path: Path, kafka_broker: TansuBroker) -> None:
    address = kafka_broker.address
    create_topic(address, "readings", partitions=4)
    records = spike_records(KEYS, 600, spike_at=150)
    sections = worker_sections(tmp_path, address, topic="readings", group="pair")
    config_path = write_config(tmp_path, "pair", sections)
    config = Config().with_overrides(sections)
    directory = group_directory(config.checkpoint.path, "pair")

    producer = BackgroundProducer(address, "readings", records, interval_s=0.005)
    workers: list[Process] = []
    try:
        first = start_cli_worker(tmp_path, config_path, "first")
        second = start_cli_worker(tmp_path, config_path, "second")
        workers += [first, second]
        producer.start()
        wait_until(
            lambda: _owned(directory, first) and _owned(directory, second),
            timeout_s=90,
            what="both workers to own partitions",
        )
        wait_until(
            lambda: _processed(directory, second) >= 50,
            timeout_s=60,
            what="the second worker to process records",
        )
        left_behind = _owned(directory, second)

        second.stop()
        assert second.process.returncode == 0, second.log_tail()
        wait_until(
            lambda: len(_owned(directory, first)) == 4,
            timeout_s=60,
            what="the first worker to take all 4 partitions",
        )

        back = start_cli_worker(tmp_path, config_path, "back")
        workers.append(back)
        wait_until(
            lambda: _processed(directory, back) >= 50,
            timeout_s=90,
            what="the returning worker to process records",
        )
        taken_back = _owned(directory, back)
        producer.stop()
        producer.join(60)
        assert producer.error is None
        for worker in (first, back):
            assert worker.process.wait(timeout=120) == 0, worker.log_tail()
    finally:
        producer.stop()
        for worker in workers:
            worker.stop()

    sent = records[: producer.sent]
    # Every record was folded exactly once into the state that the checkpoints kept.
    per_partition, per_key = checkpointed_counts(config)
    on_topic = Counter(
        f"readings:{message.partition}" for message in read_topic(address, "readings")
    )
    assert per_partition == dict(on_topic)
    assert sum(per_partition.values()) == len(sent)
    assert per_key == Counter(record["key"] for record in sent)

    # Clean handoffs replay nothing: the workers' totals add up to the records produced.
    totals = {
        name: json.loads((tmp_path / f"{name}.summary.json").read_text())["records"]
        for name in ("first", "second", "back")
    }
    assert sum(totals.values()) == len(sent)
    # The partitions went from the second worker to the first and some came back.
    assert left_behind
    assert taken_back
    assert len(taken_back) < 4
