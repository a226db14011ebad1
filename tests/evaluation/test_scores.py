"""Tests of per-row outputs: the online rank, filling rows per key and the score file."""

import csv

import numpy as np
import pytest

from spikewatch.evaluation.scores import SCORE_COLUMNS, OnlineRank, RowOutputs, write_scores


def test_online_rank_uses_only_past_scores():
    rank = OnlineRank()
    assert [rank(score) for score in (5.0, 5.0, 1.0, 9.0)] == [0.0, 0.0, 0.0, pytest.approx(3 / 4)]


def test_online_rank_stays_below_one():
    rank = OnlineRank()
    values = [rank(float(score)) for score in range(1000)]
    assert max(values) == pytest.approx(999 / 1000)
    assert all(0.0 <= value < 1.0 for value in values)


def test_rows_take_the_latest_output_of_their_key():
    outputs = RowOutputs(7)
    keys = ["a", "b", "a", "a", None, "b", "a"]
    outputs.set(
        2, score=3.0, threshold=None, anomaly_score=0.5, alert_open=False, alert_onset=False
    )
    outputs.set(5, score=7.0, threshold=6.0, anomaly_score=0.9, alert_open=True, alert_onset=True)
    filled = outputs.finish(keys, seconds=1.5)
    assert filled.score.tolist() == [0.0, 0.0, 3.0, 3.0, 0.0, 7.0, 3.0]
    assert filled.anomaly_score.tolist() == [0.0, 0.0, 0.5, 0.5, 0.0, 0.9, 0.5]
    assert filled.alert.tolist() == [False, False, False, False, False, True, False]
    assert filled.alert_onset.tolist() == [False, False, False, False, False, True, False]
    assert np.isnan(filled.threshold[[0, 2, 3, 6]]).all()
    assert filled.threshold[5] == 6.0
    assert filled.output.tolist() == [False, False, True, False, False, True, False]
    assert filled.outputs == 2
    assert filled.seconds == 1.5


def test_detection_score_only_on_output_rows():
    outputs = RowOutputs(4)
    outputs.set(
        1, score=1.0, threshold=None, anomaly_score=0.8, alert_open=False, alert_onset=False
    )
    filled = outputs.finish(["k"] * 4, seconds=0.0)
    assert filled.anomaly_score.tolist() == [0.0, 0.8, 0.8, 0.8]
    assert filled.detection_score.tolist() == [0.0, 0.8, 0.0, 0.0]


def test_score_file_has_one_line_per_row(tmp_path):
    outputs = RowOutputs(3)
    outputs.set(1, score=2.5, threshold=1.0, anomaly_score=0.25, alert_open=True, alert_onset=True)
    filled = outputs.finish(["k", "k", None], seconds=0.0)
    path = tmp_path / "scores" / "file.csv"
    write_scores(
        path,
        keys=["k", "k", None],
        timestamps=np.array([0.0, 60.0, np.nan]),
        labels=np.array([0, 1, 0]),
        accepted=np.array([True, True, False]),
        scores=filled,
    )
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [name for name, _ in SCORE_COLUMNS]
    assert len(rows) == 3
    assert rows[1] == {
        "row": "1",
        "timestamp": "1970-01-01T00:01:00Z",
        "key": "k",
        "label": "1",
        "accepted": "1",
        "output": "1",
        "score": "2.5",
        "threshold": "1",
        "anomaly_score": "0.25",
        "alert": "1",
        "alert_onset": "1",
    }
    assert rows[2]["timestamp"] == ""
    assert rows[2]["accepted"] == "0"
    assert rows[2]["score"] == "0"
