"""Source items and the base class of the sources."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from spikewatch.metrics import PipelineMetrics


@dataclass(slots=True)
class SourceItem:
    """One raw record as read, before decoding.

    ``payload`` is a mapping (already parsed) or ``str``/``bytes`` holding one JSON object.
    ``position`` is JSON-serialisable and identifies the item within its source; a checkpoint
    stores the position of the last processed item so a resumed run skips what it has seen.
    ``key`` overrides the record's stream key (a Kafka message key) when not None.
    ``partition`` names the partition the item came from (``"topic:3"``) for partitioned
    sources; the key's state belongs to that partition.
    """

    payload: Any
    position: Any
    key: str | None = None
    partition: str | None = None


class PartitionListener(Protocol):
    """What a partitioned source calls when the group moves partitions (the engine).

    Both calls happen inside the source's iteration, between two items, never while an item is
    being processed.
    """

    def partitions_revoked(self, partitions: list[str]) -> None:
        """Checkpoint every key, have the source commit, then release the keys of ``partitions``."""

    def partitions_assigned(self, saved: dict[str, dict | None]) -> None:
        """Restore each new partition's keys from ``saved[partition]``, its newest checkpoint."""

    def forget_partitions(self, partitions: list[str]) -> None:
        """Stop checkpointing the released keys of ``partitions``; a newer copy exists elsewhere."""


class Source:
    """A stream of :class:`SourceItem`; ``None`` in the stream means "nothing available now".

    Subclasses set ``name`` (for logs and dead letters) and ``total`` (records expected, or None
    when unknown, for the progress bar).
    """

    name = "source"
    total: int | None = None
    #: True for sources split into partitions that move between the workers of a group; they
    #: restore key state per partition through :class:`PartitionListener`, not with --resume.
    partitioned = False
    #: Why iteration ended, for the run summary.
    end_reason = "end of stream"

    def __iter__(self) -> Iterator[SourceItem | None]:
        raise NotImplementedError

    def seek(self, position: Any) -> None:
        """Skip every item up to and including ``position`` (a checkpoint's position)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resume from a position")

    def bind(self, listener: PartitionListener, metrics: PipelineMetrics) -> None:  # noqa: B027
        """Connect the engine that runs this source and its metrics; used by partitioned sources."""

    def checkpoint_path(self, configured: str) -> str:
        """Path of this run's checkpoint file; a partitioned source gives each worker its own."""
        return configured

    def checkpoint_position(self, last_position: Any) -> Any:
        """Position that a checkpoint stores and then commits: by default the last item's."""
        return last_position

    def commit(self, position: Any) -> None:  # noqa: B027 - optional for replayed files
        """Acknowledge every item up to ``position``; called after a checkpoint is written."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release files, sockets and threads."""


class CountingSource(Source):
    """A source whose position is the 1-based index of the item; resuming skips that many."""

    def __init__(self) -> None:
        self._skip = 0

    def seek(self, position: Any) -> None:
        if not isinstance(position, int) or position < 0:
            raise ValueError(f"position {position!r} is not a record count for {self.name}")
        self._skip = position

    def _items(self) -> Iterator[Any]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[SourceItem | None]:
        skip = self._skip
        for index, payload in enumerate(self._items(), start=1):
            if index <= skip:
                continue
            yield SourceItem(payload, index)
