"""Stand-ins for kafka-python's consumer and producer, for tests without a broker."""

from __future__ import annotations

import asyncio
import time
from collections import namedtuple
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

Message = namedtuple("Message", "topic partition offset key value headers")


def message(
    topic: str, partition: int, offset: int, value: bytes, key: bytes | None = None
) -> Message:
    return Message(topic, partition, offset, key, value, [])


class FakeConsumer:
    """Hands out queued poll results and records seeks and commits.

    ``rebalance`` runs the subscribed listener's coroutines as kafka-python's IO thread would,
    before the next poll returns.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.listener = None
        self.polls: list[dict | Exception] = []
        self.rebalances: list[tuple[str, set[TopicPartition]]] = []
        self.seeks: dict[TopicPartition, int] = {}
        self.commits: list[dict] = []
        self.async_commits: list[dict] = []
        self.commit_errors: list[Exception] = []
        self.high: dict[TopicPartition, int] = {}
        self.closed = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topics = topics
        self.listener = listener

    def rebalance(self, event: str, partitions: set[TopicPartition]) -> None:
        self.rebalances.append((event, partitions))

    def poll(self, timeout_ms: int) -> dict:
        while self.rebalances:
            event, partitions = self.rebalances.pop(0)
            asyncio.run(getattr(self.listener, f"on_partitions_{event}")(partitions))
        if not self.polls:
            time.sleep(timeout_ms / 1000)
            return {}
        result = self.polls.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    def commit(self, offsets: dict, timeout_ms: int | None = None) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.commits.append({f"{tp.topic}:{tp.partition}": o.offset for tp, o in offsets.items()})

    async def commit_async(self, offsets: dict) -> None:
        self.async_commits.append(
            {f"{tp.topic}:{tp.partition}": o.offset for tp, o in offsets.items()}
        )

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high.get(tp)

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        self.closed = True


class FakeFuture:
    def __init__(self, exception: Exception | None = None) -> None:
        self.is_done = True
        self.exception = exception

    def succeeded(self) -> bool:
        return self.exception is None

    def failed(self) -> bool:
        return self.exception is not None


class FakeProducer:
    """Records sends; fails the first ``failures`` of them with KafkaTimeoutError."""

    created: list[FakeProducer] = []

    def __init__(self, *, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[dict] = []
        self.closed = False

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None
    ) -> FakeFuture:
        if self.failures:
            self.failures -= 1
            return FakeFuture(KafkaTimeoutError("no answer"))
        self.sent.append(
            {"topic": topic, "key": key, "value": value, "headers": dict(headers or [])}
        )
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def producer_factory(failures_per_producer: list[int]):
    """A factory that builds FakeProducers failing as listed, one entry per producer built."""
    built: list[FakeProducer] = []

    def build(kafka: Any, **overrides: Any) -> FakeProducer:
        failures = (
            failures_per_producer[len(built)] if len(built) < len(failures_per_producer) else 0
        )
        producer = FakeProducer(failures=failures)
        built.append(producer)
        return producer

    build.built = built
    return build
