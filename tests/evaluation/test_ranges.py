"""Tests of the range- and event-aware metrics."""

import math

import numpy as np
import pytest

from spikewatch.evaluation import ranges

N_ROWS = 600
ROWS = np.arange(N_ROWS)


def labels_with(*spans, n=N_ROWS):
    labels = np.zeros(n, dtype=int)
    for first, stop in spans:
        labels[first:stop] = 1
    return labels


THREE_RANGES = labels_with((100, 120), (300, 305), (450, 500))
EDGE_RANGES = labels_with((0, 10), (200, 201), (204, 206), (595, 600))
WAVE = 0.5 * np.sin(0.37 * ROWS) + 0.3 * np.cos(1.3 * ROWS)


def test_label_ranges_finds_runs_at_both_ends():
    labels = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1])
    assert ranges.label_ranges(labels).tolist() == [[0, 1], [4, 4], [6, 8]]
    assert ranges.label_ranges(np.zeros(4, dtype=int)).shape == (0, 2)


def test_roc_auc_and_pr_auc_small_case():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert ranges.roc_auc(labels, scores) == pytest.approx(0.75)
    assert ranges.pr_auc(labels, scores) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_roc_auc_rejects_single_class():
    with pytest.raises(ValueError, match="both anomalous"):
        ranges.roc_auc(np.zeros(4, dtype=int), np.arange(4.0))


# Reference values computed with TSB-AD 1.5 (``generate_curve``, version "opt", 250 thresholds).
TSB_AD_REFERENCE = [
    ("wavy", THREE_RANGES, THREE_RANGES + WAVE, 20, 0.9597737897462963, 0.8490211282944354),
    (
        "edges",
        EDGE_RANGES,
        np.convolve(EDGE_RANGES, np.ones(7) / 7, "same") + 0.1 * WAVE,
        30,
        0.9985433286950866,
        0.9760070026250477,
    ),
    (
        "ties",
        THREE_RANGES,
        np.round(THREE_RANGES * 0.6 + (ROWS * 7919 % 101) / 101, 1),
        16,
        0.9251204520869891,
        0.7341818527690497,
    ),
    ("no_buffer", THREE_RANGES, THREE_RANGES * 0.8 + WAVE, 0, 0.8924613756613756,
     0.6657132381499764),
]


@pytest.mark.parametrize(
    "labels, scores, window, expected_roc, expected_pr",
    [case[1:] for case in TSB_AD_REFERENCE],
    ids=[case[0] for case in TSB_AD_REFERENCE],
)
def test_vus_matches_tsb_ad(labels, scores, window, expected_roc, expected_pr):
    result = ranges.vus(labels, scores, sliding_window=window)
    assert result.vus_roc == pytest.approx(expected_roc, abs=1e-12)
    assert result.vus_pr == pytest.approx(expected_pr, abs=1e-12)


def test_vus_perfect_scores_give_one():
    result = ranges.vus(THREE_RANGES, THREE_RANGES.astype(float), sliding_window=20)
    assert result.vus_pr == pytest.approx(1.0)
    assert result.vus_roc == pytest.approx(1.0)


def test_vus_pr_random_near_rate():
    rate = THREE_RANGES.mean()
    values = [
        ranges.vus_pr(THREE_RANGES, np.random.default_rng(seed).random(N_ROWS), sliding_window=0)
        for seed in range(20)
    ]
    assert abs(np.mean(values) - rate) < 0.03


def test_vus_pr_increases_with_score_quality():
    noise = np.random.default_rng(3).normal(size=N_ROWS)
    values = [
        ranges.vus_pr(THREE_RANGES, THREE_RANGES + scale * noise, sliding_window=20)
        for scale in (2.0, 1.0, 0.5, 0.25)
    ]
    assert values == sorted(values)
    assert values[0] < values[-1] - 0.3


def test_vus_pr_rewards_early_alerts():
    labels = labels_with((100, 120))
    early = np.zeros(N_ROWS)
    early[95:115] = 1.0
    assert ranges.vus_pr(labels, early, sliding_window=20) > ranges.vus_pr(
        labels, early, sliding_window=0
    )


def test_vus_rejects_negative_window():
    with pytest.raises(ValueError, match="sliding_window"):
        ranges.vus(THREE_RANGES, WAVE, sliding_window=-1)


def test_event_scores_counts_events_not_rows():
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0])
    alerts = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1])
    result = ranges.event_scores(labels, alerts)
    # Events: rows 1-3 detected, rows 6-7 and row 12 missed. Alert runs: rows 2-4 touch an
    # event, rows 9-10 and row 13 do not, so they are two false-positive events.
    assert result.detected_events == 1
    assert result.missed_events == 2
    assert result.false_positive_events == 2
    assert result.precision == pytest.approx(1 / 3)
    assert result.recall == pytest.approx(1 / 3)
    assert result.f1 == pytest.approx(1 / 3)


def test_event_scores_no_alerts_nan():
    result = ranges.event_scores(np.array([0, 1, 1, 0]), np.zeros(4, dtype=int))
    assert math.isnan(result.precision)
    assert result.recall == 0.0
    assert math.isnan(result.f1)


def test_event_scores_perfect_detection():
    labels = labels_with((10, 20), (40, 45), n=60)
    result = ranges.event_scores(labels, labels)
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)


def test_detection_delay_rows_and_seconds():
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0])
    alerts = np.array([1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    times = np.datetime64("2024-01-01T00:00") + np.arange(12) * np.timedelta64(30, "s")
    result = ranges.detection_delay(labels, alerts, timestamps=times)
    assert result.delays_rows.tolist() == [2, 0]
    assert result.mean_rows == 1.0
    assert result.delays_seconds.tolist() == [60.0, 0.0]
    assert result.mean_seconds == 30.0
    assert result.detected_events == 2
    assert result.missed_events == 1


def test_detection_delay_missed_is_nan():
    result = ranges.detection_delay(np.array([0, 1, 1, 0]), np.array([1, 0, 0, 1]))
    assert math.isnan(result.mean_rows)
    assert result.mean_seconds is None
    assert result.missed_events == 1


def test_detection_delay_rejects_length_mismatch():
    with pytest.raises(ValueError, match="shape"):
        ranges.detection_delay(np.array([0, 1]), np.array([0, 1, 1]))
