"""Real Prometheus, Alertmanager and spikewatch processes for integration tests.

Prometheus and Alertmanager come from the Debian packages ``prometheus`` and
``prometheus-alertmanager``. Every process binds to 127.0.0.1 on a free port, keeps its files in
the test's temporary directory and is stopped by its PID: SIGTERM first, then SIGKILL if it has
not exited after ``STOP_TIMEOUT_S``. The fixtures at the bottom stop whatever a test started,
also when the test fails.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], T], *, timeout_s: float, description: str, interval_s: float = 0.25) -> T:
    """Call ``check`` until it returns a truthy value and return that value.

    Raises AssertionError naming ``description`` once ``timeout_s`` seconds have passed. The
    timeout bounds the test and does not measure speed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {description}")
        time.sleep(interval_s)


def http_json(url: str, *, data: Any = None, timeout_s: float = 5.0) -> Any:
    """GET ``url`` (or POST ``data`` as JSON) and return the decoded JSON reply."""
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        text = response.read()
    return json.loads(text) if text else None


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ServerProcess:
    """A child process serving HTTP on ``url``; its output goes to ``log_path``."""

    def __init__(self, name: str, command: list[str], *, port: int, log_path: Path, cwd: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            return http_ok(self.url + path)

        wait_until(ready, timeout_s=READY_TIMEOUT_S, description=f"{self.name} to answer {path}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to this process by its PID, if it still runs."""
        if self.process.poll() is None:
            os.kill(self.pid, signum)

    def stop(self) -> int:
        """Stop the process by its PID (SIGTERM, then SIGKILL) and return its exit code."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        return self.process.returncode


class PrometheusServer(ServerProcess):
    def query(self, expr: str) -> list[dict]:
        """Evaluate ``expr`` now; return the ``result`` list of the instant-query API."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        reply = http_json(url)
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def get_rules(self) -> list[dict]:
        """Return the rule groups of ``GET /api/v1/rules``, with each rule's health."""
        return http_json(self.url + "/api/v1/rules")["data"]["groups"]


class AlertmanagerServer(ServerProcess):
    def alerts(self, **filters: str) -> list[dict]:
        """Return the alerts of ``GET /api/v2/alerts``, filtered by label equality matchers."""
        query = urllib.parse.urlencode([("filter", f'{name}="{value}"') for name, value in filters.items()])
        return http_json(self.url + "/api/v2/alerts" + (f"?{query}" if query else ""))


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: install the Debian package {package}")
    return path


def start_prometheus(
    directory: Path,
    *,
    scrape_targets: list[str],
    scrape_interval_s: float = 1.0,
    rule_files: list[Path] = (),
    alertmanager_url: str | None = None,
) -> PrometheusServer:
    """Start Prometheus scraping ``scrape_targets`` (HOST:PORT) as job ``spikewatch``."""
    binary = _binary("prometheus", "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": f"{scrape_interval_s:g}s",
            "scrape_timeout": f"{scrape_interval_s:g}s",
            "evaluation_interval": f"{scrape_interval_s:g}s",
        },
        "scrape_configs": [{"job_name": "spikewatch", "static_configs": [{"targets": scrape_targets}]}],
        "rule_files": [str(path) for path in rule_files],
    }
    if alertmanager_url is not None:
        host = urllib.parse.urlsplit(alertmanager_url).netloc
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
    # JSON is valid YAML, so the config needs no YAML writer.
    config_path = directory / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=2))
    port = free_port()
    server = PrometheusServer(
        "prometheus",
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # The default resend delay of 1 m delays the first alert sent to Alertmanager.
            "--rules.alert.resend-delay=2s",
        ],
        port=port,
        log_path=directory / "prometheus.log",
        cwd=directory,
    )
    server.wait_ready("/-/ready")
    return server


def start_alertmanager(directory: Path, *, config: dict, port: int | None = None) -> AlertmanagerServer:
    """Start Alertmanager with ``config`` (the parsed alertmanager.yml) and clustering disabled."""
    binary = _binary("prometheus-alertmanager", "prometheus-alertmanager")
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "alertmanager.yml"
    config_path.write_text(json.dumps(config, indent=2))
    port = port or free_port()
    server = AlertmanagerServer(
        "alertmanager",
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        port=port,
        log_path=directory / "alertmanager.log",
        cwd=directory,
    )
    server.wait_ready("/-/ready")
    return server


def webhook_config(receiver_url: str) -> dict:
    """Alertmanager config that notifies ``receiver_url`` of firing and resolved alerts at once."""
    return {
        "route": {
            "receiver": "test",
            "group_by": ["alertname", "key"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "test", "webhook_configs": [{"url": receiver_url, "send_resolved": True}]}],
    }


# -- spikewatch workers ---------------------------------------------------------------------

#: Settings that open an alert within the first hundred records of a replay. The encoder is
#: "none" so that the score reacts to a level shift as soon as the detector is warm.
FAST_ALERT_CONFIG = """\
[windows]
length = 8
stride = 2

[encoder]
kind = "none"

[learning]
warmup_windows = 16
warmup_epochs = 10

[threshold]
min_history = 8

[checkpoint]
path = "checkpoints/spikewatch.ckpt"
interval_s = 0.0

[runtime]
progress = false
"""


#: Records of a spike CSV before this index are 0.05 s apart, later ones 0.75 s.
SLOW_FROM = 90
FIRST_TIMESTAMP = 1_700_000_000.0


def record_timestamp(index: int) -> float:
    """Timestamp of record ``index`` of :func:`write_spike_csv`'s file."""
    fast = min(index, SLOW_FROM)
    return FIRST_TIMESTAMP + 0.05 * fast + 0.75 * (index - fast)


def write_spike_csv(path: Path, *, records: int = 140, shift_at: int = 100, shift_length: int = 30) -> Path:
    """Write a ``timestamp,value`` CSV of Gaussian noise with a level shift of +20.

    The shift covers records ``shift_at`` to ``shift_at + shift_length - 1``. The record spacing
    of :func:`record_timestamp` makes a replay at ``--speed 1`` pass the warm-up in a few seconds
    and then last long enough to be observed.
    """
    generator = random.Random(7)
    lines = ["timestamp,value"]
    for index in range(records):
        value = generator.gauss(0.0, 1.0)
        if shift_at <= index < shift_at + shift_length:
            value += 20.0
        lines.append(f"{record_timestamp(index):.2f},{value:.5f}")
    path.write_text("\n".join(lines) + "\n")
    return path


class SpikewatchWorker(ServerProcess):
    """``spikewatch replay CSV`` at ``--speed``, serving metrics on its own port."""

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5.0) as response:
            return response.read().decode()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Return the value of one sample of the worker's exposition, or None if absent."""
        selector = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
        prefix = f"{name}{{{selector}}}" if selector else name
        for line in self.metrics_text().splitlines():
            if line.startswith(prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


def start_worker(
    directory: Path,
    csv_path: Path,
    *,
    extra_config: str = "",
    speed: float = 1.0,
    worker: str = "",
) -> SpikewatchWorker:
    """Start a spikewatch replay of ``csv_path`` in ``directory`` and wait for its metrics."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "config.toml"
    config = FAST_ALERT_CONFIG + extra_config
    if worker:
        config += f'\n[metrics]\nworker = "{worker}"\n'
    config_path.write_text(config)
    port = free_port()
    process = SpikewatchWorker(
        "spikewatch",
        [
            sys.executable, "-m", "spikewatch.cli", "replay", str(csv_path),
            "--config", str(config_path),
            "--metrics-address", f"127.0.0.1:{port}",
            "--speed", f"{speed:g}",
            "--no-progress",
        ],
        port=port,
        log_path=directory / "spikewatch.log",
        cwd=directory,
    )
    process.wait_ready("/metrics")
    return process


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """A list to append every started process to; each is stopped by its PID at teardown."""
    started: list[ServerProcess] = []
    yield started
    for server in reversed(started):
        server.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path, servers: list[ServerProcess]) -> Callable[..., PrometheusServer]:
    """Start Prometheus with :func:`start_prometheus`'s options; stopped at teardown."""
    count = iter(range(100))

    def start(**options: Any) -> PrometheusServer:
        server = start_prometheus(tmp_path / f"prometheus-{next(count)}", **options)
        servers.append(server)
        return server

    return start


@pytest.fixture
def alertmanager_factory(tmp_path: Path, servers: list[ServerProcess]) -> Callable[..., AlertmanagerServer]:
    """Start Alertmanager with :func:`start_alertmanager`'s options; stopped at teardown."""
    count = iter(range(100))

    def start(**options: Any) -> AlertmanagerServer:
        server = start_alertmanager(tmp_path / f"alertmanager-{next(count)}", **options)
        servers.append(server)
        return server

    return start


@pytest.fixture
def worker_factory(tmp_path: Path, servers: list[ServerProcess]) -> Callable[..., SpikewatchWorker]:
    """Start spikewatch replays with :func:`start_worker`'s options; stopped at teardown."""
    count = iter(range(100))

    def start(csv_path: Path, **options: Any) -> SpikewatchWorker:
        worker = start_worker(tmp_path / f"worker-{next(count)}", csv_path, **options)
        servers.append(worker)
        return worker

    return start
