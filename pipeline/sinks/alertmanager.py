"""Alert sink that posts to Alertmanager's v2 API (``POST /api/v2/alerts``) from a background thread.

``send`` only updates in-memory state and returns, so scoring never waits for HTTP. A worker
thread posts queued alerts, retries failed posts with exponential back-off, and re-sends every
firing alert each ``resend_interval_s``: Alertmanager resolves an alert by itself once its
``endsAt`` passes, so a firing alert must be posted again before that.

Delivery is at least once:

1. Each alert id has at most one queued state. A later state replaces the earlier one, so a
   resolution that arrives while Alertmanager is down replaces the queued firing post.
2. The queue is bounded by ``queue_size`` alerts. Past it the oldest queued state is dropped and
   counted as ``dropped``. An alert that is still firing is queued again at the next re-send.
3. Before every checkpoint (:meth:`AlertmanagerSink.flush`), the firing and the queued alerts
   are written to ``state_path``, and a restarted worker posts them again. Posting the same alert
   twice is harmless, because Alertmanager merges alerts with equal label sets.

The set of firing alerts follows the engine (:meth:`AlertmanagerSink.follow`). An alert restored
from a checkpoint is re-sent, and one whose key moved to another worker with its Kafka partition
stops being re-sent here, so only its new owner re-sends and resolves it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from spikewatch.alerting import Alert, format_timestamp
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks.alerts import AlertSink

logger = logging.getLogger(__name__)

#: ``alertname`` label of every alert this sink posts.
ALERTNAME = "SpikewatchAnomaly"
#: A firing post sets ``endsAt`` this many re-send intervals ahead, so one or two lost re-sends
#: do not resolve the alert. Prometheus's rules/alerting.go stamps its alerts with 4 times
#: max(evaluation interval, resend delay) for the same reason.
ENDS_AT_RESEND_INTERVALS = 4
#: Alerts per POST request; a longer queue is posted in several requests.
MAX_ALERTS_PER_POST = 500
#: Resolved alert ids remembered to recognise a replayed resolution as a duplicate.
RESOLVED_MEMORY = 10_000
STATE_VERSION = 1


def alertmanager_alert(alert: Alert, *, severity: str, ends_at: float) -> dict:
    """Return the v2 API form of ``alert``, with ``endsAt`` at ``ends_at`` (seconds since epoch).

    ``startsAt`` is the data timestamp at which the alert's run of windows began, clamped to
    ``ends_at`` so that a replay of recorded data never posts an alert that ends before it starts.
    """
    channels = ", ".join(alert.top_channels) or "none"
    summary = (
        f"Anomaly on stream key {alert.key}: window score {alert.peak_score:.4g} above the "
        f"threshold {alert.threshold:.4g} for {alert.windows} windows; largest channels: {channels}."
    )
    return {
        "labels": {
            "alertname": ALERTNAME,
            "key": alert.key,
            "detector": alert.detector,
            "severity": severity,
            "alert_id": alert.alert_id,
        },
        "annotations": {
            "summary": summary,
            "score": f"{alert.peak_score:.6g}",
            "threshold": f"{alert.threshold:.6g}",
            "top_channels": ", ".join(alert.top_channels),
            "windows": str(alert.windows),
            "data_start": format_timestamp(alert.start),
            "data_end": format_timestamp(alert.end) if alert.end is not None else "",
        },
        "startsAt": format_timestamp(min(alert.start, ends_at)),
        "endsAt": format_timestamp(ends_at),
    }


class AlertmanagerSink(AlertSink):
    """Alert sink that posts to Alertmanager from a background thread, so ``send`` never waits.

    Parameters
    ----------
    url
        Base URL of Alertmanager, such as ``http://127.0.0.1:9093``.
    metrics
        Updated with ``alertmanager_sends_total{result}`` and ``alertmanager_queue_length``.
    severity
        Value of the ``severity`` label.
    resend_interval_s
        Seconds between two posts of a firing alert.
    timeout_s
        Seconds one HTTP request may take.
    retry_backoff_s, retry_backoff_max_s
        Wait before the first retry of a failed post. The wait doubles with each further failure,
        up to the maximum.
    queue_size
        Alerts waiting to be posted, at most.
    state_path
        JSON file that keeps firing and queued alerts across restarts; None keeps nothing.
    clock
        Wall clock in seconds since the epoch, used for ``endsAt``; tests pass their own.
    """

    def __init__(
        self,
        url: str,
        *,
        metrics: PipelineMetrics | None = None,
        severity: str = "warning",
        resend_interval_s: float = 60.0,
        timeout_s: float = 5.0,
        retry_backoff_s: float = 1.0,
        retry_backoff_max_s: float = 60.0,
        queue_size: int = 10_000,
        state_path: str | os.PathLike | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Alertmanager url = {url!r} must start with http:// or https://")
        if queue_size < 1:
            raise ValueError(f"queue_size = {queue_size} must be at least 1")

        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.metrics = metrics or PipelineMetrics()
        self.severity = severity
        self.resend_interval_s = resend_interval_s
        self.timeout_s = timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        self.queue_size = queue_size
        self.state_path = Path(state_path) if state_path is not None else None
        self._clock = clock

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # alert id -> the firing alert, re-sent every resend interval until it resolves.
        self._firing: dict[str, Alert] = {}
        # alert id -> (alert, endsAt of a resolution or None while firing), oldest first.
        self._queue: OrderedDict[str, tuple[Alert, float | None]] = OrderedDict()
        self._resolved: OrderedDict[str, None] = OrderedDict()
        self._failures = 0
        self._retry_at = 0.0
        self._next_resend = time.monotonic() + resend_interval_s
        self._open_alerts: Callable[[], Iterable[Alert]] | None = None
        self._next_sync = 0.0
        self._stopping = False
        self._failed_at_close = False
        self.posts = 0

        if self.state_path is not None and self.state_path.exists():
            self._load_state()
        self._thread = threading.Thread(target=self._run, name="alertmanager-sink", daemon=True)
        self._thread.start()
        logger.info("posting alerts to %s (re-sent every %g s while firing)", self.endpoint, resend_interval_s)

    # -- called from the scoring loop -------------------------------------------------------

    def send(self, alert: Alert) -> bool:
        with self._wake:
            if alert.status == "firing":
                if alert.alert_id in self._firing or alert.alert_id in self._resolved:
                    return False
                self._firing[alert.alert_id] = alert
                ends_at = None
            else:
                if alert.alert_id in self._resolved:
                    return False
                self._firing.pop(alert.alert_id, None)
                self._resolved[alert.alert_id] = None
                if len(self._resolved) > RESOLVED_MEMORY:
                    self._resolved.popitem(last=False)
                end = alert.end if alert.end is not None else math.inf
                ends_at = min(end, self._clock())
            self._enqueue(alert, ends_at)
            self._wake.notify()
        return True

    def follow(self, open_alerts: Callable[[], Iterable[Alert]]) -> None:
        """Take the firing alerts from ``open_alerts`` (``Engine.open_alerts``) from now on.

        It is called from the scoring thread only: in :meth:`observe`, at most once per re-send
        interval, and in :meth:`flush`.
        """
        self._open_alerts = open_alerts

    def observe(self, window) -> None:
        """Engine observer: re-read the open alerts once per re-send interval."""
        if self._open_alerts is not None and time.monotonic() >= self._next_sync:
            self.sync()

    def sync(self) -> None:
        """Make the firing alerts those that :meth:`follow`'s callable returns."""
        if self._open_alerts is None:
            return
        self._next_sync = time.monotonic() + self.resend_interval_s
        current = {alert.alert_id: alert for alert in self._open_alerts()}
        with self._wake:
            for alert_id in self._firing.keys() - current.keys():
                # The key left this worker, or a restart did not resume it. Its next owner
                # re-sends the alert, or Alertmanager resolves it when endsAt passes.
                logger.debug("alert %s is no longer open in this worker; it is no longer re-sent", alert_id)
                del self._firing[alert_id]
            for alert_id in current.keys() - self._firing.keys():
                self._firing[alert_id] = current[alert_id]
                self._enqueue(current[alert_id], None)
            self._wake.notify()

    def flush(self) -> None:
        """Write the firing and queued alerts to ``state_path``, without waiting for delivery."""
        self.sync()
        if self.state_path is None:
            return
        with self._lock:
            state = {
                "version": STATE_VERSION,
                "endpoint": self.endpoint,
                "firing": [asdict(alert) for alert in self._firing.values()],
                "queue": [
                    {"alert": asdict(alert), "ends_at": ends_at}
                    for alert, ends_at in self._queue.values()
                ],
            }
        _write_json_atomically(self.state_path, state)

    def close(self) -> None:
        """Stop the worker thread after one last attempt to post the queue, then save the state."""
        with self._wake:
            if self._stopping:
                return
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=2 * self.timeout_s + 1.0)
        if self._thread.is_alive():
            logger.warning("Alertmanager sink thread still posting at close; its state file may be one post behind")
        self.flush()
        queued = len(self._queue)
        if queued:
            logger.warning(
                "%d alerts not yet posted to %s at close%s",
                queued,
                self.endpoint,
                f"; kept in {self.state_path} for the next run" if self.state_path else " are lost",
            )

    @property
    def queue_length(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- the worker thread ------------------------------------------------------------------

    def _enqueue(self, alert: Alert, ends_at: float | None) -> None:
        """Queue the latest state of ``alert``. The caller holds the lock."""
        queue = self._queue
        if alert.alert_id not in queue and len(queue) >= self.queue_size:
            dropped_id, (dropped, _) = queue.popitem(last=False)
            self.metrics.alertmanager_sends.labels(result="dropped").inc()
            logger.warning(
                "Alertmanager queue full (%d alerts): dropped the %s state of alert %s on key %r",
                self.queue_size,
                dropped.status,
                dropped_id,
                dropped.key,
            )
        queue[alert.alert_id] = (alert, ends_at)
        self.metrics.alertmanager_queue_length.set(len(queue))

    def _run(self) -> None:
        while True:
            with self._wake:
                batch = self._next_batch()
                if batch is None:
                    return
            if batch:
                self._deliver(batch)

    def _next_batch(self) -> list[tuple[str, tuple[Alert, float | None]]] | None:
        """Wait until a post is due. Return its alerts, [] to loop again, or None to stop."""
        now = time.monotonic()
        if not self._stopping:
            due = self._next_resend
            if self._queue:
                due = min(due, max(self._retry_at, now))
            if due > now:
                self._wake.wait(timeout=due - now)
                return []
        if now >= self._next_resend:
            for alert in self._firing.values():
                self._enqueue(alert, None)
            self._next_resend = now + self.resend_interval_s
        if self._stopping and (not self._queue or self._failed_at_close):
            return None
        if not self._stopping and now < self._retry_at:
            return []
        batch = list(self._queue.items())[:MAX_ALERTS_PER_POST]
        return batch

    def _deliver(self, batch: list[tuple[str, tuple[Alert, float | None]]]) -> None:
        """Post ``batch`` (without the lock held) and account for the result."""
        now = self._clock()
        ends_default = now + ENDS_AT_RESEND_INTERVALS * self.resend_interval_s
        payload = [
            alertmanager_alert(alert, severity=self.severity, ends_at=ends_default if ends_at is None else ends_at)
            for _, (alert, ends_at) in batch
        ]
        error, permanent = self._post(payload)
        with self._wake:
            self.posts += 1
            if error is None or permanent:
                # Forget what was posted, unless a newer state of the alert was queued meanwhile.
                for alert_id, entry in batch:
                    if self._queue.get(alert_id) is entry:
                        del self._queue[alert_id]
                self.metrics.alertmanager_queue_length.set(len(self._queue))
            if error is None:
                self.metrics.alertmanager_sends.labels(result="ok").inc(len(batch))
                if self._failures:
                    logger.info("posted %d alerts to %s after %d failed attempts", len(batch), self.endpoint, self._failures)
                self._failures = 0
                self._retry_at = 0.0
            elif permanent:
                self.metrics.alertmanager_sends.labels(result="dropped").inc(len(batch))
                logger.error("Alertmanager at %s rejected %d alerts, which are dropped: %s", self.endpoint, len(batch), error)
            else:
                self.metrics.alertmanager_sends.labels(result="failed").inc(len(batch))
                self._failures += 1
                wait = min(self.retry_backoff_s * 2 ** (self._failures - 1), self.retry_backoff_max_s)
                self._retry_at = time.monotonic() + wait
                if self._failures == 1 or self._failures % 10 == 0:
                    logger.warning(
                        "posting %d alerts to %s failed (%s, %d failures in a row); retrying in %.3g s",
                        len(batch),
                        self.endpoint,
                        error,
                        self._failures,
                        wait,
                    )
                if self._stopping:
                    # No retries while closing, because the state file keeps the queue for the next run.
                    self._failed_at_close = True

    def _post(self, payload: list[dict]) -> tuple[str | None, bool]:
        """POST ``payload`` and return (error text or None, whether retrying cannot help)."""
        request = urllib.request.Request(
            self.endpoint,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
            return None, False
        except urllib.error.HTTPError as error:
            body = error.read(500).decode("utf-8", "replace").strip()
            # 4xx other than 408 and 429 means the request itself is invalid, so resending cannot help.
            permanent = 400 <= error.code < 500 and error.code not in (408, 429)
            return f"HTTP {error.code} {body}".rstrip(), permanent
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            return f"{type(error).__name__}: {reason}", False

    # -- restart state ----------------------------------------------------------------------

    def _load_state(self) -> None:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            firing = [Alert(**item) for item in state["firing"]]
            queued = [(Alert(**item["alert"]), item["ends_at"]) for item in state["queue"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning(
                "Alertmanager state file %s is unreadable (%s); starting without it", self.state_path, error
            )
            return
        with self._lock:
            for alert, ends_at in queued:
                self._enqueue(alert, ends_at)
            for alert in firing:
                self._firing[alert.alert_id] = alert
                self._enqueue(alert, None)
        logger.info(
            "loaded %d firing and %d queued alerts from %s; posting them again",
            len(firing),
            len(queued),
            self.state_path,
        )


def _write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
