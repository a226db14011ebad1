"""Tests of the record-by-record baselines on synthetic rows with one obvious anomaly."""

import numpy as np
import pytest

from spikewatch.config import Config
from spikewatch.evaluation.baselines import pysad_available
from spikewatch.evaluation.detectors import parse_detectors
from spikewatch.evaluation.rows import RowTable

SPIKE_ROW = 700


def synthetic_rows(keys=("a",), n=1000) -> RowTable:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(n, 2))
    values[SPIKE_ROW] = [25.0, -25.0]
    row_keys = [keys[i % len(keys)] for i in range(n)]
    accepted = np.ones(n, dtype=bool)
    accepted[5] = False
    labels = np.zeros(n, dtype=np.int8)
    labels[SPIKE_ROW] = 1
    return RowTable(
        channels=("x", "y"),
        keys=row_keys,
        timestamps=np.arange(n, dtype=np.float64) * 60.0,
        values=values,
        accepted=accepted,
        labels=labels,
    )


def run(spec: str, rows: RowTable, warmup_rows=100):
    (detector,) = parse_detectors(spec)
    config = Config().with_overrides({"threshold": {"min_history": 16}})
    return detector.run(config, {}, rows, warmup_rows=warmup_rows, output_dir=None, file_slug="x")


BASELINES = ["halfspacetrees"] + (["pysad-loda"] if pysad_available() else [])


@pytest.mark.parametrize("spec", BASELINES)
def test_spike_gets_the_top_rank(spec):
    rows = synthetic_rows()
    scores = run(spec, rows)
    assert scores.anomaly_score[SPIKE_ROW] > 0.95
    assert scores.anomaly_score[SPIKE_ROW] == scores.anomaly_score[SPIKE_ROW:].max()
    assert scores.outputs == int(rows.accepted.sum())


@pytest.mark.parametrize("spec", BASELINES)
def test_warmup_rows_score_zero(spec):
    scores = run(spec, synthetic_rows(), warmup_rows=300)
    assert not scores.anomaly_score[:300].any()
    assert not scores.alert[:300].any()
    assert scores.anomaly_score[300:].any()


@pytest.mark.parametrize("spec", BASELINES)
def test_rejected_row_is_not_scored(spec):
    scores = run(spec, synthetic_rows())
    assert not scores.output[5]
    assert scores.score[5] == scores.score[4]


def test_baseline_runs_are_deterministic():
    rows = synthetic_rows()
    first, second = run("halfspacetrees", rows), run("halfspacetrees", rows)
    assert np.array_equal(first.score, second.score)
    assert np.array_equal(first.alert, second.alert)


def test_each_key_has_its_own_model():
    rows = synthetic_rows(keys=("a", "b"))
    both = run("halfspacetrees", rows, warmup_rows=50)
    only_a = synthetic_rows(keys=("a", "b"))
    only_a.accepted[1::2] = False  # drop key b's rows
    alone = run("halfspacetrees", only_a, warmup_rows=50)
    a_rows = np.arange(0, 1000, 2)
    assert np.array_equal(both.score[a_rows], alone.score[a_rows])
