"""Per-row outputs of a detector on one file, and the per-row score file format.

A detector scores some rows: spikewatch scores a window when its newest record arrives (every
``windows.stride`` records of a key), the record-by-record baselines score every record. Each
row takes the latest output of its key at or before it, which is what the detector had output
by the time that row arrived. Rows before a key's first output get score 0 and no alert.
Rejected rows take their key's latest output too, and rows without a decodable key get score 0.

Per-row score files (``scores/<detector>/<file>.csv``) have one line per source row::

    row,timestamp,key,label,accepted,output,score,threshold,anomaly_score,alert,alert_onset

``row`` counts from 0 in source order. ``timestamp`` is ISO 8601 UTC, empty when the row could
not be decoded. ``label`` is the benchmark label (0/1). ``accepted`` is 0 for a dead-lettered
row. ``output`` is 1 on the rows where the detector produced an output. ``score`` is the
detector's raw anomaly score (higher is more anomalous) and ``threshold`` the running threshold
it was compared with, empty until the key has one. ``anomaly_score`` is the score mapped to
[0, 1) online by :class:`OnlineRank`, 0 during the warm-up. ``alert`` is 1 while an alert is
open and ``alert_onset`` is 1 on the row whose output opened an alert. The filled columns
(score, threshold, anomaly_score, alert) serve the threshold-free and event metrics; NAB scores
``anomaly_score`` on output rows only (:attr:`FileScores.detection_score`).
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikewatch.alerting import format_timestamp

#: Columns of a per-row score file and what each holds, as the report prints them.
SCORE_COLUMNS = (
    ("row", "row number in source order, from 0"),
    ("timestamp", "ISO 8601 UTC; empty when the row could not be decoded"),
    ("key", "stream key; empty when the row could not be decoded"),
    ("label", "benchmark label, 0 or 1 (never shown to a detector)"),
    ("accepted", "0 when the pipeline dead-lettered the row"),
    ("output", "1 when the detector produced an output on this row"),
    ("score", "raw anomaly score, higher is more anomalous; latest output of the key"),
    ("threshold", "running threshold the score was compared with; empty until there is one"),
    ("anomaly_score", "score mapped to [0, 1) online; 0 during the warm-up"),
    ("alert", "1 while an alert of the key is open"),
    ("alert_onset", "1 on the row whose output opened an alert"),
)


class OnlineRank:
    """Map each score to the share of the earlier scores below it, ``lower / (earlier + 1)``.

    This is one minus the conformal p-value of the score against the scores before it, so it
    lies in [0, 1), uses no future data and needs no assumption about the score's scale. A new
    maximum after ``n`` scores maps to ``n / (n + 1)``: early maxima stay well below 1, which
    keeps a threshold near 1 from firing on every new maximum right after the warm-up.

    Examples
    --------
    >>> rank = OnlineRank()
    >>> [round(rank(score), 3) for score in (3.0, 1.0, 2.0, 5.0, 2.0)]
    [0.0, 0.0, 0.333, 0.75, 0.2]
    """

    __slots__ = ("_sorted",)

    def __init__(self) -> None:
        self._sorted: list[float] = []

    def __call__(self, score: float) -> float:
        past = self._sorted
        fraction = bisect.bisect_left(past, score) / (len(past) + 1)
        bisect.insort(past, score)
        return fraction


@dataclass
class FileScores:
    """One detector's per-row outputs on one file (see the module docstring)."""

    score: np.ndarray
    threshold: np.ndarray
    anomaly_score: np.ndarray
    alert: np.ndarray
    alert_onset: np.ndarray
    #: True on the rows where the detector produced an output (a window's newest record).
    output: np.ndarray
    #: Outputs the detector produced (windows for spikewatch, records for the baselines).
    outputs: int
    #: Wall-clock seconds of the detector's run on the file.
    seconds: float

    @property
    def detection_score(self) -> np.ndarray:
        """The [0, 1) score on output rows and 0 elsewhere: one detection chance per output.

        NAB counts every detected row, so a window's score applies to its newest record only.
        Filled into the rows up to the next window, one window would count up to
        ``windows.stride`` times.
        """
        return np.where(self.output, self.anomaly_score, 0.0)


class RowOutputs:
    """Collects outputs by row, then fills the rows in between per key."""

    def __init__(self, n_rows: int) -> None:
        self.score = np.full(n_rows, np.nan)
        self.threshold = np.full(n_rows, np.nan)
        self.anomaly_score = np.full(n_rows, np.nan)
        self.alert = np.full(n_rows, np.nan)
        self.alert_onset = np.zeros(n_rows, dtype=bool)
        self.has_output = np.zeros(n_rows, dtype=bool)
        self.outputs = 0

    def set(
        self,
        row: int,
        *,
        score: float,
        threshold: float | None,
        anomaly_score: float,
        alert_open: bool,
        alert_onset: bool,
    ) -> None:
        self.score[row] = score
        self.threshold[row] = np.nan if threshold is None else threshold
        self.anomaly_score[row] = anomaly_score
        self.alert[row] = float(alert_open)
        self.alert_onset[row] |= alert_onset
        self.has_output[row] = True
        self.outputs += 1

    def finish(self, keys: list[str | None], seconds: float) -> FileScores:
        """Fill each row from its key's latest output at or before it."""
        groups: dict[str, list[int]] = {}
        for row, key in enumerate(keys):
            if key is not None:
                groups.setdefault(key, []).append(row)
        filled = {name: np.zeros(len(keys)) for name in ("score", "anomaly_score", "alert")}
        filled["threshold"] = np.full(len(keys), np.nan)
        for rows in groups.values():
            rows = np.asarray(rows)
            has = self.has_output[rows]
            # Position of the latest output at or before each row of the key, -1 before the first.
            latest = np.maximum.accumulate(np.where(has, np.arange(rows.size), -1))
            known = latest >= 0
            source_rows = rows[latest[known]]
            for name in filled:
                filled[name][rows[known]] = getattr(self, name)[source_rows]
        return FileScores(
            score=filled["score"],
            threshold=filled["threshold"],
            anomaly_score=filled["anomaly_score"],
            alert=filled["alert"].astype(bool),
            alert_onset=self.alert_onset.copy(),
            output=self.has_output.copy(),
            outputs=self.outputs,
            seconds=seconds,
        )


def write_scores(
    path: Path,
    *,
    keys: list[str | None],
    timestamps: np.ndarray,
    labels: np.ndarray,
    accepted: np.ndarray,
    scores: FileScores,
) -> None:
    """Write one per-row score file in the format of the module docstring."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([name for name, _ in SCORE_COLUMNS])
        for row, key in enumerate(keys):
            stamp = timestamps[row]
            threshold = scores.threshold[row]
            writer.writerow(
                [
                    row,
                    "" if np.isnan(stamp) else format_timestamp(float(stamp)),
                    "" if key is None else key,
                    int(labels[row]),
                    int(accepted[row]),
                    int(scores.output[row]),
                    f"{scores.score[row]:.9g}",
                    "" if np.isnan(threshold) else f"{threshold:.9g}",
                    f"{scores.anomaly_score[row]:.6g}",
                    int(scores.alert[row]),
                    int(scores.alert_onset[row]),
                ]
            )
