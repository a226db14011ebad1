"""The broker is killed and started again during a run; the worker waits, keeps its state, resumes.

The broker keeps its topics, records and committed offsets in moto's S3 server, so it comes back
with everything it had acknowledged. tansu's memory storage would come back empty: the worker
would keep its key state but find its topic, offsets and group gone.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from spikewatch.config import Config
from tests.integration.broker import TansuBroker
from tests.integration.kafka_helpers import (
    checkpointed_counts,
    create_topic,
    keys_covering,
    produce,
    read_topic,
    spike_records,
    start_cli_worker,
    wait_until,
    worker_sections,
    write_config,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 8.0


def test_worker_survives_broker_restart(tmp_path: Path, durable_kafka_broker: TansuBroker) -> None:
    broker = durable_kafka_broker
    address = broker.address
    create_topic(address, "readings", partitions=2)
    keys = keys_covering(2, per_partition=2)
    records = spike_records(keys, 120, spike_at=90)
    before, after = records[: len(records) // 2], records[len(records) // 2 :]
    sections = worker_sections(
        tmp_path, address, topic="readings", group="restart", kafka={"alerts_topic": "alerts"}
    )
    config = Config().with_overrides(sections)

    worker = start_cli_worker(tmp_path, write_config(tmp_path, "restart", sections), "worker")
    try:
        produce(address, "readings", before)
        wait_until(
            lambda: sum(checkpointed_counts(config)[0].values()) == len(before),
            timeout_s=90,
            what="the worker to checkpoint the records sent before the outage",
        )
        broker.kill()
        wait_until(
            lambda: "no Kafka broker reachable" in worker.log_path.read_text(),
            timeout_s=30,
            what="the worker to notice the outage",
        )
        # Longer than the idle timeout: an outage must not end the run.
        time.sleep(OUTAGE_S)
        assert worker.process.poll() is None, (
            "the worker stopped during the outage:\n" + worker.log_tail()
        )
        broker.start()
        produce(address, "readings", after)
        assert worker.process.wait(timeout=120) == 0, worker.log_tail()
    finally:
        worker.stop()

    log = worker.log_path.read_text()
    assert "Kafka broker reachable again" in log
    summary = json.loads((tmp_path / "worker.summary.json").read_text())
    assert summary["stopped_by"].startswith("idle")

    # The broker kept every acknowledged record, and each was folded once into the key state.
    on_topic = read_topic(address, "readings")
    assert len(on_topic) == len(records)
    per_partition, per_key = checkpointed_counts(config)
    assert per_partition == dict(Counter(f"readings:{message.partition}" for message in on_topic))
    assert per_key == Counter(record["key"] for record in records)
    assert summary["records"] >= len(records)
