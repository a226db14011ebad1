"""Benchmark figures of each detector from its per-row outputs on every file.

* NAB (files with label windows): the three profiles. The threshold on the [0, 1) score of the
  output rows (:attr:`~.scores.FileScores.detection_score`) is optimised per profile over all
  files, and the score is normalised against the null and perfect detectors (:mod:`.nab`).
  Beside them are the same scores with the detector's own alert onsets as detections, which
  needs no threshold sweep on the labels.
* SKAB (files with changepoint marks): F1, FAR and MAR of the per-row alert state pooled over
  all files, and the changepoint NAB score of the rows where the alert state changes
  (:mod:`.skab`).
* Every benchmark, on the rows after each file's warm-up (:mod:`.ranges`). ROC-AUC, PR-AUC,
  VUS-ROC and VUS-PR of the filled [0, 1) row score are averaged over the files that contain
  both classes there. Event-wise precision, recall and F1 of the alert state pool the events of
  all files. The mean delay runs from the first row of a labeled range to the first alert in
  it, over the ranges that were detected.
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
    #: Rows of each key that the detectors learned from before scoring, None: as configured.
    warmup_rows: int | None
    #: Rows of each key that range, event and delay figures skip: ``warmup_rows``, or the
    #: configured warm-up in records of one key.
    scored_from: int
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
            "files": {result.file.name: score.score for result, score in zip(results, per_file)},
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


def _series_rows(result: FileResult) -> list[np.ndarray]:
    """Row numbers of each key's scored rows, in order: the key's rows after its warm-up.

    Rows that could not be decoded have no key and are left out.
    """
    by_key: dict[str, list[int]] = {}
    for row, key in enumerate(result.rows.keys):
        if key is not None:
            by_key.setdefault(key, []).append(row)
    return [
        np.asarray(rows[result.scored_from :])
        for rows in by_key.values()
        if len(rows) > result.scored_from
    ]


@dataclass
class _EventTotals:
    detected: int = 0
    missed: int = 0
    false_events: int = 0

    def add(self, events: ranges.EventScores) -> None:
        self.detected += events.detected_events
        self.missed += events.missed_events
        self.false_events += events.false_positive_events

    def figures(self) -> dict:
        claimed = self.detected + self.false_events
        precision = self.detected / claimed if claimed else math.nan
        found = self.detected + self.missed
        recall = self.detected / found if found else math.nan
        # A detector that raises no alert has no precision; with events to find, its F1 is 0.
        f1 = 0.0 if recall == 0.0 else math.nan
        if not (math.isnan(precision) or math.isnan(recall)):
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "event_precision": precision,
            "event_recall": recall,
            "event_f1": f1,
            "events_detected": self.detected,
            "events_missed": self.missed,
            "false_positive_events": self.false_events,
        }


def _threshold_free(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if not labels.any() or labels.all():
        return dict.fromkeys(("roc_auc", "pr_auc", "vus_roc", "vus_pr"), math.nan)
    volume = ranges.vus(labels, scores)
    return {
        "roc_auc": ranges.roc_auc(labels, scores),
        "pr_auc": ranges.pr_auc(labels, scores),
        "vus_roc": volume.vus_roc,
        "vus_pr": volume.vus_pr,
    }


def range_figures(results: list[FileResult], detector: str) -> tuple[dict, dict[str, dict]]:
    """Compute the threshold-free, event and delay figures: the totals and those per file.

    Each key of a file is one series. Areas are averaged over the series that contain both
    classes, events and delays are pooled over all series. A file's own areas are the mean over
    its series.
    """
    per_file: dict[str, dict] = {}
    per_series: list[dict[str, float]] = []
    delays_rows, delays_seconds = [], []
    totals = _EventTotals()
    alert_rows = scored_rows = 0
    for result in results:
        scores, labels = result.scores[detector], result.labels
        stamps = result.rows.timestamps
        series_figures = []
        file_events = _EventTotals()
        for rows in _series_rows(result):
            series_figures.append(_threshold_free(labels[rows], scores.anomaly_score[rows]))
            events = ranges.event_scores(labels[rows], scores.alert[rows])
            alert_rows += int(scores.alert[rows].sum())
            scored_rows += rows.size
            totals.add(events)
            file_events.add(events)
            series_stamps = None if np.isnan(stamps[rows]).any() else stamps[rows]
            delay = ranges.detection_delay(labels[rows], scores.alert[rows], series_stamps)
            delays_rows.extend(delay.delays_rows.tolist())
            if delay.delays_seconds is not None:
                delays_seconds.extend(delay.delays_seconds.tolist())
        per_series += series_figures
        per_file[result.file.name] = {
            "rows": len(result.rows),
            "scored_rows": sum(len(rows) for rows in _series_rows(result)),
            "alerts": int(scores.alert_onset.sum()),
            **{
                name: _mean([figures[name] for figures in series_figures])
                for name in ("roc_auc", "pr_auc", "vus_roc", "vus_pr")
            },
            "event_f1": file_events.figures()["event_f1"],
        }

    figures = {
        name: _mean([series[name] for series in per_series])
        for name in ("roc_auc", "pr_auc", "vus_roc", "vus_pr")
    }
    figures["series_with_both_classes"] = sum(not math.isnan(s["roc_auc"]) for s in per_series)
    figures.update(totals.figures())
    # An alert that stays open covers every later event, so event recall alone can mislead.
    figures["alert_share"] = alert_rows / scored_rows if scored_rows else math.nan
    figures["mean_delay_rows"] = float(np.mean(delays_rows)) if delays_rows else math.nan
    figures["mean_delay_seconds"] = float(np.mean(delays_seconds)) if delays_seconds else math.nan
    return figures, per_file


def detector_figures(results: list[FileResult], detector: str) -> dict:
    """Compute every figure of one detector over the files of a benchmark."""
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
