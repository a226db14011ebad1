"""Prometheus metrics of a pipeline run.

Each :class:`PipelineMetrics` owns its registry, so several engines in one process (tests,
side-by-side evaluations) do not collide. Every name starts with ``spikewatch_``, carries its unit
and ends in ``_total`` for counters. Labels come from small fixed sets (record outcome, alert
status, dead-letter reason). The one per-key label, ``key`` on ``spikewatch_key_score`` and
``spikewatch_key_threshold``, is capped by :class:`KeySeries`, so the series count does not grow
with the number of keys.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable

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
        self.drift_detected = Counter(
            "drift_detected", "Drifts detected by ADWIN on the stream of window scores.",
            namespace=NAMESPACE, registry=r,
        )
        self.drift_adaptation_active = Gauge(
            "drift_adaptation_active", "1 while the model adapts faster after a detected drift.",
            namespace=NAMESPACE, registry=r,
        )
        self.score_variance_collapsed = Gauge(
            "score_variance_collapsed",
            "1 when recent window scores have (nearly) no variance: the detector may have collapsed.",
            namespace=NAMESPACE, registry=r,
        )
        self.synaptic_operations = Gauge(
            "synaptic_operations_per_window",
            "Estimated synaptic operations (spikes times fan-out) per window of the spiking encoder.",
            namespace=NAMESPACE, registry=r,
        )
        self.energy_per_window = Gauge(
            "estimated_energy_per_window_joules",
            "Estimated encoder energy per window at 45 nm (0.9 pJ per synaptic operation, "
            "4.6 pJ per multiply-accumulate).",
            namespace=NAMESPACE, registry=r,
        )
        self.key_score = Gauge(
            "key_score", "Score of the key's latest window; only capped keys (see key_series_capped).",
            ["key"], namespace=NAMESPACE, registry=r,
        )
        self.key_threshold = Gauge(
            "key_threshold", "Alert threshold of the key's latest window; same keys as key_score.",
            ["key"], namespace=NAMESPACE, registry=r,
        )
        self.key_series_capped = Counter(
            "key_series_capped",
            "Per-key score updates not exported because the key is outside the top-N and the allow list.",
            namespace=NAMESPACE, registry=r,
        )
        self.alertmanager_sends = Counter(
            "alertmanager_sends", "Alerts posted to Alertmanager, by result (ok, failed, dropped).",
            ["result"], namespace=NAMESPACE, registry=r,
        )
        self.alertmanager_queue_length = Gauge(
            "alertmanager_queue_length", "Alerts waiting to be posted to Alertmanager.",
            namespace=NAMESPACE, registry=r,
        )
        self.worker_info = Gauge(
            "worker_info", "Always 1; the worker label names this worker process.",
            ["worker"], namespace=NAMESPACE, registry=r,
        )
        self.consumer_lag = Gauge(
            "consumer_lag_records",
            "Records behind the end of each assigned Kafka partition (high watermark - position).",
            ["topic", "partition"], namespace=NAMESPACE, registry=r,
        )
        self.kafka_commits = Counter(
            "kafka_commits", "Kafka offset commits, by result (ok, failed).",
            ["result"], namespace=NAMESPACE, registry=r,
        )
        self.kafka_rebalances = Counter(
            "kafka_rebalances", "Partitions assigned, revoked or lost in consumer-group rebalances.",
            ["event"], namespace=NAMESPACE, registry=r,
        )
        self.kafka_assigned_partitions = Gauge(
            "kafka_assigned_partitions", "Kafka partitions this worker owns now.",
            namespace=NAMESPACE, registry=r,
        )
        self.broker_connection_errors = Counter(
            "broker_connection_errors",
            "Kafka polls, commits and sends that failed because no broker was reachable.",
            namespace=NAMESPACE, registry=r,
        )
        for result in ("ok", "failed"):
            self.kafka_commits.labels(result=result)
        for event in ("assigned", "revoked", "lost"):
            self.kafka_rebalances.labels(event=event)
        for result in ("ok", "failed", "dropped"):
            self.alertmanager_sends.labels(result=result)
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


class KeySeries:
    """Per-key score and threshold gauges for a capped set of keys.

    Only the keys in ``allow`` and at most ``max_keys`` other keys get a ``key`` label value, so
    the number of series stays bounded however many keys a stream has. The other keys are the
    ones with the highest latest window score, re-ranked every ``refresh_s`` seconds. Between two
    re-rankings a new key takes a free slot if there is one. Every update of a key without a
    slot increments ``spikewatch_key_series_capped_total``. A key that drops out of the top keys
    loses its series at the re-ranking, so Prometheus stops seeing it after the next scrape. So
    does a key that is no longer live in the engine (see :meth:`follow`), such as a key whose
    Kafka partition moved to another worker.

    Parameters
    ----------
    metrics
        The metrics whose ``key_score``, ``key_threshold`` and ``key_series_capped`` are updated.
    max_keys
        Keys outside the allow list that may have series at once.
    allow
        Keys that always have series.
    refresh_s
        Seconds between two re-rankings.
    max_tracked_keys
        Keys whose latest score is remembered for ranking. The least recently scored key is
        forgotten first and loses its series, even if it is in ``allow``. Pass
        ``windows.max_keys``, so that keys the engine evicts go too.
    clock
        Monotonic clock in seconds; tests pass their own.
    """

    def __init__(
        self,
        metrics: PipelineMetrics,
        *,
        max_keys: int,
        allow: Iterable[str] = (),
        refresh_s: float,
        max_tracked_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 0 or max_tracked_keys < 1 or refresh_s <= 0:
            raise ValueError(
                f"max_keys = {max_keys} must be >= 0, max_tracked_keys = {max_tracked_keys} "
                f">= 1 and refresh_s = {refresh_s} > 0"
            )
        self.metrics = metrics
        self.max_keys = max_keys
        self.allow = frozenset(allow)
        self.refresh_s = refresh_s
        self.max_tracked_keys = max_tracked_keys
        self._clock = clock
        self._latest: OrderedDict[str, tuple[float, float | None]] = OrderedDict()
        self._exported: set[str] = set()
        self._live_keys: Callable[[], Container[str]] | None = None
        self._next_refresh = clock() + refresh_s

    def follow(self, live_keys: Callable[[], Container[str]]) -> None:
        """Drop, at each re-ranking, the keys that are not in ``live_keys()`` (the engine's keys)."""
        self._live_keys = live_keys

    @property
    def exported(self) -> frozenset[str]:
        """Keys that have series now, the allow list included once they have been scored."""
        return frozenset(self._exported | (self.allow & self._latest.keys()))

    def observe(self, window) -> None:
        """Record one scored window; an engine observer (``window`` is a ``ScoredWindow``)."""
        self.update(window.key, window.score, window.threshold)

    def update(self, key: str, score: float, threshold: float | None) -> None:
        """Record the latest ``score`` and ``threshold`` (None while not trusted) of ``key``."""
        latest = self._latest
        latest[key] = (score, threshold)
        latest.move_to_end(key)
        if len(latest) > self.max_tracked_keys:
            forgotten, _ = latest.popitem(last=False)
            self._remove(forgotten)
        now = self._clock()
        if now >= self._next_refresh:
            self._rerank()
            self._next_refresh = now + self.refresh_s
        if key not in self.allow and key not in self._exported:
            if len(self._exported) >= self.max_keys:
                self.metrics.key_series_capped.inc()
                return
            self._exported.add(key)
        self._set(key, score, threshold)

    def _rerank(self) -> None:
        if self._live_keys is not None:
            live = self._live_keys()
            for key in [key for key in self._latest if key not in live]:
                del self._latest[key]
                self._remove(key)

        def rank(key: str) -> float:
            score = self._latest[key][0]
            return score if not math.isnan(score) else -math.inf

        candidates = (key for key in self._latest if key not in self.allow)
        top = set(heapq.nlargest(self.max_keys, candidates, key=rank))
        for key in self._exported - top:
            self._remove(key)
        for key in top - self._exported:
            self._set(key, *self._latest[key])
        self._exported = top

    def _set(self, key: str, score: float, threshold: float | None) -> None:
        self.metrics.key_score.labels(key=key).set(score)
        if threshold is not None:
            self.metrics.key_threshold.labels(key=key).set(threshold)

    def _remove(self, key: str) -> None:
        self._exported.discard(key)
        self.metrics.key_score.remove(key)
        self.metrics.key_threshold.remove(key)
