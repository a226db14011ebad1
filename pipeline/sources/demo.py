"""The built-in demo stream: seven labeled NAB series replayed as one stream with seven keys."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from spikewatch.sources.base import CountingSource

DEMO_PACKAGE = "spikewatch.data.nab"


def _parse_nab_time(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def load_demo_series() -> dict[str, list[tuple[float, float, int]]]:
    """Return ``{key: [(timestamp, value, label), ...]}`` for the seven demo series."""
    folder = resources.files(DEMO_PACKAGE)
    windows = json.loads((folder / "label_windows.json").read_text())
    series = {}
    for name in sorted(windows):
        spans = [(_parse_nab_time(start), _parse_nab_time(end)) for start, end in windows[name]]
        with gzip.open(io.BytesIO((folder / f"{name}.gz").read_bytes()), "rt") as handle:
            rows = []
            for row in csv.DictReader(handle):
                stamp = _parse_nab_time(row["timestamp"])
                label = int(any(start <= stamp <= end for start, end in spans))
                rows.append((stamp, float(row["value"]), label))
        series[name.removesuffix(".csv")] = rows
    return series


class DemoSource(CountingSource):
    """The seven NAB ``realKnownCause`` series, interleaved one record per key in turn.

    Each key's records stay in timestamp order; keys take turns, so windows of several keys are
    ready at once and score in one batch, as on a live multi-key stream. Records carry the label
    from NAB's label windows.
    """

    name = "demo"

    def __init__(self) -> None:
        super().__init__()
        self.series = load_demo_series()
        self.total = sum(len(rows) for rows in self.series.values())

    def _items(self) -> Iterator[Any]:
        longest = max(len(rows) for rows in self.series.values())
        for index in range(longest):
            for key, rows in self.series.items():
                if index < len(rows):
                    stamp, value, label = rows[index]
                    yield {"key": key, "timestamp": stamp, "values": {"value": value}, "label": label}
