"""A real Prometheus scraping running ``spikewatch replay`` workers, with deploy/'s alert rules.

Covers the product's metrics as Prometheus stores them, the rules evaluated on live data, and
two workers on one host, each on its own port, where the series of a killed worker go stale at
the next failed scrape.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.servers import wait_until, write_spike_csv

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "spikewatch.rules.yml"


def values_by(results: list[dict], label: str) -> dict[str, float]:
    return {result["metric"].get(label, ""): float(result["value"][1]) for result in results}


def test_prometheus_stores_worker_metrics(tmp_path, prometheus_factory, worker_factory):
    worker = worker_factory(write_spike_csv(tmp_path / "shift.csv"), worker="replay-1")
    prometheus = prometheus_factory(scrape_targets=[f"127.0.0.1:{worker.port}"], rule_files=[RULES])

    scored = wait_until(
        lambda: prometheus.query("spikewatch_windows_scored_total > 20"),
        timeout_s=90,
        description="Prometheus to store more than 20 scored windows",
    )
    assert scored[0]["metric"]["job"] == "spikewatch"
    assert prometheus.query('up{job="spikewatch"}')[0]["value"][1] == "1"

    info = prometheus.query("spikewatch_worker_info")
    assert [result["metric"]["worker"] for result in info] == ["replay-1"]
    records = values_by(prometheus.query("spikewatch_records_total"), "outcome")
    assert records["accepted"] > 0
    assert records["dead_lettered"] == 0
    scores = values_by(prometheus.query("spikewatch_key_score"), "key")
    assert list(scores) == ["default"]
    thresholds = wait_until(
        lambda: values_by(prometheus.query("spikewatch_key_threshold"), "key"),
        timeout_s=60,
        description="a trusted threshold of key default",
    )
    assert thresholds["default"] > 0
    assert prometheus.query("spikewatch_warmup_progress_ratio")[0]["value"][1] == "1"
    buckets = prometheus.query('spikewatch_window_score_bucket{le="+Inf"}')
    assert float(buckets[0]["value"][1]) == pytest.approx(float(scored[0]["value"][1]))

    # Every rule of deploy/ evaluates on the live series without an error.
    def evaluated_rules():
        groups = prometheus.get_rules()
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(not rule["lastEvaluation"].startswith("0001-") for rule in rules) else None

    rules = wait_until(evaluated_rules, timeout_s=30, description="every rule to be evaluated")
    assert len(rules) == 10
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))

    # The live endpoint's exposition passes promtool's lint, per-key series included.
    exposition = worker.metrics_text()
    assert 'spikewatch_key_score{key="default"}' in exposition
    lint = subprocess.run(
        [shutil.which("promtool"), "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert (lint.stdout + lint.stderr).strip() == ""

    assert worker.stop() == 0
    assert (worker.log_path.parent / "checkpoints" / "spikewatch.ckpt").exists()


def test_killed_worker_series_go_stale(tmp_path, prometheus_factory, worker_factory):
    csv_path = write_spike_csv(tmp_path / "shift.csv")
    first = worker_factory(csv_path, worker="worker-1")
    second = worker_factory(csv_path, worker="worker-2")
    prometheus = prometheus_factory(
        scrape_targets=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    )

    wait_until(
        lambda: len(prometheus.query("spikewatch_windows_scored_total > 0")) == 2,
        timeout_s=90,
        description="both workers to be scraped with scored windows",
    )
    workers = sorted(result["metric"]["worker"] for result in prometheus.query("spikewatch_worker_info"))
    assert workers == ["worker-1", "worker-2"]

    # SIGKILL: the worker gets no chance to clean up, as in a crash.
    second.signal(signal.SIGKILL)
    second.process.wait(timeout=30)
    live = wait_until(
        lambda: (lambda names: names if names == ["worker-1"] else None)(
            sorted(result["metric"]["worker"] for result in prometheus.query("spikewatch_worker_info"))
        ),
        timeout_s=30,
        description="the killed worker's series to go stale",
    )
    assert live == ["worker-1"]
    up = values_by(prometheus.query('up{job="spikewatch"}'), "instance")
    assert up[f"127.0.0.1:{first.port}"] == 1
    assert up[f"127.0.0.1:{second.port}"] == 0
    scored_instances = {r["metric"]["instance"] for r in prometheus.query("spikewatch_windows_scored_total")}
    assert scored_instances == {f"127.0.0.1:{first.port}"}
    assert first.stop() == 0
