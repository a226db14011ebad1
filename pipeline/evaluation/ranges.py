"""Range- and event-aware metrics for per-row anomaly labels and detector outputs.

Threshold-free metrics take continuous anomaly scores: ROC-AUC, PR-AUC (average precision) and
VUS-ROC / VUS-PR. Binary metrics take boolean alerts: event-wise precision, recall and F1,
and the detection delay. Point-adjusted F1 is left out on purpose, because marking a whole
range as detected after one alert inflates the score of even random detectors.

References
----------
.. [1] J. Paparrizos, P. Boniol, T. Palpanas, R. S. Tsay, A. Elmore and M. J. Franklin,
   "Volume Under the Surface: A New Accuracy Evaluation Measure for Time-Series Anomaly
   Detection", PVLDB 15(11), 2022.
.. [2] TSB-AD 1.5 (Apache-2.0), ``TSB_AD/evaluation/basic_metrics.py``,
   https://github.com/TheDatumOrg/TSB-AD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass(frozen=True)
class VusScores:
    """Volumes under the range-ROC and range-PR surfaces, each in [0, 1]."""

    vus_roc: float
    vus_pr: float


@dataclass(frozen=True)
class EventScores:
    """Event-wise precision, recall and F1 with the event counts behind them."""

    precision: float
    recall: float
    f1: float
    detected_events: int
    missed_events: int
    false_positive_events: int


@dataclass(frozen=True)
class DetectionDelay:
    """Delay from each labeled range's first row to the first alert inside it.

    ``delays_rows`` has one entry per detected range, in range order. ``delays_seconds`` is
    None when no timestamps were given. Means are NaN when no range was detected.
    """

    mean_rows: float
    mean_seconds: float | None
    delays_rows: np.ndarray
    delays_seconds: np.ndarray | None
    detected_events: int
    missed_events: int


def _as_binary(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0/1 or booleans")
    return array.astype(bool)


def _labels_and_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    truth = _as_binary("labels", labels)
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != truth.shape:
        raise ValueError(f"scores shape {values.shape} differs from labels shape {truth.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"scores must be finite, got {np.sum(~np.isfinite(values))} NaN or inf")
    if truth.all() or not truth.any():
        raise ValueError("labels must contain both anomalous (1) and normal (0) rows")
    return truth, values


def label_ranges(labels: ArrayLike) -> np.ndarray:
    """Return the inclusive ``(first_row, last_row)`` of each run of 1s, shape ``(k, 2)``."""
    truth = _as_binary("labels", labels).astype(np.int8)
    edges = np.diff(np.concatenate(([0], truth, [0])))
    return np.column_stack((np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Return the point-wise area under the ROC curve (scikit-learn ``roc_auc_score``)."""
    truth, values = _labels_and_scores(labels, scores)
    return float(roc_auc_score(truth, values))


def pr_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Return the point-wise average precision (scikit-learn ``average_precision_score``)."""
    truth, values = _labels_and_scores(labels, scores)
    return float(average_precision_score(truth, values))


def _buffered_labels(truth: np.ndarray, ranges: np.ndarray, window: int) -> np.ndarray:
    """Extend each range by ``window // 2`` rows per side with weights ``sqrt(1 - d / window)``."""
    soft = truth.astype(np.float64)
    half, n = window // 2, truth.size
    if half == 0:
        return soft
    for first, last in ranges:
        right = np.arange(last + 1, min(last + half + 1, n))
        soft[right] += np.sqrt(1.0 - (right - last) / window)
        left = np.arange(max(first - half, 0), first)
        soft[left] += np.sqrt(1.0 - (first - left) / window)
    return np.minimum(soft, 1.0)


def _merged_ranges(ranges: np.ndarray, half: int, n: int) -> list[tuple[int, int]]:
    """Widen ranges by ``half`` rows per side and merge those that touch or overlap."""
    merged = []
    start = max(int(ranges[0, 0]) - half, 0)
    for (_, last), (next_first, _) in zip(ranges[:-1], ranges[1:]):
        if last + half < next_first - half:
            merged.append((start, int(last) + half))
            start = int(next_first) - half
    merged.append((start, min(int(ranges[-1, 1]) + half, n - 1)))
    return merged


def vus(
    labels: ArrayLike, scores: ArrayLike, sliding_window: int = 100, n_thresholds: int = 250
) -> VusScores:
    """Compute VUS-ROC and VUS-PR, the range-AUCs averaged over buffer lengths 0..L.

    For each buffer length ``l`` in ``0..sliding_window``, every labeled range gets soft labels
    ``sqrt(1 - d / l)`` on the ``l // 2`` rows beyond each edge, ``d`` being the distance to the
    edge. At each threshold, recall counts buffer rows with their soft weight and is multiplied
    by the fraction of (buffer-widened) ranges holding at least one alert. Precision divides
    the soft true positives by the number of alerts. The range-ROC and range-PR areas of each
    ``l`` are averaged over the ``sliding_window + 1`` lengths.

    This follows the ``opt`` implementation of TSB-AD 1.5 (``RangeAUC_volume_opt``, [2]_)
    step by step, with its thresholds: ``n_thresholds`` scores taken at evenly spaced ranks of the
    sorted scores. Each buffer length costs ``O(n)`` after a single sort.

    Parameters
    ----------
    labels : array_like of {0, 1}, shape (n,)
        Ground truth per row, with both classes present.
    scores : array_like of float, shape (n,)
        Anomaly score per row, higher means more anomalous.
    sliding_window : int
        Maximum buffer length L in rows, 100 by default as in TSB-AD's ``get_metrics``.
    n_thresholds : int
        Number of thresholds per curve, 250 in TSB-AD.
    """
    truth, values = _labels_and_scores(labels, scores)
    if sliding_window < 0:
        raise ValueError(f"sliding_window must be >= 0, got {sliding_window}")
    if n_thresholds < 1:
        raise ValueError(f"n_thresholds must be >= 1, got {n_thresholds}")
    n, positives = truth.size, float(truth.sum())
    ranges = label_ranges(truth)

    order = np.argsort(-values, kind="stable")
    descending = values[order]
    thresholds = descending[np.linspace(0, n - 1, n_thresholds).astype(int)]
    n_alerts = n - np.searchsorted(np.sort(values), thresholds, side="left")
    true_hits = np.cumsum(truth[order])[n_alerts - 1]

    auc_per_window, ap_per_window = [], []
    for window in range(sliding_window + 1):
        buffer = _buffered_labels(truth, ranges, window) * ~truth
        buffer_hits = np.cumsum(buffer[order])[n_alerts - 1]
        segments = _merged_ranges(ranges, window // 2, n)
        segment_max = np.array([values[first : last + 1].max() for first, last in segments])
        existence = (segment_max[None, :] >= thresholds[:, None]).sum(axis=1) / len(segments)

        hits = true_hits + buffer_hits
        positives_soft = positives + buffer_hits / 2.0
        tpr = np.minimum(hits / positives_soft, 1.0) * existence
        fpr = (n_alerts - hits) / (n - positives_soft)
        precision = hits / n_alerts

        tpr_curve = np.concatenate(([0.0], tpr, [1.0]))
        fpr_curve = np.concatenate(([0.0], fpr, [1.0]))
        auc_per_window.append(np.sum(np.diff(fpr_curve) * (tpr_curve[1:] + tpr_curve[:-1]) / 2))
        ap_per_window.append(np.sum(np.diff(tpr_curve[:-1]) * precision))
    return VusScores(vus_roc=float(np.mean(auc_per_window)), vus_pr=float(np.mean(ap_per_window)))


def vus_pr(
    labels: ArrayLike, scores: ArrayLike, sliding_window: int = 100, n_thresholds: int = 250
) -> float:
    """Return VUS-PR, as defined in :func:`vus`."""
    return vus(labels, scores, sliding_window, n_thresholds).vus_pr


def _alerts_for(labels: ArrayLike, alerts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    truth, alerted = _as_binary("labels", labels), _as_binary("alerts", alerts)
    if truth.shape != alerted.shape:
        raise ValueError(f"alerts shape {alerted.shape} differs from labels shape {truth.shape}")
    return truth, alerted


def event_scores(labels: ArrayLike, alerts: ArrayLike) -> EventScores:
    """Compute event-wise precision, recall and F1.

    An event is a run of consecutive labeled rows. It is detected when at least one alert falls
    inside it. A false-positive event is a run of consecutive alerts that touches no labeled
    row, so alerts that continue past the end of an event are not counted against it.
    Precision is ``detected / (detected + false_positive_events)`` and recall is
    ``detected / events``. Each is NaN when its denominator is zero, and F1 is NaN when either
    is NaN.
    """
    truth, alerted = _alerts_for(labels, alerts)
    events = label_ranges(truth)
    detected = sum(bool(alerted[first : last + 1].any()) for first, last in events)
    false_positive_events = sum(
        not truth[first : last + 1].any() for first, last in label_ranges(alerted)
    )
    claimed = detected + false_positive_events
    precision = detected / claimed if claimed else math.nan
    recall = detected / len(events) if len(events) else math.nan
    if math.isnan(precision) or math.isnan(recall):
        f1 = math.nan
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return EventScores(
        precision=precision,
        recall=recall,
        f1=f1,
        detected_events=detected,
        missed_events=len(events) - detected,
        false_positive_events=false_positive_events,
    )


def detection_delay(
    labels: ArrayLike, alerts: ArrayLike, timestamps: ArrayLike | None = None
) -> DetectionDelay:
    """Measure the delay from each labeled range's first row to the first alert inside it.

    Ranges without an alert count as missed and add no delay. ``timestamps`` may be
    ``datetime64`` values or numbers in seconds. With them, delays are also given in seconds.
    """
    truth, alerted = _alerts_for(labels, alerts)
    seconds = None
    if timestamps is not None:
        times = np.asarray(timestamps)
        if times.shape != truth.shape:
            raise ValueError(f"timestamps shape {times.shape} differs from labels {truth.shape}")
        if np.issubdtype(times.dtype, np.datetime64):
            seconds = (times - times[0]) / np.timedelta64(1, "s")
        else:
            seconds = times.astype(np.float64)

    delays_rows, delays_seconds = [], []
    events = label_ranges(truth)
    for first, last in events:
        inside = np.flatnonzero(alerted[first : last + 1])
        if inside.size:
            delays_rows.append(int(inside[0]))
            if seconds is not None:
                delays_seconds.append(float(seconds[first + inside[0]] - seconds[first]))
    rows = np.array(delays_rows, dtype=np.int64)
    in_seconds = None if seconds is None else np.array(delays_seconds)
    return DetectionDelay(
        mean_rows=float(rows.mean()) if rows.size else math.nan,
        mean_seconds=None if in_seconds is None else (
            float(in_seconds.mean()) if in_seconds.size else math.nan
        ),
        delays_rows=rows,
        delays_seconds=in_seconds,
        detected_events=rows.size,
        missed_events=len(events) - rows.size,
    )
