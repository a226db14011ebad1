"""The Alertmanager sink against a real Alertmanager, fed by a running ``spikewatch replay``.

A replayed level shift opens an alert. The test reads it back from Alertmanager's v2 API while it
fires, then checks that Alertmanager notifies a webhook of its resolution. A second test starts the worker
while Alertmanager is down and starts Alertmanager only after the alert has fired, so the alert
reaches it through the sink's retries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.servers import free_port, record_timestamp, wait_until, webhook_config, write_spike_csv

pytestmark = pytest.mark.integration

#: A level shift of +20 starts at this record of the replayed file.
SHIFT_AT = 100
SHIFT_START = datetime.fromtimestamp(record_timestamp(SHIFT_AT), tz=timezone.utc)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that stores the JSON bodies Alertmanager posts to it."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.notifications.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def statuses(self, alert_id: str) -> list[str]:
        """Statuses in which the alert with ``alert_id`` was notified, in order."""
        return [
            alert["status"]
            for notification in list(self.notifications)
            for alert in notification["alerts"]
            if alert["labels"].get("alert_id") == alert_id
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def sink_config(url: str) -> str:
    return f"""
[alertmanager]
url = "{url}"
resend_interval_s = 1.0
timeout_s = 2.0
retry_backoff_s = 0.2
retry_backoff_max_s = 1.0
"""


def shift_alert_in(alertmanager) -> dict | None:
    """The active alert that the level shift opened, as Alertmanager returns it, if any."""
    for alert in alertmanager.alerts(alertname="SpikewatchAnomaly"):
        if datetime.fromisoformat(alert["startsAt"]) >= SHIFT_START:
            return alert
    return None


def written_alerts(worker_dir: Path, alert_id: str) -> dict[str, dict]:
    """The lines of the worker's alerts.jsonl for ``alert_id``, by status."""
    lines = (worker_dir / "alerts.jsonl").read_text().splitlines()
    return {alert["status"]: alert for alert in map(json.loads, lines) if alert["alert_id"] == alert_id}


def test_alert_fires_then_resolves(tmp_path, alertmanager_factory, worker_factory, webhook):
    alertmanager = alertmanager_factory(config=webhook_config(webhook.url))
    # 200 records keep the worker alive about a minute past the shift, so its metrics can still be
    # read after Alertmanager reports the resolution.
    csv_path = write_spike_csv(tmp_path / "shift.csv", records=200, shift_at=SHIFT_AT)
    worker = worker_factory(csv_path, extra_config=sink_config(alertmanager.url))

    active = wait_until(
        lambda: shift_alert_in(alertmanager), timeout_s=90, description="the level shift's alert in Alertmanager"
    )
    labels = active["labels"]
    annotations = active["annotations"]
    alert_id = labels["alert_id"]
    assert labels["alertname"] == "SpikewatchAnomaly"
    assert labels["key"] == "default"
    assert labels["severity"] == "warning"
    assert float(annotations["score"]) > float(annotations["threshold"])
    assert annotations["top_channels"] == "value"
    assert "stream key default" in annotations["summary"]
    assert active["status"]["state"] == "active"

    wait_until(
        lambda: "resolved" in webhook.statuses(alert_id),
        timeout_s=60,
        description=f"Alertmanager to notify the resolution of {alert_id}",
    )
    statuses = webhook.statuses(alert_id)
    assert statuses[0] == "firing"
    assert statuses[-1] == "resolved"
    assert alertmanager.alerts(alert_id=alert_id) == []
    sends_ok = worker.sample("spikewatch_alertmanager_sends_total", {"result": "ok"})
    assert sends_ok is not None and sends_ok >= 2

    assert worker.stop() == 0
    written = written_alerts(worker.log_path.parent, alert_id)
    assert set(written) == {"firing", "resolved"}
    assert labels["detector"] == written["firing"]["detector"]
    assert float(annotations["threshold"]) == pytest.approx(written["firing"]["threshold"], rel=1e-5)


def test_alert_survives_alertmanager_outage(tmp_path, alertmanager_factory, worker_factory, webhook):
    port = free_port()
    csv_path = write_spike_csv(tmp_path / "shift.csv", shift_at=SHIFT_AT)
    worker = worker_factory(csv_path, extra_config=sink_config(f"http://127.0.0.1:{port}"))

    wait_until(
        lambda: worker.sample("spikewatch_alerts_open") == 1, timeout_s=90, description="an alert to open"
    )
    failed = wait_until(
        lambda: worker.sample("spikewatch_alertmanager_sends_total", {"result": "failed"}),
        timeout_s=30,
        description="a failed post to the stopped Alertmanager",
    )
    assert failed >= 1

    alertmanager = alertmanager_factory(config=webhook_config(webhook.url), port=port)
    notified = wait_until(
        lambda: [
            alert for notification in list(webhook.notifications) for alert in notification["alerts"]
        ],
        timeout_s=60,
        description="the alert to reach Alertmanager after it started",
    )
    assert notified[0]["labels"]["alertname"] == "SpikewatchAnomaly"
    assert notified[0]["status"] == "firing"
    assert worker.sample("spikewatch_alertmanager_sends_total", {"result": "dropped"}) == 0
    assert worker.stop() == 0
    written = written_alerts(worker.log_path.parent, notified[0]["labels"]["alert_id"])
    assert "firing" in written
    assert alertmanager.process.poll() is None
