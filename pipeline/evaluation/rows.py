"""The rows of one benchmark file, read by the same source and decoder as the engine.

A row is one item of the source: a line of a CSV or JSON-lines file, or one time bucket of a
log. :func:`read_rows` decodes every item with :class:`~spikewatch.records.RecordDecoder` and
the engine's ordering check, so it accepts and rejects the rows the engine does. The runner
checks the count of accepted rows after each engine run. Labels are read for scoring only and
never reach a detector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikewatch.commands.run import build_source
from spikewatch.config import Config
from spikewatch.errors import InvalidRecord
from spikewatch.records import RecordDecoder, check_order


@dataclass
class RowTable:
    """Every row of a file, in source order.

    Attributes
    ----------
    keys
        Stream key per row; None where the row could not be decoded.
    timestamps
        Seconds since the Unix epoch per row; NaN where the row could not be decoded.
    values
        Channel values ``[rows, channels]``; NaN where the row could not be decoded.
    accepted
        Rows the engine accepts; the others are dead-lettered with a reason in ``rejected``.
    labels
        0/1 per row; rows without a label count as 0.
    extra
        Raw fields read for scoring, such as SKAB's changepoints, as float arrays.
    """

    channels: tuple[str, ...]
    keys: list[str | None]
    timestamps: np.ndarray
    values: np.ndarray
    accepted: np.ndarray
    labels: np.ndarray
    rejected: dict[str, int] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def row_index(self) -> dict[tuple[str, float], int]:
        """Map ``(key, timestamp)`` of each accepted row to its row number.

        The engine reports a window by its key and the timestamp of its newest record. Accepted
        records of a key have distinct timestamps, unless ``validation.max_lateness_s`` lets a
        late record repeat one. Such a file cannot be mapped, and this raises ValueError.
        """
        index: dict[tuple[str, float], int] = {}
        for row in np.flatnonzero(self.accepted):
            marker = (self.keys[row], float(self.timestamps[row]))
            if marker in index:
                raise ValueError(
                    f"rows {index[marker]} and {row} of key {marker[0]!r} share the timestamp "
                    f"{marker[1]}; evaluate with validation.max_lateness_s = 0"
                )
            index[marker] = int(row)
        return index


def _raw_number(payload: Any, name: str) -> float:
    if not name or not isinstance(payload, Mapping):
        return 0.0
    try:
        return float(payload.get(name) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def read_rows(config: Config, *, extra_fields: tuple[str, ...] = ()) -> RowTable:
    """Read and decode every row of the source that ``config`` describes."""
    src, validation = config.source, config.validation
    decoder = RecordDecoder(
        key_field=src.key_field,
        default_key=src.default_key,
        timestamp_field=src.timestamp_field,
        label_field=src.label_field,
        ignore_fields=src.ignore_fields,
        channels=validation.channels,
        max_future_s=validation.max_future_s,
    )
    keys: list[str | None] = []
    timestamps: list[float] = []
    rows: list[tuple[float, ...] | None] = []
    accepted: list[bool] = []
    labels: list[int] = []
    extra: dict[str, list[float]] = {name: [] for name in extra_fields}
    rejected: dict[str, int] = {}
    newest: dict[str, float] = {}
    source = build_source(config)
    try:
        for item in source:
            if item is None:
                continue
            for name in extra_fields:
                extra[name].append(_raw_number(item.payload, name))
            try:
                record = decoder.decode(item.payload, key_override=item.key)
            except InvalidRecord as error:
                rejected[error.reason] = rejected.get(error.reason, 0) + 1
                keys.append(None)
                timestamps.append(np.nan)
                rows.append(None)
                accepted.append(False)
                labels.append(int(_raw_number(item.payload, src.label_field) >= 0.5))
                continue
            keys.append(record.key)
            timestamps.append(record.timestamp)
            rows.append(tuple(record.values[name] for name in decoder.channels))
            labels.append(int(record.label or 0))
            try:
                check_order(record, newest.get(record.key), validation.max_lateness_s)
            except InvalidRecord as error:
                rejected[error.reason] = rejected.get(error.reason, 0) + 1
                accepted.append(False)
                continue
            accepted.append(True)
            newest[record.key] = max(newest.get(record.key, -np.inf), record.timestamp)
    finally:
        source.close()

    channels = decoder.channels
    values = np.full((len(rows), len(channels)), np.nan)
    for row, row_values in enumerate(rows):
        if row_values is not None:
            values[row] = row_values
    return RowTable(
        channels=channels,
        keys=keys,
        timestamps=np.asarray(timestamps, dtype=np.float64),
        values=values,
        accepted=np.asarray(accepted, dtype=bool),
        labels=np.asarray(labels, dtype=np.int8),
        rejected=rejected,
        extra={name: np.asarray(column) for name, column in extra.items()},
    )
