"""Tests of the benchmark loaders: file selection, label windows and warm-up rules."""

import pytest

from spikewatch.evaluation import nab
from spikewatch.evaluation.benchmarks import (
    SKAB_TRAINING_ROWS,
    EvaluationError,
    load_bgl,
    load_labeled,
    load_nab,
    load_skab,
    nab_warmup_rows,
)
from spikewatch.evaluation.runner import file_overrides, file_slug


def test_nab_files_and_windows(shared_data):
    benchmark = load_nab(shared_data / "nab")
    assert len(benchmark.files) == 58
    taxi = next(file for file in benchmark.files if file.name == "realKnownCause/nyc_taxi.csv")
    assert len(taxi.window_rows) == 5
    # NAB's first window runs from 2014-10-30 15:30 to 2014-11-03 22:30, at 30-minute steps.
    assert taxi.window_rows[0].tolist() == [5839, 6045]
    assert taxi.warmup_rows(10320) == 750
    assert file_slug(taxi) == "realKnownCause/nyc_taxi"


def test_nab_warmup_is_the_probationary_period():
    assert nab_warmup_rows(4032) == nab.probation_length(4032) == 604
    assert nab_warmup_rows(22695) == 750


def test_nab_selection_by_pattern(shared_data):
    benchmark = load_nab(shared_data / "nab", patterns=["realTraffic/*", "*/nyc_taxi.csv"])
    names = [file.name for file in benchmark.files]
    assert "realKnownCause/nyc_taxi.csv" in names
    assert all(name.startswith("realTraffic/") or name.endswith("nyc_taxi.csv") for name in names)


def test_pattern_without_match_names_a_file(shared_data):
    with pytest.raises(EvaluationError, match="no file matches"):
        load_nab(shared_data / "nab", patterns=["nothing/*"])


def test_missing_nab_folder(tmp_path):
    with pytest.raises(EvaluationError, match="label windows not found"):
        load_nab(tmp_path)


def test_skab_files_in_leaderboard_order(shared_data):
    benchmark = load_skab(shared_data / "skab")
    names = [file.name for file in benchmark.files]
    assert len(names) == 34
    assert names[:3] == ["valve1/0.csv", "valve1/1.csv", "valve1/2.csv"]
    assert not any("anomaly-free" in name for name in names)
    first = benchmark.files[0]
    assert first.source["label_field"] == "anomaly"
    assert first.source["ignore_fields"] == ["changepoint"]
    assert first.warmup_rows(1147) == SKAB_TRAINING_ROWS
    assert first.changepoint_field == "changepoint"


def test_bgl_reads_raw_lines(shared_data):
    benchmark = load_bgl(shared_data / "loghub" / "BGL", bucket_seconds=300.0)
    (file,) = benchmark.files
    assert file.name == "BGL_2k.log"
    assert file_overrides(file)["logs"]["bucket_seconds"] == 300.0
    assert "<Content>" in file.logs["format"]


def test_labeled_files_need_a_label_column(tmp_path):
    (tmp_path / "a.csv").write_text("timestamp,x,y\n")
    with pytest.raises(EvaluationError, match="--label-column"):
        load_labeled(tmp_path, label_field="")
    (file,) = load_labeled(tmp_path, label_field="y", key_field="host").files
    assert file.source == {
        "kind": "csv",
        "path": str(tmp_path / "a.csv"),
        "timestamp_field": "timestamp",
        "label_field": "y",
        "key_field": "host",
        "ignore_fields": [],
    }
    assert file.warmup_rows is None
