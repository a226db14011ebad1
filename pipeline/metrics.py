"""Prometheus metrics of a pipeline run.

Each :class:`PipelineMetrics` owns its registry, so several engines in one process (tests,
side-by-side evaluations) do not collide. Every name starts with ``spikewatch_``, carries its unit
and ends in ``_total`` for counters. Labels come from small fixed sets (record outcome, alert
status, dead-letter reason); per-key values are not labels, so the series count does not grow
with the number of keys.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from spikewatch.records import DEAD_LETTER_REASONS

logger = logging.getLogger(__name__)

NAMESPACE = "spikewatch"

#: Score buckets on a log scale: Deep SVDD distances span several orders of magnitude.
SCORE_BUCKETS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
#: Latency buckets from 1 ms to 2.5 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PipelineMetrics:
    """The metrics a pipeline run exports; ``serve`` starts the HTTP endpoint."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "records", "Records read, by outcome (accepted or dead_lettered).",
            ["outcome"], namespace=NAMESPACE, registry=r,
        )
        self.dead_letters = Counter(
            "dead_letters", "Records sent to the dead-letter sink, by reason.",
            ["reason"], namespace=NAMESPACE, registry=r,
        )
        self.windows_scored = Counter(
            "windows_scored", "Windows scored by the model.", namespace=NAMESPACE, registry=r
        )
        self.alerts = Counter(
            "alerts", "Alert state changes delivered, by status (firing or resolved).",
            ["status"], namespace=NAMESPACE, registry=r,
        )
        self.alerts_open = Gauge(
            "alerts_open", "Alerts currently firing.", namespace=NAMESPACE, registry=r
        )
        self.window_score = Histogram(
            "window_score", "Anomaly score of each window (higher is more anomalous).",
            namespace=NAMESPACE, buckets=SCORE_BUCKETS, registry=r,
        )
        self.processing_latency = Histogram(
            "processing_latency_seconds",
            "Time from reading a window's newest record to its scoring and alert decision.",
            namespace=NAMESPACE, buckets=LATENCY_BUCKETS, registry=r,
        )
        self.active_keys = Gauge(
            "active_keys", "Stream keys with live state.", namespace=NAMESPACE, registry=r
        )
        self.keys_ready = Gauge(
            "keys_ready", "Keys whose threshold is trusted, so they may alert.",
            namespace=NAMESPACE, registry=r,
        )
        self.keys_evicted = Counter(
            "keys_evicted", "Keys evicted because windows.max_keys keys were live.",
            namespace=NAMESPACE, registry=r,
        )
        self.warmup_progress = Gauge(
            "warmup_progress_ratio", "Fraction of the model's warm-up windows collected (1 = warm).",
            namespace=NAMESPACE, registry=r,
        )
        self.firing_rate = Gauge(
            "spike_firing_rate_ratio", "Fraction of LIF neuron-steps that spiked in the last batch.",
            namespace=NAMESPACE, registry=r,
        )
        self.model_updates = Counter(
            "model_updates", "Online gradient steps taken.", namespace=NAMESPACE, registry=r
        )
        self.model_updates_skipped = Counter(
            "model_updates_skipped", "Gradient steps skipped because the loss or gradient was not finite.",
            namespace=NAMESPACE, registry=r,
        )
        self.training_loss = Gauge(
            "training_loss", "Loss of the last gradient step.", namespace=NAMESPACE, registry=r
        )
        self.checkpoints = Counter(
            "checkpoints", "Checkpoints written.", namespace=NAMESPACE, registry=r
        )
        self.checkpoint_timestamp = Gauge(
            "last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint written.",
            namespace=NAMESPACE, registry=r,
        )
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason=reason)
        for outcome in ("accepted", "dead_lettered"):
            self.records.labels(outcome=outcome)
        for status in ("firing", "resolved"):
            self.alerts.labels(status=status)

    def serve(self, host: str, port: int):
        """Serve ``/metrics`` on ``host:port`` in a background thread; return the server."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        logger.info("serving Prometheus metrics on http://%s:%d/metrics", host, server.server_port)
        return server, thread
