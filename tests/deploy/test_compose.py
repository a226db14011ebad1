"""deploy/docker-compose.yml and deploy/Dockerfile, validated statically.

No container engine runs on the build machines, so nothing here builds an image or starts the
stack. The compose file is validated against the compose-spec JSON schema that check-jsonschema
vendors, the Dockerfile with hadolint, and both are checked for the wiring between services.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from spikewatch.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
WORKER_CONFIG = DEPLOY / "spikewatch" / "config.toml"
SERVICES = {"kafka", "worker-1", "worker-2", "producer", "prometheus", "alertmanager", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: pip install -e '.[dev]'")
    return path


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, arguments = line.partition(" ")
            instructions.append((name.upper(), arguments.strip()))
    return instructions


def test_compose_matches_schema():
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services(compose):
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], (name, dependency)


def test_kafka_runs_in_kraft_mode(compose):
    environment = compose["services"]["kafka"]["environment"]
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert not any("ZOOKEEPER" in name for name in environment)
    assert "PLAINTEXT://kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"].split(",")


def test_workers_share_checkpoints_only(compose):
    workers = [compose["services"][name] for name in ("worker-1", "worker-2")]
    mounts = [set(worker["volumes"]) for worker in workers]
    assert "checkpoints:/var/lib/spikewatch/checkpoints" in mounts[0] & mounts[1]
    assert len(mounts[0] & mounts[1]) == 1
    assert {worker["hostname"] for worker in workers} == {"worker-1", "worker-2"}
    for worker in workers:
        assert worker["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_volumes_and_bind_mounts_exist(compose):
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)


def test_published_ports_local_and_unique(compose):
    published = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host, host_port, _ = port.split(":")
            assert host == "127.0.0.1", (name, port)
            published.append(host_port)
    assert len(published) == len(set(published))


def test_worker_config_wired_to_services(compose):
    config = load_config(WORKER_CONFIG)
    assert config.source.kind == "kafka"
    assert [server.split(":")[0] for server in config.kafka.bootstrap_servers] == ["kafka"]
    assert config.alertmanager.url == "http://alertmanager:9093"
    assert config.metrics.address == "0.0.0.0:9108"
    # Checkpoints go to the shared volume; the sink state and the JSON-lines files stay per worker.
    assert config.checkpoint.path.startswith("/var/lib/spikewatch/checkpoints/")
    for path in (config.alertmanager.state_path, config.alerts.path, config.dead_letter.path):
        assert not Path(path).is_absolute(), path
    workdir = [arguments for name, arguments in dockerfile_instructions() if name == "WORKDIR"][-1]
    assert "worker-1-data:" + workdir in compose["services"]["worker-1"]["volumes"]


def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_structure():
    instructions = dockerfile_instructions()
    names = [name for name, _ in instructions]
    base = instructions[0]
    assert base[0] == "FROM"
    assert ":" in base[1] and not base[1].endswith(":latest")
    runs = " ".join(arguments for name, arguments in instructions if name == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in runs
    user = [arguments for name, arguments in instructions if name == "USER"]
    assert user and not user[-1].startswith(("root", "0"))
    assert names.index("USER") > max(i for i, name in enumerate(names) if name == "RUN")
    for name, arguments in instructions:
        if name == "COPY":
            *sources, _ = shlex.split(arguments)
            for source in sources:
                assert (REPO / source).exists(), source
    expose = [arguments for name, arguments in instructions if name == "EXPOSE"]
    assert expose == [load_config(WORKER_CONFIG).metrics.address.rsplit(":", 1)[1]]
    copied_config = [a for n, a in instructions if n == "COPY" and "deploy/spikewatch/config.toml" in a][0]
    command = [a for n, a in instructions if n == "CMD"][0]
    assert copied_config.split()[-1] in command
    assert [a for n, a in instructions if n == "ENTRYPOINT"] == ['["spikewatch"]']


def test_dockerignore_keeps_copied_sources():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for name, arguments in dockerfile_instructions():
        if name == "COPY":
            *sources, _ = shlex.split(arguments)
            for source in sources:
                assert source.rstrip("/") in kept, source
