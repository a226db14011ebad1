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
    read_topic,
    spike_records,
    start_cli_worker,
    wait_until,
    worker_sections,
    write_config,
)

pytestmark = pytest.mark.integration

KEYS = [f"sensor-{n:02d}" for n in range(12)]
PER_KEY = 200


def _owned(directory: Path, worker: Process) -> set[str]:
    """Partitions in ``worker``'s last checkpoint file (empty before its first checkpoint)."""
    path = directory / f"{socket.gethostname()}-{worker.pid}.ckpt"
    try:
        return set(partition_entries(load_checkpoint(path)))
    except Exception:  # noqa: BLE001 - missing or being replaced: read again at the next poll
        return set()


def test_partitions_and_state_follow_workers(tmp_path: Path, kafka_broker: TansuBroker) -> None:
    address = kafka_broker.address
    create_topic(address, "readings", partitions=4)
    records = spike_records(KEYS, PER_KEY, spike_at=150)
    sections = worker_sections(tmp_path, address, topic="readings", group="pair")
    config_path = write_config(tmp_path, "pair", sections)
    config = Config().with_overrides(sections)
    directory = group_directory(config.checkpoint.path, "pair")

    producer = BackgroundProducer(address, "readings", records, interval_s=0.01)
    workers: list[Process] = []
    try:
        first = start_cli_worker(tmp_path, config_path, "first")
        second = start_cli_worker(tmp_path, config_path, "second")
        workers += [first, second]
        producer.start()
        wait_until(lambda: _owned(directory, first) and _owned(directory, second), timeout_s=90, what="both workers to own partitions")
        left_behind = _owned(directory, second)

        second.stop()
        assert second.process.returncode == 0, second.log_tail()
        wait_until(lambda: len(_owned(directory, first)) == 4, timeout_s=60, what="the first worker to take all 4 partitions")

        back = start_cli_worker(tmp_path, config_path, "back")
        workers.append(back)
        wait_until(lambda: _owned(directory, back), timeout_s=90, what="the returning worker to own partitions")
        producer.join(60)
        assert producer.error is None
        for worker in (first, back):
            assert worker.process.wait(timeout=120) == 0, worker.log_tail()
    finally:
        for worker in workers:
            worker.stop()

    # Every record was folded exactly once into the state that the checkpoints kept.
    per_partition, per_key = checkpointed_counts(config)
    on_topic = Counter(f"readings:{message.partition}" for message in read_topic(address, "readings"))
    assert per_partition == dict(on_topic)
    assert sum(per_partition.values()) == len(records)
    assert per_key == Counter({key: PER_KEY for key in KEYS})

    # Clean handoffs replay nothing: the workers' totals add up to the records produced.
    totals = [json.loads((tmp_path / f"{name}.summary.json").read_text())["records"] for name in ("first", "second", "back")]
    assert sum(totals) == len(records)
    assert all(total > 0 for total in totals)
    assert left_behind and left_behind <= per_partition.keys()
