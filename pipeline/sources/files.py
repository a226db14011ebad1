"""Recorded streams: CSV files, JSON-lines files and JSON lines on standard input."""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from spikewatch.errors import SourceError
from spikewatch.sources.base import CountingSource


def _open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file; a byte-order mark is skipped and undecodable bytes become U+FFFD.

    Replacing bad bytes keeps one corrupt line from stopping the stream: the line goes on to
    the decoder, which dead-letters it when a value or timestamp no longer parses.
    """
    if not path.exists():
        raise SourceError(f"input file not found: {path}")
    if path.is_dir():
        raise SourceError(f"input {path} is a directory; give one CSV or JSON-lines file")
    if path.suffix == ".gz":
        raw = gzip.open(path, "rb")
        return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
    return path.open(encoding="utf-8-sig", errors="replace", newline="")


def _count_lines(path: Path) -> int:
    with _open_text(path) as handle:
        return sum(1 for _ in handle)


class CsvSource(CountingSource):
    """Rows of a CSV file with a header, as mappings of column name to text.

    The delimiter is detected from the header line (``,``, ``;`` or tab) unless given. A row
    with more fields than the header carries them under the key ``None``, and a row with fewer
    has ``None`` values; the decoder dead-letters both.
    """

    def __init__(self, path: str | Path, *, delimiter: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        with _open_text(self.path) as handle:
            header = handle.readline()
        if not header.strip():
            raise SourceError(f"{self.path} is empty; a CSV source needs a header line")
        self.delimiter = delimiter or max((",", ";", "\t"), key=header.count)
        self.columns = next(csv.reader([header], delimiter=self.delimiter))
        self.total = max(_count_lines(self.path) - 1, 0)

    def require_columns(self, **fields: str) -> None:
        """Raise SourceError naming each configured field (option=column) missing from the header."""
        missing = [f"{option} {column!r}" for option, column in fields.items() if column and column not in self.columns]
        if missing:
            raise SourceError(
                f"{self.path} has no column for {', '.join(missing)}; its columns are {self.columns}. "
                "Name the right columns with --timestamp-column, --key-column or --label-column."
            )

    def _items(self) -> Iterator[Any]:
        with _open_text(self.path) as handle:
            yield from csv.DictReader(handle, delimiter=self.delimiter)


class JsonlSource(CountingSource):
    """Lines of a JSON-lines file, each handed to the decoder as text; blank lines are skipped."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        self.total = _count_lines(self.path)

    def _items(self) -> Iterator[Any]:
        with _open_text(self.path) as handle:
            for line in handle:
                if line.strip():
                    yield line


class StdinSource(CountingSource):
    """JSON lines read from standard input until end of file.

    A resumed run skips as many lines as the checkpoint counted, which is right only when the
    same input is piped in again.
    """

    name = "stdin"

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream

    def _items(self) -> Iterator[Any]:
        for line in self.stream or sys.stdin:
            if line.strip():
                yield line
