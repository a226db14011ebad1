"""kafka-python clients built from the ``[kafka]`` section, and broker reachability checks."""

from __future__ import annotations

import logging
import socket
import time

from kafka import KafkaProducer

from spikewatch.config import KafkaConfig, parse_host_port

logger = logging.getLogger(__name__)

#: Seconds one TCP probe of a bootstrap server may take.
PROBE_TIMEOUT_S = 1.0


def partition_id(topic: str, partition: int) -> str:
    """Name of a partition in checkpoints, logs and key state: ``"topic:3"``."""
    return f"{topic}:{partition}"


def split_partition_id(name: str) -> tuple[str, int]:
    """Split a :func:`partition_id`; a topic name may contain ``:``, the number follows the last."""
    topic, _, number = name.rpartition(":")
    return topic, int(number)


def consumer_options(kafka: KafkaConfig, *, worker_id: str) -> dict:
    """Keyword arguments of ``KafkaConsumer`` for a group member that commits by hand."""
    return {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "group_id": kafka.group_id,
        # The broker's member id starts with the client id, so group listings name the worker.
        "client_id": f"spikewatch-{worker_id}",
        # Offsets are committed only after a checkpoint covers them (Engine.checkpoint).
        "enable_auto_commit": False,
        "auto_offset_reset": kafka.auto_offset_reset,
        "max_poll_interval_ms": kafka.max_poll_interval_ms,
        "max_poll_records": kafka.max_poll_records,
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "request_timeout_ms": kafka.request_timeout_ms,
        "reconnect_backoff_ms": kafka.backoff_initial_ms,
        "reconnect_backoff_max_ms": kafka.backoff_max_ms,
        "retry_backoff_ms": kafka.backoff_initial_ms,
    }


def new_producer(kafka: KafkaConfig, **overrides) -> KafkaProducer:
    """Build a producer that waits for every in-sync replica (``acks="all"``)."""
    options = {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "acks": "all",
        "linger_ms": 5,
        "request_timeout_ms": kafka.request_timeout_ms,
        "reconnect_backoff_ms": kafka.backoff_initial_ms,
        "reconnect_backoff_max_ms": kafka.backoff_max_ms,
        "retry_backoff_ms": kafka.backoff_initial_ms,
    }
    options.update(overrides)
    return KafkaProducer(**options)


def broker_reachable(bootstrap_servers: list[str]) -> bool:
    """Return whether any bootstrap server accepts a TCP connection within PROBE_TIMEOUT_S."""
    for address in bootstrap_servers:
        host, port = parse_host_port(address, option="kafka.bootstrap_servers")
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                return True
        except OSError:
            continue
    return False


class Backoff:
    """Exponential wait between retries: ``initial_s``, doubled per failure, capped at ``max_s``."""

    def __init__(self, *, initial_s: float, max_s: float) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self.failing_since: float | None = None

    def next_delay_s(self) -> float:
        """Count one failure and return the seconds to wait before the next try."""
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        delay = min(self.initial_s * 2**self.failures, self.max_s)
        self.failures += 1
        return delay

    def reset(self) -> float:
        """Forget the failures; return how many seconds they lasted (0 when there were none)."""
        lasted = 0.0 if self.failing_since is None else time.monotonic() - self.failing_since
        self.failures = 0
        self.failing_since = None
        return lasted


class RepeatFilter(logging.Filter):
    """Let each distinct kafka-python message template through once per ``interval_s``.

    kafka-python logs every failed reconnect at ERROR; during a broker outage that is several
    lines a second. spikewatch logs the outage itself, with what happens next.
    """

    def __init__(self, *, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka"):
            return True
        marker = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self._last.get(marker, -self.interval_s) < self.interval_s:
            return False
        self._last[marker] = now
        return True


def quiet_client_logs() -> None:
    """Rate-limit kafka-python's repeated log lines; keep its INFO lines out unless at DEBUG.

    The filter goes on the handlers of the root logger, which the CLI configures.
    """
    root = logging.getLogger()
    client = logging.getLogger("kafka")
    if client.level == logging.NOTSET and root.getEffectiveLevel() > logging.DEBUG:
        client.setLevel(logging.WARNING)
    for handler in root.handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
