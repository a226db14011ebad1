"""Tests of NAB scoring: hand-computed cases and a reproduction of the published numenta scores."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from spikewatch.evaluation import nab

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"
STANDARD = nab.NAB_PROFILES["standard"]
UNIT = nab.CostProfile(tp_weight=1.0, fp_weight=1.0, fn_weight=1.0)


def sigmoid_weight(position):
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def test_probation_length_matches_nab_rule():
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(100) == 15
    assert nab.probation_length(22695) == 750
    assert nab.probation_length(100, probation_percent=0.0) == 0


def test_probation_length_rejects_bad_percent():
    with pytest.raises(ValueError, match="probation_percent"):
        nab.probation_length(100, probation_percent=1.5)


def test_scaled_sigmoid_reference_points():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == -1.0
    assert nab.scaled_sigmoid(50.0) == -1.0


def test_score_file_empty_is_zero():
    result = nab.score_file(np.zeros(10, dtype=bool), np.empty((0, 2)), UNIT, probation_percent=0)
    assert result == nab.NabScore(score=0.0, tp=0, fp=0, fn=0, tn=10)


def test_score_file_missed_window_costs_fn_weight():
    result = nab.score_file(np.zeros(100, dtype=bool), [[40, 49]], UNIT, probation_percent=0)
    assert result.score == -1.0
    assert (result.tp, result.fp, result.fn, result.tn) == (0, 0, 10, 90)


def test_score_file_first_row_full_reward():
    alerts = np.zeros(100, dtype=bool)
    alerts[40] = True
    result = nab.score_file(alerts, [[40, 49]], STANDARD, probation_percent=0)
    assert result.score == pytest.approx(1.0)
    assert result.tp == 1


def test_score_file_only_earliest_detection_counts():
    alerts = np.zeros(100, dtype=bool)
    alerts[[45, 47, 49]] = True
    result = nab.score_file(alerts, [[40, 49]], STANDARD, probation_percent=0)
    expected = sigmoid_weight(-(49 - 45 + 1) / 10) / sigmoid_weight(-1.0)
    assert result.score == pytest.approx(expected)
    assert result.tp == 3


def test_score_file_fp_distance_weighting():
    alerts = np.zeros(100, dtype=bool)
    alerts[[5, 52, 90]] = True
    result = nab.score_file(alerts, [[40, 49]], STANDARD, probation_percent=0)
    before_any_window = -0.11
    near = 0.11 * sigmoid_weight((52 - 49) / 9)
    far = 0.11 * sigmoid_weight((90 - 49) / 9)
    assert far == pytest.approx(-0.11, abs=1e-6)
    assert result.score == pytest.approx(-1.0 + before_any_window + near + far)
    assert result.fp == 3


def test_score_file_ignores_probation_rows():
    # 15 % of 100 rows are probationary, so the alerts on rows 3 and 12 are not scored.
    alerts = np.zeros(100, dtype=bool)
    alerts[[3, 12]] = True
    straddling = nab.score_file(alerts, [[12, 20]], STANDARD)
    assert straddling.score == -1.0
    assert (straddling.tp, straddling.fp, straddling.fn, straddling.tn) == (0, 0, 6, 79)


def test_score_file_skips_window_inside_probation():
    alerts = np.zeros(100, dtype=bool)
    alerts[12] = True
    result = nab.score_file(alerts, [[10, 13]], STANDARD)
    assert result.score == 0.0
    assert (result.tp, result.fp, result.fn, result.tn) == (0, 0, 0, 85)


def test_score_file_rejects_overlapping_windows():
    with pytest.raises(ValueError, match="overlap"):
        nab.score_file(np.zeros(50, dtype=bool), [[10, 20], [20, 30]], STANDARD)


def test_windows_to_rows_inclusive_range():
    times = np.arange("2020-01-01T00:00", "2020-01-01T01:00", 5, dtype="datetime64[m]")
    windows = [(np.datetime64("2020-01-01T00:12"), np.datetime64("2020-01-01T00:30"))]
    assert nab.windows_to_rows(times, windows).tolist() == [[3, 6]]


def test_windows_to_rows_repeated_timestamps():
    times = np.array(["2020-01-01T00:00", "2020-01-01T01:00", "2020-01-01T01:00",
                      "2020-01-01T00:30", "2020-01-01T02:00"], dtype="datetime64[m]")
    windows = [(np.datetime64("2020-01-01T01:00"), np.datetime64("2020-01-01T02:00"))]
    assert nab.windows_to_rows(times, windows).tolist() == [[1, 4]]


def test_threshold_curve_matches_score_file():
    rng = np.random.default_rng(7)
    scores = [np.round(rng.random(300), 2), np.round(rng.random(200), 2)]
    windows = [[[100, 119], [200, 229]], [[150, 159]]]
    curve = nab.threshold_curve(scores, windows, STANDARD)
    for index in range(0, curve.thresholds.size, 7):
        threshold = curve.thresholds[index]
        per_file = [nab.score_file(s >= threshold, w, STANDARD) for s, w in zip(scores, windows)]
        assert curve.scores[index] == pytest.approx(sum(r.score for r in per_file), abs=1e-12)
        assert curve.tp[index] == sum(r.tp for r in per_file)
        assert curve.fp[index] == sum(r.fp for r in per_file)
        assert curve.fn[index] == sum(r.fn for r in per_file)
        assert curve.tn[index] == sum(r.tn for r in per_file)


def test_threshold_curve_first_entry_detects_nothing():
    curve = nab.threshold_curve([np.array([0.2, 0.9, 0.4, 0.9])], [[[2, 3]]], UNIT, 0)
    assert curve.thresholds[0] > 0.9
    assert curve.scores[0] == -1.0
    assert curve.thresholds[1:].tolist() == [0.9, 0.4, 0.2]


def test_normalized_score_endpoints():
    assert nab.normalized_score(-116.0, -116.0, 116.0) == 0.0
    assert nab.normalized_score(116.0, -116.0, 116.0) == 100.0
    with pytest.raises(ValueError, match="perfect"):
        nab.normalized_score(0.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def numenta():
    if not DATA.is_dir():
        pytest.skip(f"NAB data not found at {DATA}")
    windows = nab.load_windows(DATA / "labels" / "combined_windows.json")
    files = {}
    for name in sorted(windows):
        category, file_name = name.split("/")
        times, _ = nab.read_nab_csv(DATA / "data" / name)
        result_path = DATA / "results" / "numenta" / category / f"numenta_{file_name}"
        result_times, scores = nab.read_nab_csv(result_path, column="anomaly_score")
        assert np.array_equal(times, result_times), name
        files[name] = (scores, nab.windows_to_rows(times, windows[name]))
    with open(DATA / "config" / "thresholds.json", encoding="utf-8") as file:
        thresholds = json.load(file)["numenta"]
    with open(DATA / "results" / "final_results.json", encoding="utf-8") as file:
        final = json.load(file)["numenta"]
    return files, thresholds, final


def read_published(profile_name):
    path = DATA / "results" / "numenta" / f"numenta_{profile_name}_scores.csv"
    with open(path, newline="", encoding="utf-8") as file:
        return {row["File"] or "Totals": row for row in csv.DictReader(file)}


def test_load_profiles_matches_builtin():
    if not DATA.is_dir():
        pytest.skip(f"NAB data not found at {DATA}")
    assert nab.load_profiles(DATA / "config" / "profiles.json") == nab.NAB_PROFILES


@pytest.mark.parametrize("profile_name", sorted(nab.NAB_PROFILES))
def test_nab_reproduces_numenta_scores(numenta, profile_name):
    files, thresholds, _ = numenta
    profile = nab.NAB_PROFILES[profile_name]
    threshold = thresholds[profile_name]["threshold"]
    published = read_published(profile_name)
    assert len(published) == len(files) + 1

    total = 0.0
    for name, (scores, window_rows) in files.items():
        result = nab.score_file(scores >= threshold, window_rows, profile)
        row = published[name]
        assert result.score == pytest.approx(float(row["Score"]), abs=1e-9), name
        assert result.tp == int(row["TP"]), name
        assert result.fp == int(row["FP"]), name
        assert result.fn == int(row["FN"]), name
        assert result.tn == int(row["TN"]), name
        total += result.score
    assert total == pytest.approx(float(published["Totals"]["Score"]), abs=1e-9)
    assert total == pytest.approx(thresholds[profile_name]["score"], abs=1e-9)


@pytest.mark.parametrize("profile_name", sorted(nab.NAB_PROFILES))
def test_nab_reproduces_numenta_normalized(numenta, profile_name):
    files, thresholds, final = numenta
    profile = nab.NAB_PROFILES[profile_name]
    threshold = thresholds[profile_name]["threshold"]
    scores, window_rows = zip(*files.values())
    raw = sum(nab.score_file(s >= threshold, w, profile).score for s, w in files.values())
    null = nab.null_score([s.size for s in scores], window_rows, profile)
    perfect = nab.perfect_score(sum(len(w) for w in window_rows), profile)
    assert null == -116.0 * profile.fn_weight
    assert nab.normalized_score(raw, null, perfect) == pytest.approx(final[profile_name], abs=1e-9)


@pytest.mark.parametrize("profile_name", sorted(nab.NAB_PROFILES))
def test_nab_sweep_matches_or_beats_published(numenta, profile_name):
    files, thresholds, _ = numenta
    profile = nab.NAB_PROFILES[profile_name]
    scores, window_rows = zip(*files.values())
    best = nab.optimize_threshold(scores, window_rows, profile)
    # The published sum is the same detection set summed in another order, hence the tolerance.
    assert best.score >= thresholds[profile_name]["score"] - 1e-9
    rescored = [nab.score_file(s >= best.threshold, w, profile) for s, w in files.values()]
    assert sum(r.score for r in rescored) == pytest.approx(best.score, abs=1e-9)
    assert sum(r.tp for r in rescored) == best.tp
    assert sum(r.fp for r in rescored) == best.fp


def test_score_file_rejects_raw_scores():
    with pytest.raises(ValueError, match="threshold"):
        nab.score_file(np.array([0.2, 0.7, 0.1]), np.empty((0, 2)), STANDARD)
