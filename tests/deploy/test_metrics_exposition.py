"""The metrics exposition of a real pipeline run: promtool's lint and the agreed metric names."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import generate_latest

from spikewatch.engine import Engine
from spikewatch.metrics import KeySeries, PipelineMetrics
from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink
from spikewatch.sources import CsvSource
from tests.conftest import small_config

from .promql import exported_names

#: Every series the dashboard and the alert rules may use, as exposed (counters with _total).
PLANNED_NAMES = [
    "spikewatch_records_total",
    "spikewatch_dead_letters_total",
    "spikewatch_windows_scored_total",
    "spikewatch_alerts_total",
    "spikewatch_alerts_open",
    "spikewatch_window_score_bucket",
    "spikewatch_processing_latency_seconds_bucket",
    "spikewatch_active_keys",
    "spikewatch_keys_ready",
    "spikewatch_keys_evicted_total",
    "spikewatch_warmup_progress_ratio",
    "spikewatch_spike_firing_rate_ratio",
    "spikewatch_model_updates_total",
    "spikewatch_model_updates_skipped_total",
    "spikewatch_training_loss",
    "spikewatch_checkpoints_total",
    "spikewatch_last_checkpoint_timestamp_seconds",
    "spikewatch_consumer_lag_records",
    "spikewatch_kafka_commits_total",
    "spikewatch_kafka_rebalances_total",
    "spikewatch_kafka_assigned_partitions",
    "spikewatch_broker_connection_errors_total",
    "spikewatch_drift_detected_total",
    "spikewatch_drift_adaptation_active",
    "spikewatch_score_variance_collapsed",
    "spikewatch_synaptic_operations_per_window",
    "spikewatch_estimated_energy_per_window_joules",
    "spikewatch_key_score",
    "spikewatch_key_threshold",
    "spikewatch_key_series_capped_total",
    "spikewatch_alertmanager_sends_total",
    "spikewatch_alertmanager_queue_length",
    "spikewatch_worker_info",
]


def test_planned_names_registered():
    missing = sorted(set(PLANNED_NAMES) - exported_names())
    assert missing == [], f"planned metrics not registered in PipelineMetrics: {missing}"


@pytest.fixture(scope="module")
def run_exposition(tmp_path_factory) -> bytes:
    """The exposition after a replay of 160 records of two keys, per-key series included."""
    tmp_path = tmp_path_factory.mktemp("exposition")
    rows = ["timestamp,key,value"]
    for index in range(80):
        for key in ("pump-7", "pump-8"):
            value = 10.0 + (index % 5) + (20.0 if key == "pump-7" and 60 <= index < 66 else 0.0)
            rows.append(f"{1_700_000_000 + 60 * index},{key},{value}")
    path = tmp_path / "series.csv"
    path.write_text("\n".join(rows) + "\n")
    config = small_config(tmp_path, source={"kind": "csv", "path": str(path), "key_field": "key"})
    metrics = PipelineMetrics()
    metrics.worker_info.labels(worker="test-worker").set(1)
    key_series = KeySeries(metrics, max_keys=1, refresh_s=60.0, max_tracked_keys=100)
    engine = Engine(
        config,
        CsvSource(path),
        alert_sinks=[JsonlAlertSink(config.alerts.path)],
        dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
        metrics=metrics,
        observers=[key_series.observe],
    )
    engine.run()
    return generate_latest(metrics.registry)


def test_exposition_passes_promtool(run_exposition):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install the Debian package prometheus")
    text = run_exposition.decode()
    assert 'spikewatch_worker_info{worker="test-worker"} 1.0' in text
    assert "spikewatch_key_score{" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=run_exposition, capture_output=True, timeout=60
    )
    findings = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, findings
    assert findings.strip() == ""


def test_exposition_caps_key_series(run_exposition):
    text = run_exposition.decode()
    keys = [line for line in text.splitlines() if line.startswith("spikewatch_key_score{")]
    assert len(keys) == 1
    capped = [line for line in text.splitlines() if line.startswith("spikewatch_key_series_capped_total ")]
    assert float(capped[0].split()[1]) > 0
