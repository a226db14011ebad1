"""Tests of the SKAB metrics on hand-computed cases and on one SKAB file's labels."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from spikewatch.evaluation import skab

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "skab" / "data"


def reward(position, a_tp=1.0, a_fp=-0.11):
    """SKAB's tanh reward curve, sampled at 1000 points, evaluated at a relative position."""
    x = np.linspace(-np.pi / 2, np.pi / 2, 1000)
    curve = (a_tp - a_fp) / 2 * -np.tanh(x) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2 + a_fp
    return curve[min(int(position * 1000), 999)]


def test_binary_scores_single_file():
    result = skab.binary_scores(np.array([0, 0, 1, 1, 0, 1]), np.array([0, 1, 1, 0, 0, 1]))
    assert (result.tp, result.tn, result.fp, result.fn) == (2, 2, 1, 1)
    assert result.f1 == pytest.approx(2 / 3)
    assert result.far == pytest.approx(100 / 3)
    assert result.mar == pytest.approx(100 / 3)


def test_binary_scores_pool_rows_over_files():
    labels = [np.array([1, 1, 0]), np.array([0, 0, 0, 1])]
    predictions = [np.array([1, 0, 0]), np.array([1, 0, 0, 1])]
    result = skab.binary_scores(labels, predictions)
    assert (result.tp, result.tn, result.fp, result.fn) == (2, 3, 1, 1)
    assert result.f1 == pytest.approx(2 / 3)
    assert result.far == pytest.approx(25.0)
    assert result.mar == pytest.approx(100 / 3)


def test_binary_scores_no_anomalies_nan():
    result = skab.binary_scores(np.zeros(5, dtype=int), np.zeros(5, dtype=int))
    assert math.isnan(result.mar)
    assert math.isnan(result.f1)
    assert result.far == 0.0


def test_binary_scores_rejects_length_mismatch():
    with pytest.raises(ValueError, match="shape"):
        skab.binary_scores(np.zeros(5, dtype=int), np.zeros(4, dtype=int))


def test_binary_scores_rejects_non_binary_labels():
    with pytest.raises(ValueError, match="0/1"):
        skab.binary_scores(np.array([0, 2, 1]), np.array([0, 1, 1]))


def changepoint_at(n, *rows):
    labels = np.zeros(n, dtype=int)
    labels[list(rows)] = 1
    return labels


def test_changepoint_window_start_perfect():
    alerts = changepoint_at(100, 50)
    scores = skab.changepoint_nab_scores(
        changepoint_at(100, 50), alerts, window_width=10, window_position="right"
    )
    assert scores == pytest.approx(
        {"standard": 100.0, "reward_low_FP_rate": 100.0, "reward_low_FN_rate": 100.0}
    )


def test_changepoint_no_alerts_scores_zero():
    scores = skab.changepoint_nab_scores(changepoint_at(100, 50), np.zeros(100, dtype=int))
    assert scores == pytest.approx(
        {"standard": 0.0, "reward_low_FP_rate": 0.0, "reward_low_FN_rate": 0.0}
    )


def test_changepoint_late_alert_and_false_alarm():
    alerts = changepoint_at(100, 55, 80)
    scores = skab.changepoint_nab_scores(
        changepoint_at(100, 50), alerts, window_width=10, window_position="right"
    )
    raw = reward(0.5) - 0.11
    assert scores["standard"] == pytest.approx(100 * (raw + 1) / 2)
    raw_low_fp = reward(0.5, a_fp=-0.22) - 0.22
    assert scores["reward_low_FP_rate"] == pytest.approx(100 * (raw_low_fp + 1) / 2)
    assert scores["reward_low_FN_rate"] == pytest.approx(100 * (raw + 2) / 3)


def test_changepoint_default_window_left():
    # Default width: 0.1 * 99 rows of span / (1 changepoint + 1) = 4.95 rows, so [45.05, 50].
    early = skab.changepoint_nab_scores(changepoint_at(100, 50), changepoint_at(100, 46))
    assert early["standard"] == pytest.approx(100 * (reward((46 - 45.05) / 4.95) + 1) / 2)
    late = skab.changepoint_nab_scores(changepoint_at(100, 50), changepoint_at(100, 51))
    assert late["standard"] == pytest.approx(100 * (-1 - 0.11 + 1) / 2)


def test_changepoint_overlapping_window_is_cut():
    labels = changepoint_at(100, 50, 55)
    alerts = changepoint_at(100, 50, 62)
    scores = skab.changepoint_nab_scores(labels, alerts, window_width=10, window_position="right")
    # The second window [55, 65] starts where the first one ends: [60, 65].
    raw = 1.0 + reward(2 / 5)
    assert scores["standard"] == pytest.approx(100 * (raw + 2) / 4)


def test_changepoint_empty_file_false_alarms():
    labels = [changepoint_at(100, 50), np.zeros(50, dtype=int)]
    alerts = [changepoint_at(100, 50), changepoint_at(50, 10, 20)]
    scores = skab.changepoint_nab_scores(labels, alerts, window_width=5, window_position="right")
    assert scores["standard"] == pytest.approx(100 * (1.0 - 0.22 + 1) / 2)


def test_changepoint_rejects_unknown_position():
    with pytest.raises(ValueError, match="window_position"):
        skab.changepoint_nab_scores(changepoint_at(10, 5), changepoint_at(10, 5),
                                    window_position="lefter")


def read_skab_file(path):
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file, delimiter=";"))
    times = np.array([row["datetime"] for row in rows], dtype="datetime64[s]")
    anomaly = np.array([float(row["anomaly"]) for row in rows]).astype(int)
    changepoint = np.array([float(row["changepoint"]) for row in rows]).astype(int)
    return times, anomaly, changepoint


@pytest.fixture(scope="module")
def valve_file():
    path = DATA / "valve1" / "0.csv"
    if not path.is_file():
        pytest.skip(f"SKAB data not found at {path}")
    return read_skab_file(path)


def test_skab_file_perfect_predictions(valve_file):
    _, anomaly, _ = valve_file
    assert anomaly.any()
    result = skab.binary_scores(anomaly, anomaly)
    assert result.f1 == 1.0
    assert result.far == 0.0
    assert result.mar == 0.0


def test_skab_file_null_predictions(valve_file):
    _, anomaly, _ = valve_file
    result = skab.binary_scores(anomaly, np.zeros_like(anomaly))
    assert result.mar == 100.0
    assert result.far == 0.0
    assert result.f1 == 0.0


def test_skab_file_changepoints_detected_on_time(valve_file):
    times, _, changepoint = valve_file
    assert changepoint.sum() >= 1
    scores = skab.changepoint_nab_scores(
        [changepoint], [changepoint], timestamps=[times], window_width=60, window_position="right"
    )
    assert scores == pytest.approx(
        {"standard": 100.0, "reward_low_FP_rate": 100.0, "reward_low_FN_rate": 100.0}
    )
