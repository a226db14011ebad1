"""Benchmarks: which files to replay, how to read them, and the protocol of each.

Every benchmark file is read by the same sources and decoder as ``spikewatch replay``. A
benchmark adds the source settings of its files, the labels of their rows and the warm-up,
which is the number of rows that each detector learns from before it scores.

* NAB: the warm-up is NAB's probationary period, the first 15 % of a file and at most 750 rows,
  which NAB leaves unscored so that detectors can learn. Row labels are NAB's label windows.
* SKAB: the warm-up is the first 400 rows of each file, the part that the SKAB leaderboard's
  baselines train on. Row labels are the ``anomaly`` column.
* BGL: raw log lines become template counts per time bucket (:mod:`spikewatch.logs`), and a
  bucket is labeled anomalous when it holds an alert-tagged line. Without a published training
  part, the warm-up follows NAB's rule on the buckets.
* Labeled CSV or JSON-lines files: the label field names the labels and the warm-up is the
  configured ``learning.warmup_windows``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikewatch.config import Config
from spikewatch.errors import SpikewatchError
from spikewatch.evaluation import nab

#: Rows of each SKAB file that the leaderboard's baselines train on (``df[:400]``).
SKAB_TRAINING_ROWS = 400
#: SKAB folders with anomalies. ``anomaly-free`` contains no labeled rows and is left out, as
#: on the leaderboard.
SKAB_FOLDERS = ("valve1", "valve2", "other")
#: The BGL format in loghub's notation: label, Unix time, date, node, time, node, type,
#: component, level, message.
BGL_FORMAT = (
    "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>"
)
#: Default time bucket of the BGL benchmark, in seconds.
BGL_BUCKET_SECONDS = 60.0


class EvaluationError(SpikewatchError):
    """An evaluation cannot run: missing data, no matching file, or inconsistent rows."""


def configured_warmup_rows(config: Config) -> int:
    """Return the records of one key that ``learning.warmup_windows`` windows span."""
    windows = config.windows
    return (config.learning.warmup_windows - 1) * windows.stride + windows.length


def nab_warmup_rows(n_rows: int) -> int:
    """NAB's probationary period: ``min(floor(0.15 * n), 750)`` rows."""
    return nab.probation_length(n_rows)


@dataclass(frozen=True)
class BenchmarkFile:
    """One file of a benchmark and how to read it.

    ``source`` and ``logs`` are overrides of the ``[source]`` and ``[logs]`` configuration
    sections. ``warmup_rows`` maps the file's row count to the rows the detectors learn from
    before they score; None keeps the configured ``learning.warmup_windows``.
    """

    name: str
    path: Path
    source: dict[str, Any]
    logs: dict[str, Any] = field(default_factory=dict)
    warmup_rows: Callable[[int], int] | None = None
    #: NAB label windows as inclusive ``(first_row, last_row)`` pairs; None: labels are read
    #: from the records.
    window_rows: np.ndarray | None = None
    #: Raw field with SKAB's changepoint marks, read for the changepoint NAB score.
    changepoint_field: str | None = None


@dataclass(frozen=True)
class Benchmark:
    """A named set of files with the protocol text that the report prints."""

    name: str
    title: str
    protocol: str
    files: list[BenchmarkFile]


def _select(names: Sequence[str], patterns: Sequence[str] | None) -> list[str]:
    if not patterns:
        return list(names)
    chosen = [name for name in names if any(fnmatch.fnmatch(name, p) for p in patterns)]
    if not chosen:
        raise EvaluationError(
            f"no file matches --files {list(patterns)}; files are named like {names[0]!r}"
        )
    return chosen


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def load_nab(data: Path, *, patterns: Sequence[str] | None = None) -> Benchmark:
    """Load the NAB corpus under ``data`` (``data/``, ``labels/combined_windows.json``)."""
    labels = data / "labels" / "combined_windows.json"
    if not labels.is_file():
        raise EvaluationError(
            f"NAB label windows not found at {labels}; pass the NAB folder as --data"
        )
    windows = nab.load_windows(labels)
    files = []
    for name in _select(sorted(windows), patterns):
        path = data / "data" / name
        if not path.is_file():
            raise EvaluationError(f"NAB data file {path} is listed in {labels} but missing")
        # NAB maps windows onto rows by their timestamp text, repeated timestamps included.
        timestamps, _ = nab.read_nab_csv(path)
        files.append(
            BenchmarkFile(
                name=name,
                path=path,
                source={"kind": "csv", "path": str(path), "timestamp_field": "timestamp"},
                warmup_rows=nab_warmup_rows,
                window_rows=nab.windows_to_rows(timestamps, windows[name]),
            )
        )
    protocol = (
        "Each file is replayed on its own through a fresh pipeline (fresh model, no labels "
        "seen). Detectors learn from NAB's probationary period, the first 15 % of a file and at "
        "most 750 rows, and score every later row. NAB's sweeper picks one threshold per "
        "profile over all files, and scores are normalised so that a detector without "
        "detections scores 0 and a perfect one 100, as NAB v1.1 defines them."
    )
    return Benchmark("nab", "Numenta Anomaly Benchmark (NAB v1.1)", protocol, files)


def load_skab(data: Path, *, patterns: Sequence[str] | None = None) -> Benchmark:
    """Load the SKAB files with anomalies under ``data`` (``valve1``, ``valve2``, ``other``)."""
    root = data / "data" if (data / "data").is_dir() else data
    names = [
        f"{folder}/{path.name}"
        for folder in SKAB_FOLDERS
        for path in sorted((root / folder).glob("*.csv"), key=lambda p: _natural_key(p.name))
    ]
    if not names:
        folders = ", ".join(SKAB_FOLDERS)
        raise EvaluationError(
            f"no SKAB file in the folders {folders} under {root}; pass the SKAB folder as --data"
        )
    files = [
        BenchmarkFile(
            name=name,
            path=root / name,
            source={
                "kind": "csv",
                "path": str(root / name),
                "timestamp_field": "datetime",
                "label_field": "anomaly",
                "ignore_fields": ["changepoint"],
            },
            warmup_rows=lambda n_rows: min(SKAB_TRAINING_ROWS, n_rows),
            changepoint_field="changepoint",
        )
        for name in _select(names, patterns)
    ]
    protocol = (
        "Each file is replayed on its own through a fresh pipeline; the labels never reach "
        "a detector. The SKAB leaderboard's baselines train on the first 400 rows of each "
        "file; here each detector learns online from those rows (its warm-up) and scores "
        "every later row without further access to labels. F1, FAR and MAR are SKAB's "
        "outlier-detection scores on one confusion matrix pooled over the rows of all files, "
        "warm-up rows included (they count as no alarm). A detector's alarm on a row is its "
        "alert state: from the window that opens an alert to the one that resolves it. "
        "Predicted changepoints are the rows where that state changes, as in SKAB's notebooks."
    )
    return Benchmark("skab", "Skoltech Anomaly Benchmark (SKAB)", protocol, files)


def load_bgl(
    data: Path, *, patterns: Sequence[str] | None = None, bucket_seconds: float = BGL_BUCKET_SECONDS
) -> Benchmark:
    """Load the loghub BGL log at ``data``, a log file or a folder of ``*.log`` files."""
    paths = [data] if data.is_file() else sorted(data.glob("*.log"))
    if not paths:
        raise EvaluationError(f"no BGL log file at {data}; pass BGL_2k.log or its folder as --data")
    by_name = {path.name: path for path in paths}
    files = [
        BenchmarkFile(
            name=name,
            path=by_name[name],
            source={"kind": "csv", "path": str(by_name[name])},
            logs={"format": BGL_FORMAT, "bucket_seconds": bucket_seconds},
            warmup_rows=nab_warmup_rows,
        )
        for name in _select(sorted(by_name), patterns)
    ]
    protocol = (
        f"Raw log lines are split by the BGL format, drain3 mines their templates online, and "
        f"the line counts per template in {bucket_seconds:g}-second buckets become the channels "
        "of one stream (buckets without lines are not sent). A bucket is anomalous when it holds "
        "a line with an alert tag; the tags never reach a detector. Detectors learn from the "
        "first 15 % of the buckets (NAB's rule, at most 750) and score the rest."
    )
    return Benchmark("bgl", "Blue Gene/L logs (loghub BGL)", protocol, files)


def load_labeled(
    data: Path,
    *,
    label_field: str,
    timestamp_field: str = "timestamp",
    key_field: str = "",
    ignore_fields: Sequence[str] = (),
    file_format: str | None = None,
    patterns: Sequence[str] | None = None,
) -> Benchmark:
    """Load labeled CSV or JSON-lines files: ``data`` is one file or a folder of them."""
    if not label_field:
        raise EvaluationError("a labeled benchmark needs --label-column, the field with 0/1 labels")
    suffixes = (".csv", ".jsonl", ".json", ".gz")
    paths = (
        [data]
        if data.is_file()
        else sorted(path for path in data.rglob("*") if path.is_file() and path.suffix in suffixes)
    )
    if not paths:
        raise EvaluationError(f"no CSV or JSON-lines file at {data}")
    root = data.parent if data.is_file() else data
    by_name = {str(path.relative_to(root)): path for path in paths}
    files = []
    for name in _select(sorted(by_name), patterns):
        path = by_name[name]
        kind = file_format or ("jsonl" if {".jsonl", ".json"} & set(path.suffixes) else "csv")
        source = {
            "kind": kind,
            "path": str(path),
            "timestamp_field": timestamp_field,
            "label_field": label_field,
            "key_field": key_field,
            "ignore_fields": list(ignore_fields),
        }
        files.append(BenchmarkFile(name=name, path=path, source=source))
    protocol = (
        f"Each file is replayed on its own through a fresh pipeline; the labels in field "
        f"{label_field!r} never reach a detector. Detectors learn from the configured warm-up "
        "(learning.warmup_windows windows) and score every later row."
    )
    return Benchmark("labeled", f"Labeled files at {data}", protocol, files)
