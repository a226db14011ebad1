"""The model inside the engine: every detector and threshold kind by configuration, the health,
drift and energy metrics, and updates at fixed window counts whatever the batching."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikewatch.engine import Engine
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink
from spikewatch.sources import CsvSource

from .conftest import small_config


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_series(path, values, *, step=60):
    rows = ["timestamp,key,value"] + [f"{i * step},k,{value}" for i, value in enumerate(values)]
    path.write_text("\n".join(rows) + "\n")
    return path


def wave(n=600, *, seed=0, shift_at=None, shift=0.0):
    rng = np.random.default_rng(seed)
    values = np.sin(np.arange(n) / 8.0) + rng.normal(0, 0.1, n)
    if shift_at is not None:
        values[shift_at:] = 3.0 * np.sin(np.arange(n - shift_at) / 3.0) + shift
    return values


def run(config, path):
    metrics = PipelineMetrics()
    scored = []
    engine = Engine(
        config,
        CsvSource(path),
        alert_sinks=[JsonlAlertSink(config.alerts.path)],
        dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
        metrics=metrics,
        observers=[scored.append],
    )
    summary = engine.run()
    return summary, scored, metrics, engine


def sample(metrics, name):
    return metrics.registry.get_sample_value(name)


@pytest.mark.parametrize(
    "detector, threshold",
    [
        ({"kind": "deep_svdd", "objective": "soft-boundary"}, {"kind": "quantile"}),
        ({"kind": "neutral_ad", "neutral_transformations": 4}, {"kind": "conformal", "false_alarms_per_day": 20.0}),
        ({"kind": "goad", "goad_transformations": 8, "goad_transform_dim": 8}, {"kind": "dspot", "min_history": 40, "history": 64, "peaks_level": 0.5, "risk": 0.01, "dspot_depth": 8}),
        ({"kind": "deep_svdd"}, {"kind": "spot", "min_history": 40, "history": 64, "peaks_level": 0.8, "risk": 0.01}),
    ],
    ids=["svdd-soft-quantile", "neutral-conformal", "goad-dspot", "svdd-spot"],
)
def test_detector_and_threshold_kinds_run_by_config(tmp_path, detector, threshold):
    config = small_config(tmp_path, detector=detector, threshold=threshold)
    path = write_series(tmp_path / "wave.csv", wave())
    summary, scored, metrics, engine = run(config, path)
    scores = np.array([window.score for window in scored])
    assert summary.windows > 250
    assert np.isfinite(scores).all()
    assert np.unique(scores).size > 0.9 * scores.size
    assert engine.keys.peek("k").threshold.kind == threshold["kind"]
    assert any(window.threshold is not None for window in scored)
    assert summary.model_updates > 0


def test_energy_and_firing_rate_exported(tmp_path):
    config = small_config(tmp_path)
    _, _, metrics, _ = run(config, write_series(tmp_path / "wave.csv", wave()))
    operations = sample(metrics, "spikewatch_synaptic_operations_per_window")
    joules = sample(metrics, "spikewatch_estimated_energy_per_window_joules")
    assert operations > 0
    assert joules > operations * 0.9e-12  # plus the first layer's multiply-accumulates
    assert sample(metrics, "spikewatch_spike_firing_rate_ratio") > 0


def test_collapsed_scores_raise_health_metric(tmp_path):
    config = small_config(tmp_path)
    _, _, metrics, _ = run(config, write_series(tmp_path / "wave.csv", wave()))
    assert sample(metrics, "spikewatch_score_variance_collapsed") == 0.0
    # A flat line scales to zeros: every window, and so every score, is the same.
    _, scored, metrics, engine = run(config, write_series(tmp_path / "flat.csv", np.full(300, 7.0)))
    assert engine.model.health.collapsed
    assert sample(metrics, "spikewatch_score_variance_collapsed") == 1.0


def test_drift_in_scores_is_detected_and_exported(tmp_path):
    config = small_config(tmp_path, learning={"drift_adaptation_windows": 64})
    path = write_series(tmp_path / "shift.csv", wave(1200, shift_at=700, shift=10.0))
    summary, _, metrics, engine = run(config, path)
    assert engine.model.drift.detections >= 1
    assert sample(metrics, "spikewatch_drift_detected_total") == engine.model.drift.detections
    assert sample(metrics, "spikewatch_drift_adaptation_active") in (0.0, 1.0)


def test_updates_at_fixed_window_counts_whatever_the_batching(tmp_path):
    path = write_series(tmp_path / "shift.csv", wave(1200, shift_at=700, shift=10.0))
    results = []
    for batch in (64, 5):
        config = small_config(
            tmp_path,
            runtime={"max_batch_windows": batch},
            learning={"drift_adaptation_windows": 64},
            alerts={"path": str(tmp_path / f"alerts-{batch}.jsonl")},
            checkpoint={"path": str(tmp_path / f"run-{batch}.ckpt"), "interval_s": 0},
        )
        summary, scored, _, engine = run(config, path)
        results.append((summary, [w.score for w in scored], engine.model))
    (first, first_scores, first_model), (second, second_scores, second_model) = results
    assert first_model.drift.detections >= 1
    assert first_model.drift.detections == second_model.drift.detections
    assert first.model_updates == second.model_updates
    np.testing.assert_allclose(first_scores, second_scores, rtol=1e-5, atol=1e-7)
    # Batched matrix products round differently, so scores agree to float32 precision only.
    def alert_keys(name):
        lines = (tmp_path / name).read_text().splitlines()
        return [(a["alert_id"], a["status"], a["windows"]) for a in map(json.loads, lines)]

    assert alert_keys("alerts-64.jsonl") == alert_keys("alerts-5.jsonl")
