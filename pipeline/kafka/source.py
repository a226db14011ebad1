"""The Kafka source: one member of a consumer group whose key state follows its partitions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import (
    CommitFailedError,
    CoordinatorNotAvailableError,
    IllegalGenerationError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NotCoordinatorError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata

from spikewatch.config import Config
from spikewatch.errors import SourceError
from spikewatch.kafka.client import (
    Backoff,
    broker_reachable,
    consumer_options,
    partition_id,
    split_partition_id,
)
from spikewatch.kafka.state import GroupCheckpoints, default_worker_id, group_directory
from spikewatch.metrics import PipelineMetrics
from spikewatch.sources.base import PartitionListener, Source, SourceItem

logger = logging.getLogger(__name__)

#: Commit errors that mean the group moved on without this member; it rejoins at the next poll.
REBALANCE_ERRORS = (
    CommitFailedError,
    RebalanceInProgressError,
    IllegalGenerationError,
    UnknownMemberIdError,
)
#: Commit errors that mean no broker answered; they count as broker connection errors.
CONNECTION_ERRORS = (
    KafkaConnectionError,
    KafkaTimeoutError,
    CoordinatorNotAvailableError,
    NotCoordinatorError,
)
#: Seconds of empty polls after which a healthy source checks that a broker is still reachable.
IDLE_PROBE_INTERVAL_S = 5.0
#: Seconds between two scans, after commits, for given-up partitions that their new owner has
#: checkpointed since. Each scan reads every checkpoint file of the group.
RELEASED_SCAN_INTERVAL_S = 60.0


class _RebalanceListener(AsyncConsumerRebalanceListener):
    """Forwards kafka-python's rebalance callbacks to the source.

    kafka-python 3 runs these callbacks on its IO thread while the thread that called ``poll``
    waits, so they never overlap the processing of an item. They are coroutines so that the
    commit after a revocation can be awaited on that IO thread, where a blocking commit would
    deadlock.
    """

    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        offsets = self.source._guarded(self.source._revoke, revoked, lost=False)
        if offsets:
            try:
                await self.source._consumer.commit_async(offsets)
            except Exception as error:  # noqa: BLE001 - any failure is reported the same way
                self.source._commit_failed(error)
            else:
                self.source._commit_succeeded(offsets)

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.source._guarded(self.source._revoke, lost, lost=True)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.source._guarded(self.source._assign, assigned)


class KafkaSource(Source):
    """Records of ``kafka.topics``, consumed as one member of the group ``kafka.group_id``.

    Each item's ``position`` is ``{"topic", "partition", "offset"}`` (dead letters carry it).
    A checkpoint stores, per partition, the next offset and the number of records folded into
    the partition's key state. The owned partitions' offsets are committed after the checkpoint
    is written.
    When the group assigns a partition, its keys and offset come from the newest checkpoint in
    the group's checkpoint directory (:class:`~spikewatch.kafka.state.GroupCheckpoints`).

    Parameters
    ----------
    config
        The validated configuration; ``[kafka]`` and ``checkpoint.path`` are read.
    consumer_factory
        Builds the consumer from keyword arguments; ``KafkaConsumer`` unless a test replaces it.
    """

    partitioned = True

    def __init__(
        self, config: Config, *, consumer_factory: Callable[..., Any] = KafkaConsumer
    ) -> None:
        self.config = config
        self.kafka = config.kafka
        self.name = "kafka:" + ",".join(self.kafka.topics)
        self.worker_id = self.kafka.worker_id or default_worker_id()
        self.checkpoints = GroupCheckpoints(
            group_directory(config.checkpoint.path, self.kafka.group_id), worker_id=self.worker_id
        )
        self.use_message_key = self.kafka.key_from == "message_key"
        self._consumer_factory = consumer_factory
        self._consumer: Any = None
        self._listener: PartitionListener | None = None
        self.metrics = PipelineMetrics()

        # Per partition: the next offset to process, the records folded into its keys, and when
        # it was last checkpointed. Partitions given up stay, frozen, until another worker has
        # checkpointed them (see spikewatch.kafka.state).
        self._positions: dict[str, dict[str, Any]] = {}
        self._assigned: set[str] = set()
        self._last_scan = time.monotonic()

        # Rebalance callbacks run on kafka-python's IO thread; these carry their work over.
        self._pending_commit: dict | None = None
        # Checkpoints of partitions assigned during the last poll, for the engine to restore.
        self._pending_restore: dict[str, dict | None] | None = None
        self._in_rebalance = False
        self._listener_error: BaseException | None = None
        self._closing = False

        self._probe = Backoff(
            initial_s=self.kafka.backoff_initial_ms / 1000, max_s=self.kafka.backoff_max_ms / 1000
        )
        self._broker_down = False
        self._next_probe_at = 0.0
        self._last_record = 0.0
        # The idle timeout runs only while this worker is a settled member of the group, not
        # during a join or rebalance.
        self._joined = False

        self.commits_ok = 0
        self.commits_failed = 0
        #: Called after each assignment, once the new partitions' keys are restored.
        self.on_assigned: list[Callable[[], None]] = []

    # -- wiring -----------------------------------------------------------------------------

    def bind(self, listener: PartitionListener, metrics: PipelineMetrics) -> None:
        self._listener = listener
        self.metrics = metrics

    def checkpoint_path(self, configured: str) -> str:
        return str(self.checkpoints.worker_path)

    def checkpoint_position(self, last_position: Any) -> dict[str, dict[str, Any]]:
        """Stamp the owned partitions with the checkpoint time and return every partition's entry.

        The engine calls this once per checkpoint. Partitions given up keep their older stamp.
        """
        now = time.time()
        for name in self._assigned:
            if name in self._positions:
                self._positions[name]["checkpointed_at"] = now
        return {p: dict(entry) for p, entry in self._positions.items()}

    # -- iteration --------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._consumer = self._consumer_factory(
                **consumer_options(self.kafka, worker_id=self.worker_id)
            )
        except KafkaTimeoutError as error:
            # No state exists yet to keep, so a clear stop beats waiting: the operator fixes the
            # address or starts the broker and runs again.
            raise SourceError(
                f"connection to Kafka at {','.join(self.kafka.bootstrap_servers)} failed ({error}); "
                "check --bootstrap-servers and that the broker is running"
            ) from None
        self._consumer.subscribe(list(self.kafka.topics), listener=_RebalanceListener(self))
        logger.info(
            "joining consumer group %r on %s as worker %s; checkpoints in %s",
            self.kafka.group_id,
            list(self.kafka.topics),
            self.worker_id,
            self.checkpoints.directory,
        )

    def __iter__(self) -> Iterator[SourceItem | None]:
        if self._consumer is None:
            self._open()
        consumer = self._consumer
        idle_timeout_s = self.kafka.idle_timeout_s
        self._last_record = time.monotonic()
        self._next_probe_at = self._last_record + IDLE_PROBE_INTERVAL_S
        while True:
            batch = consumer.poll(timeout_ms=self.kafka.poll_timeout_ms)
            if self._listener_error is not None:
                error, self._listener_error = self._listener_error, None
                raise error
            if self._pending_restore is not None:
                self._restore_assigned()
            now = time.monotonic()
            if not batch:
                if now >= self._next_probe_at:
                    self._check_broker(now)
                if idle_timeout_s and self._idle_for(now) >= idle_timeout_s:
                    # Time without a reachable broker is an outage, not an idle stream.
                    self._check_broker(now)
                    if not self._broker_down:
                        self.end_reason = f"idle for {idle_timeout_s:g} s (--idle-timeout-s)"
                        return
                self._update_lag()
                yield None
                continue
            self._last_record = now
            self._next_probe_at = now + IDLE_PROBE_INTERVAL_S
            if self._broker_down:
                self._broker_back()
            for tp, records in batch.items():
                yield from self._items(tp, records)
            # Idle time starts when the batch is processed, which can take longer than polling.
            self._last_record = time.monotonic()
            self._update_lag()

    def _items(self, tp: TopicPartition, records: list) -> Iterator[SourceItem]:
        name = partition_id(tp.topic, tp.partition)
        position = self._positions.setdefault(
            name, {"offset": 0, "records": 0, "checkpointed_at": 0.0}
        )
        use_key = self.use_message_key
        for record in records:
            position["offset"] = record.offset + 1
            position["records"] += 1
            key = (
                record.key.decode("utf-8", "backslashreplace")
                if use_key and record.key is not None
                else None
            )
            yield SourceItem(
                record.value,
                {"topic": tp.topic, "partition": tp.partition, "offset": record.offset},
                key,
                name,
            )

    # -- commits ----------------------------------------------------------------------------

    def commit(self, position: dict[str, dict[str, int]]) -> None:
        """Commit the checkpointed offsets of owned partitions; log and count a KafkaError.

        The checkpoint already contains these offsets, so a failed commit costs nothing but records
        processed again by a worker that starts from the group's committed offsets.
        """
        if self._consumer is None or not position:
            return
        # Only owned partitions: another worker now commits the ones this worker gave up.
        offsets = {
            TopicPartition(*split_partition_id(p)): OffsetAndMetadata(entry["offset"], "", -1)
            for p, entry in position.items()
            if p in self._assigned
        }
        if not offsets:
            return
        if self._in_rebalance:
            # Inside a rebalance callback on kafka-python's IO thread: the listener awaits it.
            self._pending_commit = offsets
            return
        try:
            self._consumer.commit(offsets, timeout_ms=self.kafka.request_timeout_ms)
        except KafkaError as error:
            self._commit_failed(error)
        else:
            self._commit_succeeded(offsets)
        if (
            time.monotonic() - self._last_scan >= RELEASED_SCAN_INTERVAL_S
            and set(self._positions) - self._assigned
        ):
            self._forget_superseded(self.checkpoints.scan())

    def _commit_succeeded(self, offsets: dict) -> None:
        self.commits_ok += 1
        self.metrics.kafka_commits.labels(result="ok").inc()
        logger.debug(
            "committed %s", {f"{tp.topic}:{tp.partition}": o.offset for tp, o in offsets.items()}
        )

    def _commit_failed(self, error: BaseException) -> None:
        self.commits_failed += 1
        self.metrics.kafka_commits.labels(result="failed").inc()
        if isinstance(error, REBALANCE_ERRORS):
            logger.warning(
                "offset commit failed because the group is rebalancing (%s); this worker rejoins "
                "at its next poll, and the partitions' next owner starts from the checkpoint "
                "just written",
                error,
            )
        else:
            if isinstance(error, CONNECTION_ERRORS):
                self.metrics.broker_connection_errors.inc()
            logger.warning(
                "offset commit failed (%s); the checkpoint contains the offsets and the next "
                "checkpoint commits them again",
                error,
            )

    # -- rebalances -------------------------------------------------------------------------

    def _guarded(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a rebalance step; keep its exception for ``__iter__`` to raise after the poll."""
        if self._closing or self._listener_error is not None:
            return None
        try:
            return callback(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised on the polling thread
            self._listener_error = error
            return None

    def _revoke(self, partitions: set[TopicPartition], *, lost: bool) -> dict | None:
        """Checkpoint and release ``partitions``; return the offsets still to be committed."""
        if not partitions:
            return None
        names = sorted(partition_id(tp.topic, tp.partition) for tp in partitions)
        event = "lost" if lost else "revoked"
        if lost:
            logger.warning(
                "partitions %s lost: this worker's group membership is out of date, so it "
                "checkpoints them without a commit and rejoins",
                names,
            )
        else:
            logger.info("partitions %s revoked", names)
        if self._pending_restore is not None:
            # Assigned and revoked within one poll: the engine needs the keys before it checkpoints.
            self._restore_assigned()

        # The engine checkpoints and then calls commit(), which leaves the offsets in
        # _pending_commit for the listener to await.
        self._in_rebalance = True
        self._pending_commit = None
        try:
            if self._listener is not None:
                self._listener.partitions_revoked(names)
        finally:
            self._in_rebalance = False

        self._joined = False
        for name in names:
            self._assigned.discard(name)
            topic, number = split_partition_id(name)
            try:
                self.metrics.consumer_lag.remove(topic, str(number))
            except KeyError:
                pass
        self.metrics.kafka_rebalances.labels(event=event).inc(len(names))
        self.metrics.kafka_assigned_partitions.set(len(self._assigned))
        return None if lost else self._pending_commit

    def _assign(self, partitions: set[TopicPartition]) -> None:
        """Seek newly assigned partitions to their newest checkpoints' offsets.

        Their keys are restored by :meth:`_restore_assigned` on the polling thread, before any
        of their records is yielded: building the model and the key states there keeps
        kafka-python's IO thread, which also sends the heartbeats, free.
        """
        self._joined = True
        self._last_record = time.monotonic()
        if not partitions:
            logger.info(
                "no partitions assigned to worker %s in group %r",
                self.worker_id,
                self.kafka.group_id,
            )
            return
        by_name = {partition_id(tp.topic, tp.partition): tp for tp in partitions}
        copies = self.checkpoints.scan()
        saved = {name: copies[name].state if name in copies else None for name in by_name}
        self._pending_restore = {**(self._pending_restore or {}), **saved}
        fresh = []
        for name, tp in by_name.items():
            if name not in copies:
                fresh.append(name)
                self._positions.pop(name, None)
                continue
            entry = copies[name].entry
            self._positions[name] = {
                "offset": int(entry["offset"]),
                "records": int(entry["records"]),
                "checkpointed_at": float(entry.get("checkpointed_at", 0.0)),
            }
            self._consumer.seek(tp, int(entry["offset"]))
        self._assigned.update(by_name)
        self._forget_superseded(copies)
        restored = {name: self._positions[name]["offset"] for name in by_name if name not in fresh}
        logger.info(
            "partitions %s assigned; resuming from checkpointed offsets %s",
            sorted(by_name),
            restored,
        )
        if fresh:
            logger.info(
                "partitions %s have no checkpoint in %s: their keys start empty, at the group's "
                "committed offset or else at the %s offset",
                fresh,
                self.checkpoints.directory,
                self.kafka.auto_offset_reset,
            )
        self.metrics.kafka_rebalances.labels(event="assigned").inc(len(by_name))
        self.metrics.kafka_assigned_partitions.set(len(self._assigned))

    def _forget_superseded(self, copies: dict) -> None:
        """Drop given-up partitions whose newest copy is now in another worker's file."""
        self._last_scan = time.monotonic()
        superseded = [
            name
            for name in set(self._positions) - self._assigned
            if name in copies and copies[name].path != self.checkpoints.worker_path
        ]
        if not superseded:
            return
        for name in superseded:
            del self._positions[name]
        if self._listener is not None:
            self._listener.forget_partitions(superseded)
        logger.debug(
            "partitions %s are checkpointed by their new owners; no longer kept here",
            sorted(superseded),
        )

    def _restore_assigned(self) -> None:
        """Hand the pending checkpoints of newly assigned partitions to the engine."""
        saved, self._pending_restore = self._pending_restore, None
        if self._listener is not None:
            self._listener.partitions_assigned(saved)
        for callback in self.on_assigned:
            callback()
        # The idle timeout counts from here: restoring may take seconds.
        self._last_record = time.monotonic()

    # -- broker health and lag --------------------------------------------------------------

    def _idle_for(self, now: float) -> float:
        """Seconds without a record while settled in the group with a reachable broker."""
        if not self._joined or self._broker_down:
            return 0.0
        return now - self._last_record

    def _check_broker(self, now: float) -> None:
        """Probe the bootstrap servers after empty polls; log when they go away and come back."""
        if broker_reachable(list(self.kafka.bootstrap_servers)):
            if self._broker_down:
                self._broker_back()
            self._next_probe_at = now + IDLE_PROBE_INTERVAL_S
            return
        self.metrics.broker_connection_errors.inc()
        delay = self._probe.next_delay_s()
        self._next_probe_at = now + delay
        # Log the first failure and then every doubling of the failures.
        if self._probe.failures & (self._probe.failures - 1) == 0:
            logger.warning(
                "no Kafka broker reachable at %s: keeping the state of the owned partitions %s "
                "and reconnecting with backoff up to %g s; next check in %g s",
                ",".join(self.kafka.bootstrap_servers),
                sorted(self._assigned),
                self._probe.max_s,
                delay,
            )
        self._broker_down = True

    def _broker_back(self) -> None:
        lasted = self._probe.reset()
        self._broker_down = False
        self._last_record = time.monotonic()
        logger.info("Kafka broker reachable again after about %.0f s; consuming resumes", lasted)

    def _update_lag(self) -> None:
        consumer = self._consumer
        for name in self._assigned:
            position = self._positions.get(name)
            if position is None:
                continue
            topic, number = split_partition_id(name)
            high = consumer.highwater(TopicPartition(topic, number))
            if high is not None:
                self.metrics.consumer_lag.labels(topic=topic, partition=str(number)).set(
                    max(high - position["offset"], 0)
                )

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group; the engine has written its final checkpoint before this."""
        if self._consumer is None:
            return
        # kafka-python revokes the partitions on close; the final checkpoint already covers them.
        self._closing = True
        try:
            self._consumer.close(autocommit=False, timeout_ms=self.kafka.request_timeout_ms)
        except Exception as error:  # noqa: BLE001 - closing must not hide the run's result
            logger.warning("closing the Kafka consumer failed: %s", error)
        self._consumer = None
        logger.info(
            "left consumer group %r: %d commits, %d failed",
            self.kafka.group_id,
            self.commits_ok,
            self.commits_failed,
        )
