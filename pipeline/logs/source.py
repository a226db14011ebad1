"""Sources of raw log lines, and the source that turns them into template-count records.

:class:`TemplateCountSource` wraps any source whose payloads are raw log lines (a text file, the
lines on standard input, the values of Kafka messages) and yields one record per closed time
bucket, as described in :mod:`spikewatch.logs.buckets`. The engine reads it like any other
source, so live log streams and replayed log files take the same path.

A line that does not match the log format is passed on as an
:class:`~spikewatch.records.UnparsedLine`, which the engine dead-letters with the line as payload.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from spikewatch.config import Config
from spikewatch.errors import ConfigError, InvalidRecord, SourceError
from spikewatch.logs.buckets import BucketCounter
from spikewatch.logs.formats import LABEL_FIELD, LogFormat
from spikewatch.logs.templates import TemplateChannels
from spikewatch.records import UnparsedLine
from spikewatch.sources import Source, SourceItem, StdinSource
from spikewatch.sources.base import CountingSource

logger = logging.getLogger(__name__)


class LogLineSource(CountingSource):
    """Lines of a text file (optionally ``.gz``) without their line ends; blank lines are skipped.

    Bytes that are not UTF-8 are replaced, because log files mix encodings and a line should
    reach the template miner rather than stop the replay.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.exists():
            raise SourceError(f"log file not found: {self.path}")

    def _open(self) -> IO[str]:
        if self.path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(self.path, "rb"), encoding="utf-8", errors="replace")
        return self.path.open(encoding="utf-8", errors="replace")

    def _items(self) -> Iterator[Any]:
        with self._open() as handle:
            for line in handle:
                text = line.rstrip("\r\n")
                if text.strip():
                    yield text


def _line_text(payload: Any) -> str:
    if isinstance(payload, (bytes, bytearray)):
        payload = bytes(payload).decode("utf-8", errors="replace")
    return str(payload).rstrip("\r\n")


class TemplateCountSource(Source):
    """Template counts per key and time bucket of the raw log lines of ``lines``.

    Parameters
    ----------
    lines
        Source whose payloads are raw log lines (text or UTF-8 bytes).
    log_format
        How a line splits into fields.
    templates
        The template miner and its channels.
    counter
        Bucket counts per key.
    default_key
        Stream key of lines without a key field and without a source key (a Kafka message key).
    key_field
        Field of the log format that contains the stream key; empty: ``default_key``.
    normal_label
        Value of a ``<Label>`` field that marks a normal line; any other value marks an anomaly.
    state_path
        File that keeps the mined templates from checkpoint to checkpoint, so a resumed run maps
        templates onto the same channels. None: templates are not kept. Each worker of a Kafka
        consumer group mines and keeps its own templates, so one template can map to different
        channels on different workers.
    """

    total = None

    def __init__(
        self,
        lines: Source,
        *,
        log_format: LogFormat,
        templates: TemplateChannels,
        counter: BucketCounter,
        default_key: str = "default",
        key_field: str = "",
        normal_label: str = "-",
        state_path: str | Path | None = None,
    ) -> None:
        if key_field and key_field not in log_format.fields:
            raise ConfigError(
                f"logs.key_field = {key_field!r} is not a field of the log format "
                f"{log_format.format!r}; choose one of {log_format.fields}"
            )
        self.lines = lines
        self.name = lines.name
        self.log_format = log_format
        self.templates = templates
        self.counter = counter
        self.default_key = default_key
        self.key_field = key_field
        self.normal_label = normal_label
        self.state_path = Path(state_path) if state_path else None
        self._start_position: Any = None
        # Partition of each key's newest line: the key's bucket records belong to it.
        self._partitions: dict[str, str | None] = {}
        if lines.partitioned and self.state_path is not None and self.state_path.exists():
            # A partitioned source never seeks: its worker restores state per partition, so the
            # worker's templates are restored here.
            self.templates.load_state_bytes(self.state_path.read_bytes())

    def __iter__(self) -> Iterator[SourceItem | None]:
        counter = self.counter
        newest_position = self._start_position
        sequence = 0
        for item in self.lines:
            if item is None:
                # The source is idle: buckets that end before the newest line cannot grow.
                for record in counter.close_through(counter.newest_timestamp):
                    yield self._item(record, counter.safe_position(newest_position))
                yield None
                continue
            position_before, newest_position = newest_position, item.position
            sequence += 1
            text = _line_text(item.payload)
            try:
                fields = self.log_format.parse(text)
                timestamp = self.log_format.timestamp(fields)
            except InvalidRecord as error:
                detail = f"{error.detail} (line at position {item.position})"
                yield SourceItem(
                    UnparsedLine(text, error.reason, detail),
                    counter.safe_position(newest_position),
                )
                continue
            template_index, is_new = self.templates.add(fields["Content"])
            key = self._key(item, fields)
            self._partitions[key] = item.partition
            closed = counter.add(
                key,
                timestamp,
                template_index,
                is_new,
                self._label(fields),
                sequence=sequence,
                position_before=position_before,
            )
            for record in closed:
                yield self._item(record, counter.safe_position(newest_position))
        for record in counter.close_all():
            yield self._item(record, newest_position)
        if counter.late_lines:
            logger.warning(
                "%d log lines were older than their key's open bucket and were counted in it",
                counter.late_lines,
            )

    def _item(self, record: dict, position: Any) -> SourceItem:
        return SourceItem(record, position, partition=self._partitions.get(record["key"]))

    def _key(self, item: SourceItem, fields: dict[str, str]) -> str:
        if item.key is not None:
            return item.key
        if self.key_field:
            return fields[self.key_field]
        return self.default_key

    def _label(self, fields: dict[str, str]) -> int | None:
        if LABEL_FIELD not in fields:
            return None
        return int(fields[LABEL_FIELD] != self.normal_label)

    # -- the engine's source calls, delegated to the line source ----------------------------

    @property
    def partitioned(self) -> bool:
        return self.lines.partitioned

    @property
    def end_reason(self) -> str:
        return self.lines.end_reason

    def bind(self, listener, metrics) -> None:
        self.lines.bind(listener, metrics)

    def checkpoint_path(self, configured: str) -> str:
        return self.lines.checkpoint_path(configured)

    def checkpoint_position(self, last_position: Any) -> Any:
        """Return the position that a checkpoint stores, as the line source computes it.

        NOTE: a partitioned source (Kafka) returns the offsets it has read, which include
        the lines of buckets still open. After a crash or a rebalance those lines are not read
        again, so up to one bucket per key is lost; file sources resume before them.
        """
        return self.lines.checkpoint_position(last_position)

    def seek(self, position: Any) -> None:
        """Resume after ``position``, with the templates saved at the last checkpoint."""
        if self.state_path is not None and self.state_path.exists():
            self.templates.load_state_bytes(self.state_path.read_bytes())
        else:
            # NOTE: without saved templates the numbering restarts, so templates may land on
            # other channels than the checkpointed model learned.
            logger.warning(
                "no saved log templates at %s: templates are mined again from the resumed lines",
                self.state_path,
            )
        self.lines.seek(position)
        self._start_position = position

    def commit(self, position: Any) -> None:
        """Save the mined templates, then acknowledge ``position`` to the line source.

        NOTE: the saved templates include the lines of still-open buckets, which a resumed run
        reads again. Those lines then count twice in their template's size and never as new
        templates. Channel numbers are unaffected.
        """
        if self.state_path is not None:
            temporary = self.state_path.with_name(self.state_path.name + ".tmp")
            temporary.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(self.templates.state_bytes())
            os.replace(temporary, self.state_path)
        self.lines.commit(position)

    def close(self) -> None:
        self.lines.close()


def build_log_source(config: Config) -> TemplateCountSource:
    """Open the source of ``source.kind`` as raw log lines and count templates per bucket."""
    source, logs = config.source, config.logs
    if source.kind in ("csv", "jsonl"):
        lines: Source = LogLineSource(source.path)
    elif source.kind == "stdin":
        lines = StdinSource()
    elif source.kind == "kafka":
        from spikewatch.kafka import build_kafka_source

        lines = build_kafka_source(config)
    else:
        raise ConfigError(
            f"logs.format is set but source.kind = {source.kind!r} has no raw log lines; "
            "use a file, stdin or kafka source, or leave logs.format empty"
        )
    templates = TemplateChannels(
        template_channels=logs.template_channels,
        similarity_threshold=logs.similarity_threshold,
        tree_depth=logs.tree_depth,
    )
    return TemplateCountSource(
        lines,
        log_format=LogFormat(logs.format, timestamp_format=logs.timestamp_format),
        templates=templates,
        counter=BucketCounter(
            names=templates.names,
            bucket_seconds=logs.bucket_seconds,
            max_empty_buckets=logs.max_empty_buckets,
        ),
        default_key=source.default_key,
        key_field=logs.key_field,
        normal_label=logs.normal_label,
        state_path=lines.checkpoint_path(config.checkpoint.path) + ".templates",
    )
