"""Records, topics, workers and checkpoints for the Kafka integration tests."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from spikewatch.config import Config
from spikewatch.engine import Engine
from spikewatch.kafka import build_kafka_sinks
from spikewatch.kafka.source import KafkaSource
from spikewatch.kafka.state import GroupCheckpoints, group_directory, partition_entries
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink
from spikewatch.summary import RunSummary

from tests.integration.broker import Process, config_toml

T = TypeVar("T")
START = 1_700_000_000.0


def wait_until(
    check: Callable[[], T], *, timeout_s: float, what: str, interval_s: float = 0.2
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def spike_records(
    keys: list[str], per_key: int, *, spike_at: int, spike_length: int = 6, step_s: float = 60.0
) -> list[dict]:
    """Sine streams of ``keys`` in the shared schema, interleaved, with one burst per key.

    Each key's records ``spike_at`` to ``spike_at + spike_length`` jump far above the sine, so a
    warm model alerts on them. The values are deterministic.
    """
    records = []
    for index in range(per_key):
        for number, key in enumerate(keys):
            value = math.sin(index / 5.0 + number) + 0.1 * math.sin(index * 1.7 + 3 * number)
            if spike_at <= index < spike_at + spike_length:
                value += 8.0
            records.append(
                {
                    "key": key,
                    "timestamp": START + index * step_s,
                    "values": {"value": round(value, 6)},
                }
            )
    return records


def keys_covering(partitions: int, *, per_partition: int, prefix: str = "sensor") -> list[str]:
    """Stream keys that the default partitioner (murmur2) spreads evenly over ``partitions``."""
    from kafka.partitioner.default import murmur2

    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    number = 0
    while any(len(keys) < per_partition for keys in chosen.values()):
        key = f"{prefix}-{number:03d}"
        bucket = chosen[(murmur2(key.encode()) & 0x7FFFFFFF) % partitions]
        if len(bucket) < per_partition:
            bucket.append(key)
        number += 1
    return sorted(key for keys in chosen.values() for key in keys)


def create_topic(address: str, topic: str, *, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=address)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def produce(address: str, topic: str, records: list[dict]) -> None:
    """Send ``records`` keyed by their stream key and wait for the acks."""
    producer = KafkaProducer(bootstrap_servers=address, acks="all")
    try:
        for record in records:
            producer.send(topic, key=record["key"].encode(), value=json.dumps(record).encode())
        producer.flush()
    finally:
        producer.close()


class BackgroundProducer(threading.Thread):
    """Produce ``records`` ``interval_s`` apart from a thread, until all are sent or ``stop``.

    ``sent`` counts the records sent so far; after ``join`` every one of them is acknowledged.
    """

    def __init__(self, address: str, topic: str, records: list[dict], *, interval_s: float) -> None:
        super().__init__(name="test-producer", daemon=True)
        self.address = address
        self.topic = topic
        self.records = records
        self.interval_s = interval_s
        self.sent = 0
        self.error: BaseException | None = None
        self._stop_requested = threading.Event()

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.address, acks="all")
            try:
                for record in self.records:
                    if self._stop_requested.is_set():
                        break
                    producer.send(
                        self.topic, key=record["key"].encode(), value=json.dumps(record).encode()
                    )
                    self.sent += 1
                    time.sleep(self.interval_s)
                producer.flush()
            finally:
                producer.close()
        except BaseException as error:  # noqa: BLE001 - the test asserts on .error
            self.error = error


def read_topic(address: str, topic: str, *, timeout_s: float = 20.0) -> list[Any]:
    """Every message of ``topic``, from the first offset to the end offsets as of now."""
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False)
    try:
        numbers = wait_until(
            lambda: consumer.partitions_for_topic(topic), timeout_s=timeout_s, what=f"topic {topic}"
        )
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        messages = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"reading {topic} timed out"
            for batch in consumer.poll(timeout_ms=200).values():
                messages.extend(batch)
        return messages
    finally:
        consumer.close(autocommit=False)


def alert_pairs(messages: list[Any]) -> list[tuple[str, str]]:
    """(alert_id, status) of each message of an alerts topic, from its headers."""
    pairs = []
    for message in messages:
        headers = {name: value.decode() for name, value in message.headers}
        pairs.append((headers["alert_id"], headers["status"]))
    return pairs


def jsonl_alert_pairs(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [(a["alert_id"], a["status"]) for a in map(json.loads, path.read_text().splitlines())]


def worker_sections(
    tmp_path: Path, address: str, *, topic: str, group: str, **overrides: dict
) -> dict[str, dict]:
    """A configuration sized for tests: small windows and encoder, a warm-up of 16 windows."""
    sections: dict[str, dict] = {
        "source": {"kind": "kafka"},
        "windows": {"length": 8, "stride": 4},
        "encoder": {"embed_dim": 8, "patch_size": 2, "num_heads": 2},
        "detector": {"rep_dim": 4, "hidden_dim": 16},
        "learning": {
            "warmup_windows": 16,
            "warmup_epochs": 3,
            "batch_size": 8,
            "update_every_windows": 8,
        },
        "threshold": {"history": 64, "min_history": 4, "quantile": 0.9},
        "alerts": {
            "path": str(tmp_path / f"{group}-alerts.jsonl"),
            "open_after": 1,
            "resolve_after": 2,
        },
        "dead_letter": {"path": str(tmp_path / f"{group}-dead-letters.jsonl")},
        "checkpoint": {"path": str(tmp_path / "checkpoints" / "run.ckpt"), "interval_s": 1.0},
        "metrics": {"enabled": False},
        # One window per batch: scores then do not depend on how records were batched.
        "runtime": {"progress": False, "max_batch_windows": 1},
        "kafka": {
            "bootstrap_servers": [address],
            "topics": [topic],
            "group_id": group,
            "max_poll_interval_ms": 10_000,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "poll_timeout_ms": 200,
            "request_timeout_ms": 10_000,
            "backoff_initial_ms": 200,
            "backoff_max_ms": 2000,
            "idle_timeout_s": 4.0,
        },
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return sections


def group_states(config: Config) -> dict[str, dict]:
    """The newest checkpoint of every partition that any worker of the group checkpointed."""
    store = GroupCheckpoints(
        group_directory(config.checkpoint.path, config.kafka.group_id), worker_id="reader"
    )
    partitions = set()
    for path in store.directory.glob("*.ckpt"):
        from spikewatch.checkpoint import load_checkpoint

        partitions |= partition_entries(load_checkpoint(path)).keys()
    return {p: s for p, s in store.newest(sorted(partitions)).items() if s is not None}


def checkpointed_counts(config: Config) -> tuple[dict[str, int], Counter]:
    """Records folded into each partition's newest state, and into each key's."""
    per_partition, per_key = {}, Counter()
    for partition, state in group_states(config).items():
        per_partition[partition] = partition_entries(state)[partition]["records"]
        for key in state["keys"]:
            if key["partition"] == partition:
                per_key[key["key"]] += key["records"]
    return per_partition, per_key


class EngineWorker(threading.Thread):
    """One in-process worker: an Engine over a KafkaSource, run in a thread."""

    def __init__(self, config: Config, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.config = config
        self.metrics = PipelineMetrics()
        self.source = KafkaSource(config)
        alert_sinks, dead_letter_sink = build_kafka_sinks(
            config,
            self.source,
            self.metrics,
            alert_sinks=[JsonlAlertSink(config.alerts.path)],
            dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
        )
        self.engine = Engine(
            config,
            self.source,
            alert_sinks=alert_sinks,
            dead_letter_sink=dead_letter_sink,
            metrics=self.metrics,
        )
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.summary = self.engine.run()
        except BaseException as error:  # noqa: BLE001 - the test asserts on it
            self.error = error

    def finish(self, timeout_s: float) -> RunSummary:
        self.join(timeout_s)
        assert not self.is_alive(), f"{self.name} did not stop within {timeout_s:g} s"
        assert self.error is None, f"{self.name} failed: {self.error!r}"
        return self.summary

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def start_cli_worker(directory: Path, config_path: Path, name: str) -> Process:
    """``spikewatch run`` as a child process with its summary in ``<name>.summary.json``."""
    command = [
        sys.executable,
        "-m",
        "spikewatch.cli",
        "run",
        "--config",
        str(config_path),
        "--summary-json",
        str(directory / f"{name}.summary.json"),
        "--log-level",
        "INFO",
    ]
    worker = Process(name, command, env=None, log_path=directory / f"{name}.log")
    worker.start()
    return worker


def write_config(directory: Path, name: str, sections: dict[str, dict]) -> Path:
    return config_toml(directory / f"{name}.toml", sections)
