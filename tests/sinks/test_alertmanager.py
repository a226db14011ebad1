"""The Alertmanager sink against a small HTTP server in place of Alertmanager's v2 API.

The real Alertmanager is exercised in tests/integration/test_alertmanager_live.py. This server
lets the tests fail requests, reject them, or hold one open.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spikewatch.alerting import Alert, format_timestamp
from spikewatch.metrics import PipelineMetrics
from spikewatch.sinks.alertmanager import ALERTNAME, AlertmanagerSink, alertmanager_alert

WAIT_S = 10.0


def wait_for(check, description):
    """Poll ``check`` until it is true, and fail naming ``description`` after WAIT_S seconds."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {description}")
        time.sleep(0.01)


class FakeAlertmanager:
    """Records the alerts posted to /api/v2/alerts and replies with ``statuses`` in turn.

    After the listed statuses it replies 200. While ``gate`` is clear, a request waits on it
    (at most ``WAIT_S`` seconds, then ``gate_timed_out`` is set).
    """

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.accepted: list[dict] = []
        self.requests = 0
        self.gate = threading.Event()
        self.gate.set()
        self.gate_timed_out = False
        self.waiting = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests += 1
                if not fake.gate.is_set():
                    fake.waiting.set()
                    if not fake.gate.wait(WAIT_S):
                        fake.gate_timed_out = True
                status = fake.statuses.pop(0) if fake.statuses else 200
                if status == 200:
                    fake.accepted.extend(body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"bad alert" if status == 400 else b"")

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def states(self, alert_id):
        """``firing`` or ``resolved`` for each accepted post of ``alert_id``, in order."""
        return [
            "resolved" if alert["annotations"]["data_end"] else "firing"
            for alert in list(self.accepted)
            if alert["labels"]["alert_id"] == alert_id
        ]

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeAlertmanager()
    yield server
    server.close()


@pytest.fixture
def closed_url():
    """A URL on which nothing listens: every post fails with connection refused."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_port}"
    server.server_close()
    return url


def make_alert(alert_id="a1", status="firing", *, key="pump-7", start=1_700_000_000.0, end=None):
    return Alert(
        alert_id=alert_id,
        key=key,
        status=status,
        start=start,
        end=end if status == "resolved" else None,
        peak_score=8.25,
        threshold=5.5,
        top_channels=["flow", "pressure"],
        windows=3,
        detector="spikformer+deep_svdd",
    )


def sends(metrics, result):
    return metrics.alertmanager_sends.labels(result=result)._value.get()


@pytest.fixture
def sinks():
    opened = []
    yield opened
    for sink in opened:
        sink.close()


def open_sink(sinks, url, **options):
    options.setdefault("retry_backoff_s", 0.05)
    options.setdefault("retry_backoff_max_s", 0.2)
    sink = AlertmanagerSink(url, metrics=options.pop("metrics", None) or PipelineMetrics(), **options)
    sinks.append(sink)
    return sink


def test_payload_of_firing_alert():
    payload = alertmanager_alert(make_alert(), severity="critical", ends_at=1_800_000_000.0)
    assert payload["labels"] == {
        "alertname": ALERTNAME,
        "key": "pump-7",
        "detector": "spikformer+deep_svdd",
        "severity": "critical",
        "alert_id": "a1",
    }
    assert payload["annotations"]["score"] == "8.25"
    assert payload["annotations"]["threshold"] == "5.5"
    assert payload["annotations"]["top_channels"] == "flow, pressure"
    assert payload["annotations"]["summary"] == (
        "Anomaly on stream key pump-7: window score 8.25 above the threshold 5.5 for 3 windows; "
        "largest channels: flow, pressure."
    )
    assert payload["startsAt"] == format_timestamp(1_700_000_000.0)
    assert payload["endsAt"] == format_timestamp(1_800_000_000.0)


def test_payload_never_ends_before_start():
    payload = alertmanager_alert(make_alert(start=1_900_000_000.0), severity="warning", ends_at=1_800_000_000.0)
    assert payload["startsAt"] == payload["endsAt"]


def test_firing_then_resolved_posted(fake, sinks):
    metrics = PipelineMetrics()
    clock_s = 1_750_000_000.0
    sink = open_sink(sinks, fake.url, metrics=metrics, resend_interval_s=60.0, clock=lambda: clock_s)
    assert sink.send(make_alert()) is True
    wait_for(lambda: fake.states("a1") == ["firing"], "the firing post")
    firing = fake.accepted[0]
    assert firing["endsAt"] == format_timestamp(clock_s + 4 * 60.0)

    assert sink.send(make_alert(status="resolved", end=1_700_000_100.0)) is True
    wait_for(lambda: sends(metrics, "ok") == 2, "the resolved post")
    assert fake.states("a1") == ["firing", "resolved"]
    assert fake.accepted[-1]["endsAt"] == format_timestamp(1_700_000_100.0)
    assert sends(metrics, "failed") == 0


def test_duplicate_state_not_sent_again(fake, sinks):
    sink = open_sink(sinks, fake.url)
    assert sink.send(make_alert()) is True
    assert sink.send(make_alert()) is False
    assert sink.send(make_alert(status="resolved", end=1_700_000_100.0)) is True
    assert sink.send(make_alert(status="resolved", end=1_700_000_100.0)) is False
    assert sink.send(make_alert()) is False


def test_firing_alert_resent_until_resolved(fake, sinks):
    sink = open_sink(sinks, fake.url, resend_interval_s=0.05)
    sink.send(make_alert("a1"))
    sink.send(make_alert("b1", key="pump-8"))
    wait_for(lambda: fake.states("a1").count("firing") >= 3, "three posts of the firing alert a1")

    sink.send(make_alert("a1", status="resolved", end=1_700_000_100.0))
    wait_for(lambda: "resolved" in fake.states("a1"), "the resolution of a1")
    resends_of_b = fake.states("b1").count("firing")
    wait_for(lambda: fake.states("b1").count("firing") >= resends_of_b + 3, "three more re-sends of b1")
    states = fake.states("a1")
    assert states[-1] == "resolved"
    assert "firing" not in states[states.index("resolved") :]


def test_send_returns_while_post_hangs(fake, sinks):
    fake.gate.clear()
    sink = open_sink(sinks, fake.url, timeout_s=WAIT_S * 2)
    sink.send(make_alert("a0"))
    assert fake.waiting.wait(WAIT_S)
    # The worker thread waits inside a request that the server keeps open, and sends still return.
    for index in range(1, 51):
        assert sink.send(make_alert(f"a{index}")) is True
    assert not fake.gate_timed_out
    assert sink.queue_length == 51
    fake.gate.set()
    wait_for(lambda: len({alert["labels"]["alert_id"] for alert in fake.accepted}) == 51, "all 51 alerts")


def test_failed_posts_retried_with_backoff(sinks):
    fake = FakeAlertmanager(statuses=[503, 503, 503])
    try:
        metrics = PipelineMetrics()
        sink = open_sink(sinks, fake.url, metrics=metrics)
        sink.send(make_alert())
        wait_for(lambda: sends(metrics, "ok") == 1, "the post after three failures")
        assert fake.states("a1") == ["firing"]
        assert fake.requests == 4
        assert sends(metrics, "failed") == 3
        assert sink.queue_length == 0
    finally:
        fake.close()


def test_rejected_post_dropped_without_retry(sinks):
    fake = FakeAlertmanager(statuses=[400])
    try:
        metrics = PipelineMetrics()
        sink = open_sink(sinks, fake.url, metrics=metrics)
        sink.send(make_alert())
        wait_for(lambda: sends(metrics, "dropped") == 1, "the rejected alert to be dropped")
        assert sink.queue_length == 0
        assert fake.requests == 1
    finally:
        fake.close()


def test_queue_overflow_drops_oldest(closed_url, sinks):
    metrics = PipelineMetrics()
    sink = open_sink(sinks, closed_url, metrics=metrics, queue_size=3, retry_backoff_s=60.0, retry_backoff_max_s=60.0)
    for index in range(5):
        sink.send(make_alert(f"a{index}"))
    assert sink.queue_length == 3
    assert sends(metrics, "dropped") == 2
    assert metrics.alertmanager_queue_length._value.get() == 3
    # A newer state of a queued alert replaces it rather than taking another slot.
    sink.send(make_alert("a4", status="resolved", end=1_700_000_100.0))
    assert sink.queue_length == 3
    assert sends(metrics, "dropped") == 2


def test_resolution_replaces_queued_firing(sinks):
    fake = FakeAlertmanager(statuses=[503] * 2)
    try:
        fake.gate.clear()
        sink = open_sink(sinks, fake.url, resend_interval_s=60.0)
        sink.send(make_alert())
        assert fake.waiting.wait(WAIT_S)
        sink.send(make_alert(status="resolved", end=1_700_000_100.0))
        fake.gate.set()
        wait_for(lambda: fake.states("a1"), "a successful post of a1")
        assert fake.states("a1") == ["resolved"]
    finally:
        fake.close()


def test_state_file_carries_alerts_over_restart(tmp_path, closed_url, fake, sinks):
    state_path = tmp_path / "checkpoints" / "alertmanager.json"
    down = open_sink(sinks, closed_url, state_path=state_path, retry_backoff_s=60.0, retry_backoff_max_s=60.0)
    down.send(make_alert("a1"))
    down.send(make_alert("b1", key="pump-8"))
    down.send(make_alert("b1", key="pump-8", status="resolved", end=1_700_000_100.0))
    down.close()
    saved = json.loads(state_path.read_text())
    assert [alert["alert_id"] for alert in saved["firing"]] == ["a1"]
    assert sorted(item["alert"]["alert_id"] for item in saved["queue"]) == ["a1", "b1"]

    open_sink(sinks, fake.url, state_path=state_path)
    wait_for(lambda: fake.states("a1") and fake.states("b1"), "both alerts after the restart")
    assert fake.states("a1") == ["firing"]
    assert fake.states("b1") == ["resolved"]


def test_sync_follows_open_alerts(tmp_path, closed_url, sinks):
    state_path = tmp_path / "alertmanager.json"
    open_now = [make_alert("a1")]
    sink = open_sink(sinks, closed_url, state_path=state_path, retry_backoff_s=60.0, retry_backoff_max_s=60.0)
    sink.follow(lambda: list(open_now))
    sink.flush()
    assert [alert["alert_id"] for alert in json.loads(state_path.read_text())["firing"]] == ["a1"]

    # The key moved to another worker: this sink stops re-sending its alert.
    open_now.clear()
    sink.flush()
    assert json.loads(state_path.read_text())["firing"] == []


def test_invalid_url_rejected():
    with pytest.raises(ValueError, match="must start with http"):
        AlertmanagerSink("alertmanager:9093", metrics=PipelineMetrics())
