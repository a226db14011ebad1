"""Benchmark figures of each detector from its per-row outputs on every file.

* NAB (files with label windows): the three profiles. The threshold on the [0, 1) score of the
  output rows (:attr:`~.scores.FileScores.detection_score`) is optimised per profile over all
  files, and the score is normalised against the null and perfect detectors (:mod:`.nab`).
  Beside them are the same scores with the detector's own alert onsets as detections, which
  needs no threshold sweep on the labels.
* SKAB (files with changepoint marks): F1, FAR and MAR of the per-row alert state pooled over
  all files, and the changepoint NAB score of the rows where the alert state changes
  (:mod:`.skab`).
* Every benchmark, on the rows after each file's warm-up: ROC-AUC, PR-AUC, VUS-ROC and VUS-PR
  of the filled [0, 1) row score, averaged over the files that hold both classes there;
  event-wise precision, recall and F1 of the alert state with events pooled over all files;
  and the mean delay from the first row of a labeled range to the first alert in it, over the
  ranges that were detected (:mod:`.ranges`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikewatch.evaluation import nab, ranges, skab
from spikewatch.evaluation.benchmarks import BenchmarkFile
from spikewatch.evaluation.rows import RowTable
from spikewatch.evaluation.scores import FileScores


@dataclass
class FileResult:
    """One file's rows and every detector's outputs on it."""

    file: BenchmarkFile
    rows: RowTable
    warmup_rows: int | None
    scores: dict[str, FileScores]

    @property
    def labels(self) -> np.ndarray:
        """0/1 per row: NAB's label windows where the file has them, else the record labels."""
        if self.file.window_rows is None:
            return self.rows.labels.astype(bool)
        labels = np.zeros(len(self.rows), dtype=bool)
        for first, last in self.file.window_rows:
            labels[first : last + 1] = True
        return labels


def _mean(values: list[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return float(np.mean(finite)) if finite else math.nan


def nab_figures(results: list[FileResult], detector: str) -> dict:
    """NAB scores per profile, with the optimised threshold and with the alert onsets."""
    windows = [result.file.window_rows for result in results]
    n_rows = [len(result.rows) for result in results]
    n_windows = sum(len(rows) for rows in windows)
    anomaly_scores = [result.scores[detector].detection_score for result in results]
    onsets = [result.scores[detector].alert_onset for result in results]
    figures: dict = {"windows": n_windows, "profiles": {}, "alerts": {}}
    for name, profile in nab.NAB_PROFILES.items():
        null = nab.null_score(n_rows, windows, profile)
        perfect = nab.perfect_score(n_windows, profile)
        best = nab.optimize_threshold(anomaly_scores, windows, profile)
        per_file = [
            nab.score_file(scores >= best.threshold, rows, profile)
            for scores, rows in zip(anomaly_scores, windows)
        ]
        alert_raw = sum(
            nab.score_file(onset, rows, profile).score for onset, rows in zip(onsets, windows)
        )
        normalizable = perfect > null
        figures["profiles"][name] = {
            "score": nab.normalized_score(best.score, null, perfect) if normalizable else None,
            "raw": best.score,
            "null": null,
            "perfect": perfect,
            "threshold": best.threshold,
            "tp": best.tp,
            "fp": best.fp,
            "fn": best.fn,
            "tn": best.tn,
            "files": {
                result.file.name: score.score for result, score in zip(results, per_file)
            },
        }
        figures["alerts"][name] = {
            "score": nab.normalized_score(alert_raw, null, perfect) if normalizable else None,
            "raw": alert_raw,
        }
    return figures


def _changepoint_rows(alerts: np.ndarray) -> np.ndarray:
    """Rows where the alert state changes, the first row counting as a change from no alert."""
    changes = np.abs(np.diff(alerts.astype(np.int8), prepend=0))
    return changes.astype(bool)


def skab_figures(results: list[FileResult], detector: str) -> dict:
    """SKAB outlier scores (F1, FAR %, MAR %) and the changepoint NAB scores."""
    labels = [result.labels for result in results]
    alerts = [result.scores[detector].alert for result in results]
    binary = skab.binary_scores(labels, alerts)
    figures = {
        "f1": binary.f1,
        "far": binary.far,
        "mar": binary.mar,
        "tp": binary.tp,
        "fp": binary.fp,
        "fn": binary.fn,
        "tn": binary.tn,
    }
    marked = [
        (result.rows.extra[result.file.changepoint_field] >= 0.5, result.rows.timestamps)
        for result in results
    ]
    if any(changepoints.any() for changepoints, _ in marked):
        timestamps = [stamps for _, stamps in marked]
        if any(np.isnan(stamps).any() for stamps in timestamps):
            timestamps = None  # an undecodable row has no time: row numbers are the time axis
        figures["changepoint_nab"] = skab.changepoint_nab_scores(
            [changepoints for changepoints, _ in marked],
            [_changepoint_rows(alert) for alert in alerts],
            timestamps=timestamps,
        )
    return figures


def range_figures(results: list[FileResult], detector: str) -> tuple[dict, dict[str, dict]]:
    """Threshold-free, event-wise and delay figures: the totals and the figures per file."""
    per_file: dict[str, dict] = {}
    delays_rows, delays_seconds = [], []
    detected = missed = false_events = 0
    for result in results:
        # The warm-up rows are the detectors' training part; like NAB's probationary period
        # they are not scored.
        start = result.warmup_rows or 0
        scores, labels = result.scores[detector], result.labels[start:]
        anomaly_score, alert = scores.anomaly_score[start:], scores.alert[start:]
        figures: dict = {
            "rows": len(result.rows),
            "scored_rows": len(labels),
            "alerts": int(scores.alert_onset.sum()),
            "roc_auc": math.nan,
            "pr_auc": math.nan,
            "vus_roc": math.nan,
            "vus_pr": math.nan,
        }
        if labels.any() and not labels.all():
            figures["roc_auc"] = ranges.roc_auc(labels, anomaly_score)
            figures["pr_auc"] = ranges.pr_auc(labels, anomaly_score)
            volume = ranges.vus(labels, anomaly_score)
            figures["vus_roc"], figures["vus_pr"] = volume.vus_roc, volume.vus_pr
        events = ranges.event_scores(labels, alert)
        figures["event_f1"] = events.f1
        detected += events.detected_events
        missed += events.missed_events
        false_events += events.false_positive_events
        stamps = result.rows.timestamps[start:]
        delay = ranges.detection_delay(labels, alert, None if np.isnan(stamps).any() else stamps)
        delays_rows.extend(delay.delays_rows.tolist())
        if delay.delays_seconds is not None:
            delays_seconds.extend(delay.delays_seconds.tolist())
        per_file[result.file.name] = figures

    claimed = detected + false_events
    precision = detected / claimed if claimed else math.nan
    recall = detected / (detected + missed) if detected + missed else math.nan
    # A detector that raises no alert has no precision; with events to find, its F1 is 0.
    f1 = 0.0 if recall == 0.0 else math.nan
    if not (math.isnan(precision) or math.isnan(recall)):
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    totals = {
        "roc_auc": _mean([f["roc_auc"] for f in per_file.values()]),
        "pr_auc": _mean([f["pr_auc"] for f in per_file.values()]),
        "vus_roc": _mean([f["vus_roc"] for f in per_file.values()]),
        "vus_pr": _mean([f["vus_pr"] for f in per_file.values()]),
        "files_with_both_classes": sum(not math.isnan(f["roc_auc"]) for f in per_file.values()),
        "event_precision": precision,
        "event_recall": recall,
        "event_f1": f1,
        "events_detected": detected,
        "events_missed": missed,
        "false_positive_events": false_events,
        "mean_delay_rows": float(np.mean(delays_rows)) if delays_rows else math.nan,
        "mean_delay_seconds": float(np.mean(delays_seconds)) if delays_seconds else math.nan,
    }
    return totals, per_file


def detector_figures(results: list[FileResult], detector: str) -> dict:
    """Every figure of one detector over the files of a benchmark."""
    totals, per_file = range_figures(results, detector)
    seconds = sum(result.scores[detector].seconds for result in results)
    accepted = sum(int(result.rows.accepted.sum()) for result in results)
    figures = {
        "ranges": totals,
        "files": per_file,
        "seconds": seconds,
        "records_per_second": accepted / seconds if seconds > 0 else math.nan,
        "outputs": sum(result.scores[detector].outputs for result in results),
    }
    if all(result.file.window_rows is not None for result in results):
        figures["nab"] = nab_figures(results, detector)
        for name, profile in figures["nab"]["profiles"].items():
            for file_name, score in profile["files"].items():
                per_file[file_name][f"nab_{name}"] = score
    if all(result.file.changepoint_field for result in results):
        figures["skab"] = skab_figures(results, detector)
    return figures
