"""Numenta Anomaly Benchmark (NAB v1.1) scoring: per-file scores, threshold sweep, normalisation.

The definitions follow NAB v1.1 (``nab/sweeper.py``, ``nab/scorer.py`` and ``nab/runner.py``
of https://github.com/numenta/NAB):

* The first ``min(floor(0.15 * n), 0.15 * 5000)`` rows of a file are a probationary period that
  is never scored, because a streaming detector needs rows to learn from.
* Each label window is scored once. Its earliest detection earns ``A_TP * s(p) / s(-1)`` with
  the scaled sigmoid ``s(p) = 2 / (1 + exp(5 p)) - 1`` and ``p = -(end - row + 1) / width``.
  A detection on the window's first row earns exactly ``A_TP`` and later ones earn less.
  A window without a detection costs ``A_FN``.
* Each detection outside every window adds ``A_FP * s(p)`` with
  ``p = (row - previous_end) / (previous_width - 1)``. That is close to zero right after a
  window and reaches ``-A_FP`` from 3 widths on, or when no window precedes the row.
* TP, FP, FN and TN are row counts over the scored rows, as NAB reports them.

The weights ``A_TP``, ``A_FP`` and ``A_FN`` are NAB's ``config/profiles.json`` cost matrices,
copied in :data:`NAB_PROFILES`. NAB's ``tnWeight`` is unused by its scorer and is not kept.

References
----------
.. [1] A. Lavin and S. Ahmad, "Evaluating Real-time Anomaly Detection Algorithms - the Numenta
   Anomaly Benchmark", IEEE ICMLA 2015.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

#: Fraction of each file that forms the unscored probationary period.
PROBATION_PERCENT = 0.15
#: The probationary period is capped at ``PROBATION_PERCENT * PROBATION_CAP_ROWS`` rows.
PROBATION_CAP_ROWS = 5000
#: Steepness of NAB's scaled sigmoid: ``s(p) = 2 / (1 + exp(SIGMOID_SCALE * p)) - 1``.
SIGMOID_SCALE = 5.0
#: Relative positions at or past this many window widths score a flat -1.
FAR_POSITION = 3.0


@dataclass(frozen=True)
class CostProfile:
    """NAB application profile: weights of a true positive, false positive and false negative."""

    tp_weight: float
    fp_weight: float
    fn_weight: float


#: NAB v1.1 profiles, as in its ``config/profiles.json``.
NAB_PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    "reward_low_FP_rate": CostProfile(tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    "reward_low_FN_rate": CostProfile(tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
}


@dataclass(frozen=True)
class NabScore:
    """Raw NAB score of one or more files, with row counts over the scored rows."""

    score: float
    tp: int
    fp: int
    fn: int
    tn: int


@dataclass(frozen=True)
class ThresholdScore(NabScore):
    """NAB score reached when rows with ``anomaly_score >= threshold`` are detections."""

    threshold: float = math.nan


@dataclass(frozen=True)
class ThresholdCurve:
    """Raw NAB score at every distinct threshold, ordered from the highest threshold down.

    The first entry is just above the maximum anomaly score, so it detects nothing.
    """

    thresholds: np.ndarray
    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray


def load_profiles(path: str | Path) -> dict[str, CostProfile]:
    """Read NAB's ``profiles.json`` into :class:`CostProfile` objects keyed by profile name."""
    with open(path, encoding="utf-8") as file:
        raw = json.load(file)
    return {
        name: CostProfile(
            tp_weight=float(entry["CostMatrix"]["tpWeight"]),
            fp_weight=float(entry["CostMatrix"]["fpWeight"]),
            fn_weight=float(entry["CostMatrix"]["fnWeight"]),
        )
        for name, entry in raw.items()
    }


def load_windows(path: str | Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """Read NAB label windows (``labels/combined_windows.json``) keyed by relative data path.

    Each window is an inclusive ``(start, end)`` pair of ``datetime64[us]`` timestamps.
    """
    with open(path, encoding="utf-8") as file:
        raw = json.load(file)
    return {
        name: [(np.datetime64(start, "us"), np.datetime64(end, "us")) for start, end in windows]
        for name, windows in raw.items()
    }


def read_nab_csv(path: str | Path, column: str = "value") -> tuple[np.ndarray, np.ndarray]:
    """Read a NAB data or results CSV and return ``(timestamps, values)`` of one column.

    ``column`` is ``"value"`` for data files and ``"anomaly_score"`` for results files.
    Timestamps are ``datetime64[s]``, values are float64.
    """
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        if "timestamp" not in header or column not in header:
            raise ValueError(
                f"{path}: column 'timestamp' or {column!r} is missing from header {header}"
            )
        time_index, value_index = header.index("timestamp"), header.index(column)
        rows = list(reader)
    timestamps = np.array([row[time_index] for row in rows], dtype="datetime64[s]")
    values = np.array([row[value_index] for row in rows], dtype=np.float64)
    return timestamps, values


def windows_to_rows(timestamps: ArrayLike, windows: Sequence[tuple]) -> np.ndarray:
    """Convert timestamp windows to inclusive ``(first_row, last_row)`` pairs, shape ``(k, 2)``.

    When both window ends occur in ``timestamps``, the window runs from the first row equal to
    ``start`` to the first row equal to ``end``, as in NAB. This matters because some NAB files
    repeat timestamps or step back at daylight-saving changes. Otherwise the window covers the
    rows whose timestamp lies in ``[start, end]``, which requires non-decreasing timestamps.
    """
    times = np.asarray(timestamps)
    if times.ndim != 1:
        raise ValueError(f"timestamps must be 1-D, got shape {times.shape}")
    monotone = times.size < 2 or bool(np.all(times[1:] >= times[:-1]))
    rows = np.empty((len(windows), 2), dtype=np.int64)
    for k, (start, end) in enumerate(windows):
        start, end = np.asarray(start, dtype=times.dtype), np.asarray(end, dtype=times.dtype)
        start_rows, end_rows = np.flatnonzero(times == start), np.flatnonzero(times == end)
        if start_rows.size and end_rows.size:
            first, last = int(start_rows[0]), int(end_rows[0])
        elif monotone:
            first = int(np.searchsorted(times, start, side="left"))
            last = int(np.searchsorted(times, end, side="right")) - 1
        else:
            raise ValueError(
                f"window {k} ({start}, {end}): its ends are not timestamps of the file and the"
                " timestamps are not sorted, so the rows it covers are undefined"
            )
        if first > last:
            raise ValueError(f"window {k} ({start}, {end}) contains no row of the file")
        rows[k] = first, last
    return rows


def probation_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Return the number of leading rows that NAB leaves unscored.

    This is ``min(floor(probation_percent * n_rows), probation_percent * 5000)``, rounded up
    because NAB scores row ``i`` when ``i >= `` that value.
    """
    if not 0.0 <= probation_percent < 1.0:
        raise ValueError(f"probation_percent must be in [0, 1), got {probation_percent}")
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    limit = min(math.floor(probation_percent * n_rows), probation_percent * PROBATION_CAP_ROWS)
    return math.ceil(limit)


def scaled_sigmoid(position: ArrayLike) -> np.ndarray:
    """Return NAB's ``2 / (1 + exp(5 p)) - 1``, which is -1 for ``p >= 3``.

    It is 0.98661 at the left edge of a window (``p = -1``), 0 at its right edge (``p = 0``)
    and -0.98661 one window width after it (``p = 1``).
    """
    p = np.asarray(position, dtype=np.float64)
    clipped = np.minimum(p, FAR_POSITION)
    return np.where(p >= FAR_POSITION, -1.0, 2.0 / (1.0 + np.exp(SIGMOID_SCALE * clipped)) - 1.0)


def _validate_window_rows(window_rows: ArrayLike, n_rows: int) -> np.ndarray:
    rows = np.asarray(window_rows, dtype=np.int64).reshape(-1, 2)
    if rows.size == 0:
        return rows
    if np.any(rows[:, 0] > rows[:, 1]) or rows[0, 0] < 0 or rows[-1, 1] >= n_rows:
        raise ValueError(
            f"window_rows must be (first, last) pairs with 0 <= first <= last < {n_rows},"
            f" got {rows.tolist()}"
        )
    if np.any(rows[1:, 0] <= rows[:-1, 1]):
        raise ValueError(f"window_rows must be sorted and must not overlap, got {rows.tolist()}")
    return rows


def _row_weights(
    n_rows: int, window_rows: np.ndarray, profile: CostProfile, probation_percent: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return each row's weight if detected, its window index (-1 outside) and a scored mask."""
    index = np.arange(n_rows)
    window_id = np.full(n_rows, -1, dtype=np.int64)
    weight = np.empty(n_rows, dtype=np.float64)
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (first, last) in enumerate(window_rows):
        position = -(last - index[first : last + 1] + 1) / (last - first + 1)
        weight[first : last + 1] = scaled_sigmoid(position) * profile.tp_weight / max_tp
        window_id[first : last + 1] = k

    outside = np.flatnonzero(window_id < 0)
    previous = np.searchsorted(window_rows[:, 1], outside, side="left") - 1
    position = np.full(outside.size, np.inf)
    has_previous = previous >= 0
    previous_last = window_rows[previous[has_previous], 1]
    previous_width = previous_last - window_rows[previous[has_previous], 0] + 1
    # NOTE: NAB divides by (width - 1) and fails after a one-row window. Here such a window
    # counts as infinitely narrow, so each later false positive costs the full -A_FP.
    with np.errstate(divide="ignore", invalid="ignore"):
        position[has_previous] = np.where(
            previous_width > 1,
            (outside[has_previous] - previous_last) / (previous_width - 1),
            np.inf,
        )
    weight[outside] = scaled_sigmoid(position) * profile.fp_weight
    scored = index >= probation_length(n_rows, probation_percent)
    return weight, window_id, scored


def score_file(
    detections: ArrayLike,
    window_rows: ArrayLike,
    profile: CostProfile,
    probation_percent: float = PROBATION_PERCENT,
) -> NabScore:
    """Score one file's boolean detections against its label windows.

    Parameters
    ----------
    detections : array_like of bool, shape (n,)
        True where the detector raised an alert on that row.
    window_rows : array_like of int, shape (k, 2)
        Inclusive ``(first_row, last_row)`` label windows, sorted and disjoint
        (see :func:`windows_to_rows`).
    profile : CostProfile
        Weights, e.g. ``NAB_PROFILES["standard"]``.
    probation_percent : float
        Leading fraction of the file left unscored, 0.15 in NAB.

    Returns
    -------
    NabScore
        Raw score and row counts. Windows without any scored row contribute nothing.
    """
    detected = np.asarray(detections)
    if detected.ndim != 1:
        raise ValueError(f"detections must be 1-D, got shape {detected.shape}")
    if not np.isin(detected, (0, 1)).all():
        raise ValueError(
            "detections must contain only booleans or 0/1. Compare anomaly scores with a"
            " threshold first"
        )
    detected = detected.astype(bool)
    rows = _validate_window_rows(window_rows, detected.size)
    weight, window_id, scored = _row_weights(detected.size, rows, profile, probation_percent)

    active = detected & scored
    inside = window_id >= 0
    score = float(np.sum(weight[active & ~inside]))
    for k in np.unique(window_id[scored & inside]):
        hits = active & (window_id == k)
        score += float(np.max(weight[hits])) if hits.any() else -profile.fn_weight
    return NabScore(
        score=score,
        tp=int(np.sum(active & inside)),
        fp=int(np.sum(active & ~inside)),
        fn=int(np.sum(scored & ~detected & inside)),
        tn=int(np.sum(scored & ~detected & ~inside)),
    )


def threshold_curve(
    anomaly_scores: Sequence[ArrayLike],
    window_rows: Sequence[ArrayLike],
    profile: CostProfile,
    probation_percent: float = PROBATION_PERCENT,
) -> ThresholdCurve:
    """Compute the summed raw score of several files at every distinct threshold.

    The method is NAB's sweeper: all scored rows of all files are sorted once by anomaly score
    and the score is updated row by row, in ``O(n log n)`` for ``n`` rows in total.
    A row is a detection at threshold ``t`` when its anomaly score is ``>= t``.
    """
    if len(anomaly_scores) != len(window_rows):
        raise ValueError(
            f"anomaly_scores has {len(anomaly_scores)} files but window_rows has {len(window_rows)}"
        )
    values, weights, groups = [], [], []
    n_windows = 0
    for file_scores, file_windows in zip(anomaly_scores, window_rows):
        file_scores = np.asarray(file_scores, dtype=np.float64)
        if file_scores.ndim != 1 or not np.all(np.isfinite(file_scores)):
            raise ValueError(
                f"anomaly_scores[{len(values)}] must be a 1-D array of finite values,"
                f" got shape {file_scores.shape} and {np.sum(~np.isfinite(file_scores))} NaN or inf"
            )
        rows = _validate_window_rows(file_windows, file_scores.size)
        weight, window_id, scored = _row_weights(file_scores.size, rows, profile, probation_percent)
        values.append(file_scores[scored])
        weights.append(weight[scored])
        groups.append(np.where(window_id[scored] >= 0, window_id[scored] + n_windows, -1))
        n_windows += len(rows)

    value, weight, group = np.concatenate(values), np.concatenate(weights), np.concatenate(groups)
    if value.size == 0:
        raise ValueError("anomaly_scores contain no scored rows")
    order = np.argsort(-value, kind="stable")
    value, weight, group = value[order], weight[order], group[order]

    # Each row adds its false-positive weight, or raises its window's best detection so far.
    gain = np.where(group < 0, weight, 0.0)
    in_window = np.flatnonzero(group >= 0)
    by_window = in_window[np.argsort(group[in_window], kind="stable")]
    splits = np.flatnonzero(np.diff(group[by_window])) + 1
    for positions in np.split(by_window, splits) if by_window.size else []:
        best = np.maximum.accumulate(np.concatenate(([-profile.fn_weight], weight[positions])))
        gain[positions] = np.diff(best)
    baseline = -profile.fn_weight * np.unique(group[in_window]).size

    # Thresholds are the distinct anomaly scores, and each cut falls after a block of ties.
    cut = np.append(np.flatnonzero(value[1:] != value[:-1]), value.size - 1)
    is_window_row = group >= 0
    tp = np.concatenate(([0], np.cumsum(is_window_row)[cut]))
    fp = np.concatenate(([0], np.cumsum(~is_window_row)[cut]))
    return ThresholdCurve(
        thresholds=np.concatenate(([np.nextafter(value[0], np.inf)], value[cut])),
        scores=baseline + np.concatenate(([0.0], np.cumsum(gain)[cut])),
        tp=tp,
        fp=fp,
        fn=int(is_window_row.sum()) - tp,
        tn=int((~is_window_row).sum()) - fp,
    )


def optimize_threshold(
    anomaly_scores: Sequence[ArrayLike],
    window_rows: Sequence[ArrayLike],
    profile: CostProfile,
    probation_percent: float = PROBATION_PERCENT,
) -> ThresholdScore:
    """Return the threshold with the best summed raw score over all files, as NAB's optimizer.

    Among equal scores the highest threshold wins, as in NAB.
    """
    curve = threshold_curve(anomaly_scores, window_rows, profile, probation_percent)
    best = int(np.argmax(curve.scores))
    return ThresholdScore(
        score=float(curve.scores[best]),
        tp=int(curve.tp[best]),
        fp=int(curve.fp[best]),
        fn=int(curve.fn[best]),
        tn=int(curve.tn[best]),
        threshold=float(curve.thresholds[best]),
    )


def null_score(
    n_rows: Sequence[int],
    window_rows: Sequence[ArrayLike],
    profile: CostProfile,
    probation_percent: float = PROBATION_PERCENT,
) -> float:
    """Return the raw score of a detector that never alerts, summed over files."""
    if len(n_rows) != len(window_rows):
        raise ValueError(f"n_rows has {len(n_rows)} files but window_rows has {len(window_rows)}")
    return sum(
        score_file(np.zeros(n, dtype=bool), rows, profile, probation_percent).score
        for n, rows in zip(n_rows, window_rows)
    )


def perfect_score(n_windows: int, profile: CostProfile) -> float:
    """Return the raw score of a detector that hits every window on its first row."""
    if n_windows < 0:
        raise ValueError(f"n_windows must be >= 0, got {n_windows}")
    return n_windows * profile.tp_weight


def normalized_score(raw: float, null: float, perfect: float) -> float:
    """Return NAB's normalized score ``100 * (raw - null) / (perfect - null)``.

    The null detector scores 0 and the perfect detector 100.
    """
    if perfect <= null:
        raise ValueError(f"perfect ({perfect}) must exceed null ({null})")
    return 100.0 * (raw - null) / (perfect - null)
