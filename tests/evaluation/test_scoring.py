"""Tests of the benchmark figures on synthetic outputs whose scores are known."""

import math
from pathlib import Path

import numpy as np
import pytest

from spikewatch.evaluation.benchmarks import BenchmarkFile
from spikewatch.evaluation.rows import RowTable
from spikewatch.evaluation.scores import RowOutputs
from spikewatch.evaluation.scoring import FileResult, detector_figures
from spikewatch.evaluation.skab import changepoint_nab_scores

N = 1000
WINDOW = (600, 699)


def rows_with_labels(labels, changepoints=None) -> RowTable:
    n = len(labels)
    return RowTable(
        channels=("x",),
        keys=["k"] * n,
        timestamps=np.arange(n, dtype=np.float64),
        values=np.zeros((n, 1)),
        accepted=np.ones(n, dtype=bool),
        labels=np.asarray(labels, dtype=np.int8),
        extra={} if changepoints is None else {"changepoint": np.asarray(changepoints, float)},
    )


def outputs_from(anomaly_score, alert, onset=None):
    outputs = RowOutputs(len(alert))
    onset = np.zeros(len(alert), bool) if onset is None else onset
    for row in range(len(alert)):
        outputs.set(
            row,
            score=float(anomaly_score[row]),
            threshold=None,
            anomaly_score=float(anomaly_score[row]),
            alert_open=bool(alert[row]),
            alert_onset=bool(onset[row]),
        )
    return outputs.finish(["k"] * len(alert), seconds=1.0)


def nab_result(scores) -> FileResult:
    file = BenchmarkFile("f.csv", Path("f.csv"), {}, window_rows=np.array([WINDOW]))
    return FileResult(file, rows_with_labels(np.zeros(N)), 150, 150, {"d": scores})


def test_perfect_nab_detector_scores_100():
    score = np.zeros(N)
    score[WINDOW[0]] = 0.9
    onset = np.zeros(N, bool)
    onset[WINDOW[0]] = True
    figures = detector_figures([nab_result(outputs_from(score, np.zeros(N), onset))], "d")
    for profile in figures["nab"]["profiles"].values():
        assert profile["score"] == pytest.approx(100.0)
        assert profile["threshold"] == pytest.approx(0.9)
    for profile in figures["nab"]["alerts"].values():
        assert profile["score"] == pytest.approx(100.0)


def test_silent_nab_detector_scores_0():
    figures = detector_figures([nab_result(outputs_from(np.zeros(N), np.zeros(N)))], "d")
    assert figures["nab"]["profiles"]["standard"]["score"] == 0.0
    assert figures["nab"]["alerts"]["reward_low_FN_rate"]["score"] == 0.0


def test_nab_labels_come_from_windows():
    labels = nab_result(outputs_from(np.zeros(N), np.zeros(N))).labels
    assert labels.sum() == 100
    assert labels[WINDOW[0]]
    assert labels[WINDOW[1]]
    assert not labels[WINDOW[1] + 1]


def skab_result(alert) -> FileResult:
    labels = np.zeros(N)
    labels[WINDOW[0] : WINDOW[1] + 1] = 1
    changepoints = np.zeros(N)
    changepoints[[WINDOW[0], WINDOW[1] + 1]] = 1
    file = BenchmarkFile("s.csv", Path("s.csv"), {}, changepoint_field="changepoint")
    return FileResult(
        file,
        rows_with_labels(labels, changepoints),
        400,
        400,
        {"d": outputs_from(np.asarray(alert, float), alert)},
    )


def test_skab_alerts_equal_to_labels():
    alert = np.zeros(N, bool)
    alert[WINDOW[0] : WINDOW[1] + 1] = True
    figures = detector_figures([skab_result(alert)], "d")
    skab = figures["skab"]
    assert (skab["f1"], skab["far"], skab["mar"]) == (1.0, 0.0, 0.0)
    # Predicted changepoints are the rows where the alert state changes: 600 and 700.
    predicted = np.zeros(N)
    predicted[[WINDOW[0], WINDOW[1] + 1]] = 1
    changepoints = skab_result(alert).rows.extra["changepoint"]
    expected = changepoint_nab_scores(
        changepoints, predicted, timestamps=[np.arange(N, dtype=float)]
    )
    assert skab["changepoint_nab"] == pytest.approx(expected)
    assert figures["ranges"]["event_f1"] == 1.0
    assert figures["ranges"]["mean_delay_rows"] == 0.0
    # 100 alert rows among the 600 rows after the warm-up.
    assert figures["ranges"]["alert_share"] == pytest.approx(100 / 600)


def test_skab_without_alerts():
    figures = detector_figures([skab_result(np.zeros(N, bool))], "d")
    skab = figures["skab"]
    assert skab["f1"] == 0.0
    assert skab["mar"] == 100.0
    assert figures["ranges"]["event_f1"] == 0.0
    assert math.isnan(figures["ranges"]["event_precision"])
    assert math.isnan(figures["ranges"]["mean_delay_rows"])


def test_range_metrics_skip_the_warmup_rows():
    # The label run lies inside the warm-up, so after it only one class is left.
    labels = np.zeros(N)
    labels[100:120] = 1
    file = BenchmarkFile("w.csv", Path("w.csv"), {})
    result = FileResult(
        file, rows_with_labels(labels), 400, 400, {"d": outputs_from(np.zeros(N), np.zeros(N))}
    )
    figures = detector_figures([result], "d")
    assert figures["files"]["w.csv"]["scored_rows"] == N - 400
    assert math.isnan(figures["ranges"]["roc_auc"])
    assert figures["ranges"]["series_with_both_classes"] == 0
    assert figures["ranges"]["events_missed"] == 0


def test_range_metrics_of_a_perfect_ranking():
    labels = np.zeros(N)
    labels[700:720] = 1
    score = labels * 0.9
    file = BenchmarkFile("p.csv", Path("p.csv"), {})
    result = FileResult(
        file, rows_with_labels(labels), 400, 400, {"d": outputs_from(score, labels.astype(bool))}
    )
    totals = detector_figures([result], "d")["ranges"]
    assert totals["roc_auc"] == 1.0
    assert totals["pr_auc"] == 1.0
    assert totals["vus_pr"] > 0.9
    assert totals["event_f1"] == 1.0
    assert totals["events_detected"] == 1


def test_each_key_is_its_own_series():
    # Two interleaved keys: only key "b" has a labeled run, found by an alert on its third row.
    n = 400
    keys = ["a" if row % 2 == 0 else "b" for row in range(n)]
    labels = np.zeros(n)
    labels[[301, 303, 305]] = 1
    alert = np.zeros(n, bool)
    alert[305] = True
    rows = rows_with_labels(labels)
    rows.keys = keys
    outputs = RowOutputs(n)
    for row in range(n):
        outputs.set(
            row,
            score=0.0,
            threshold=None,
            anomaly_score=float(labels[row]),
            alert_open=bool(alert[row]),
            alert_onset=bool(alert[row]),
        )
    scores = outputs.finish(keys, seconds=1.0)
    file = BenchmarkFile("k.csv", Path("k.csv"), {})
    totals = detector_figures([FileResult(file, rows, 10, 10, {"d": scores})], "d")["ranges"]
    assert totals["series_with_both_classes"] == 1
    assert totals["roc_auc"] == 1.0
    assert totals["events_detected"] == 1
    assert totals["events_missed"] == 0
    assert totals["mean_delay_rows"] == 2.0
    assert totals["mean_delay_seconds"] == 4.0
