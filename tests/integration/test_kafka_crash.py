"""A worker killed with SIGKILL resumes from its checkpoint; its alerts equal an uninterrupted run's."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from spikewatch.checkpoint import load_checkpoint
from spikewatch.config import Config
from spikewatch.kafka.state import group_directory, partition_entries
from tests.integration.broker import TansuBroker
from tests.integration.kafka_helpers import (
    BackgroundProducer,
    alert_pairs,
    checkpointed_counts,
    create_topic,
    jsonl_alert_pairs,
    read_topic,
    spike_records,
    start_cli_worker,
    wait_until,
    worker_sections,
    write_config,
)

pytestmark = pytest.mark.integration

KEYS = ["pump-1", "pump-2", "pump-3"]
PER_KEY = 160


def _last_checkpoint(directory: Path) -> dict | None:
    """The newest worker checkpoint in ``directory``, or None."""
    states = []
    for path in directory.glob("*.ckpt"):
        try:
            states.append(load_checkpoint(path))
        except Exception:  # noqa: BLE001 - a file being replaced is read again at the next poll
            continue
    return max(states, key=lambda state: state["written_at"], default=None)


def _checkpointed_offset(directory: Path) -> int:
    state = _last_checkpoint(directory)
    return 0 if state is None else partition_entries(state)["readings:0"]["offset"]


def _alerts_after_checkpoint(directory: Path, address: str) -> bool:
    """Whether the alerts topic holds alerts that the last checkpoint does not cover yet."""
    state = _last_checkpoint(directory)
    if state is None:
        return False
    covered = state["totals"]["alerts_firing"] + state["totals"]["alerts_resolved"]
    return len(read_topic(address, "alerts-crashed")) > covered


def test_killed_worker_resumes_without_loss_or_duplicates(
    tmp_path: Path, kafka_broker: TansuBroker
) -> None:
    address = kafka_broker.address
    # One partition, so the uninterrupted run sees the records in the same order.
    create_topic(address, "readings", partitions=1)
    records = spike_records(KEYS, PER_KEY, spike_at=110)
    crashed = worker_sections(
        tmp_path,
        address,
        topic="readings",
        group="crashed",
        kafka={"alerts_topic": "alerts-crashed"},
    )
    crashed["checkpoint"]["interval_s"] = 3.0
    crashed_path = write_config(tmp_path, "crashed", crashed)
    config = Config().with_overrides(crashed)
    directory = group_directory(config.checkpoint.path, "crashed")

    first = start_cli_worker(tmp_path, crashed_path, "first")
    producer = None
    try:
        wait_until(
            lambda: "assigned; resuming" in first.log_path.read_text(),
            timeout_s=60,
            what="the first worker to join",
        )
        producer = BackgroundProducer(address, "readings", records, interval_s=0.02)
        producer.start()
        # Kill once alerts were delivered that the last checkpoint does not cover: the restarted
        # worker replays their windows, and the sinks must drop them.
        wait_until(
            lambda: _alerts_after_checkpoint(directory, address),
            timeout_s=90,
            what="an alert delivered after the last checkpoint",
            interval_s=0.1,
        )
        first.kill()
    finally:
        first.stop()
    killed_at = _checkpointed_offset(directory)
    # These alerts came from windows after the checkpoint: the restarted worker raises them again.
    delivered_before_crash = alert_pairs(read_topic(address, "alerts-crashed"))
    assert killed_at < len(records)

    second = start_cli_worker(tmp_path, crashed_path, "second")
    try:
        producer.join(60)
        assert producer.error is None
        reference = worker_sections(
            tmp_path,
            address,
            topic="readings",
            group="reference",
            kafka={"alerts_topic": "alerts-reference"},
            checkpoint={"path": str(tmp_path / "reference" / "run.ckpt")},
        )
        uninterrupted = start_cli_worker(
            tmp_path, write_config(tmp_path, "reference", reference), "reference"
        )
        try:
            assert uninterrupted.process.wait(timeout=120) == 0, uninterrupted.log_tail()
        finally:
            uninterrupted.stop()
        assert second.process.wait(timeout=120) == 0, second.log_tail()
    finally:
        second.stop()

    # The restarted worker started at the offset of the killed worker's last checkpoint.
    log = second.log_path.read_text()
    assert re.search(r"resuming from checkpointed offsets \{'readings:0': (\d+)\}", log).group(
        1
    ) == str(killed_at)
    resumed = json.loads((tmp_path / "second.summary.json").read_text())
    assert resumed["records"] == len(records) - killed_at

    # No record lost or counted twice in the state that survived.
    per_partition, per_key = checkpointed_counts(config)
    assert per_partition == {"readings:0": len(records)}
    assert per_key == Counter({key: PER_KEY for key in KEYS})

    # Alerts equal those of the uninterrupted run, with no duplicates on the alerts topic.
    expected = jsonl_alert_pairs(Path(reference["alerts"]["path"]))
    assert expected, "the uninterrupted run raised no alert, so the comparison proves nothing"
    assert sorted(jsonl_alert_pairs(Path(crashed["alerts"]["path"]))) == sorted(expected)
    on_topic = alert_pairs(read_topic(address, "alerts-crashed"))
    assert sorted(on_topic) == sorted(expected)
    assert delivered_before_crash
    assert set(delivered_before_crash) <= set(on_topic)
    assert sorted(alert_pairs(read_topic(address, "alerts-reference"))) == sorted(expected)
