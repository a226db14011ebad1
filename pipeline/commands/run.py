"""``spikewatch run`` and ``spikewatch replay``: run the pipeline on a source."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

import torch

from spikewatch.config import Config, load_config, parse_host_port
from spikewatch.engine import Engine, install_signal_handlers
from spikewatch.errors import ConfigError, SpikewatchError
from spikewatch.metrics import KeySeries, PipelineMetrics
from spikewatch.sinks import AlertmanagerSink, AlertSink, JsonlAlertSink, JsonlDeadLetterSink
from spikewatch.sources import CsvSource, DemoSource, JsonlSource, Source, StdinSource


def build_source(config: Config) -> Source:
    """Open the source named by ``source.kind``."""
    if config.logs.format:
        from spikewatch.logs.source import build_log_source

        return build_log_source(config)
    source = config.source
    if source.kind == "demo":
        return DemoSource()
    if source.kind == "csv":
        csv_source = CsvSource(source.path)
        csv_source.require_columns(
            timestamp_field=source.timestamp_field,
            key_field=source.key_field,
            label_field=source.label_field,
        )
        return csv_source
    if source.kind == "jsonl":
        return JsonlSource(source.path)
    if source.kind == "stdin":
        return StdinSource()
    if source.kind == "kafka":
        from spikewatch.kafka import build_kafka_source

        return build_kafka_source(config)
    raise ConfigError(f"source.kind = {source.kind!r} has no source")


def build_alert_sinks(config: Config, metrics: PipelineMetrics, *, checkpoint_path: str) -> list[AlertSink]:
    """Open the JSON-lines alert sink, and the Alertmanager sink when ``alertmanager.url`` is set.

    ``checkpoint_path`` is this worker's checkpoint file; the Alertmanager sink keeps its state
    beside it unless ``alertmanager.state_path`` is set.
    """
    sinks: list[AlertSink] = [JsonlAlertSink(config.alerts.path)]
    alertmanager = config.alertmanager
    if alertmanager.url:
        sinks.append(
            AlertmanagerSink(
                alertmanager.url,
                metrics=metrics,
                severity=alertmanager.severity,
                resend_interval_s=alertmanager.resend_interval_s,
                timeout_s=alertmanager.timeout_s,
                retry_backoff_s=alertmanager.retry_backoff_s,
                retry_backoff_max_s=alertmanager.retry_backoff_max_s,
                queue_size=alertmanager.queue_size,
                state_path=alertmanager.state_path or checkpoint_path + ".alertmanager.json",
            )
        )
    return sinks


def run_pipeline(config: Config, args: argparse.Namespace) -> int:
    """Build the engine for ``config``, run it and print the summary."""
    if config.runtime.torch_threads:
        torch.set_num_threads(config.runtime.torch_threads)
    source = build_source(config)
    metrics = PipelineMetrics()
    server = None
    if config.metrics.enabled:
        host, port = parse_host_port(config.metrics.address, option="--metrics-address")
        try:
            server, _ = metrics.serve(host, port)
        except OSError as error:
            raise SpikewatchError(
                f"cannot serve metrics on {config.metrics.address}: {error.strerror}; "
                "choose another --metrics-address or set metrics.enabled = false"
            ) from None
    worker = config.metrics.worker or f"{socket.gethostname()}:{os.getpid()}"
    metrics.worker_info.labels(worker=worker).set(1)
    key_series = KeySeries(
        metrics,
        max_keys=config.metrics.key_series_max,
        allow=config.metrics.key_series_allow,
        refresh_s=config.metrics.key_series_refresh_s,
        max_tracked_keys=config.windows.max_keys,
    )
    alert_sinks = build_alert_sinks(
        config, metrics, checkpoint_path=source.checkpoint_path(config.checkpoint.path)
    )
    dead_letter_sink = JsonlDeadLetterSink(config.dead_letter.path)
    if config.source.kind == "kafka":
        from spikewatch.kafka import build_kafka_sinks

        alert_sinks, dead_letter_sink = build_kafka_sinks(
            config, source, metrics, alert_sinks=alert_sinks, dead_letter_sink=dead_letter_sink
        )
    engine = Engine(
        config,
        source,
        alert_sinks=alert_sinks,
        dead_letter_sink=dead_letter_sink,
        metrics=metrics,
        observers=[key_series.observe],
    )
    key_series.follow(lambda: engine.keys if engine.keys is not None else ())
    for sink in alert_sinks:
        if isinstance(sink, AlertmanagerSink):
            sink.follow(engine.open_alerts)
            engine.observers.append(sink.observe)
    install_signal_handlers(engine)
    try:
        summary = engine.run(max_records=args.max_records, resume=args.resume)
    finally:
        if server is not None:
            server.shutdown()
    print(summary.format(config.windows.length))
    if args.summary_json:
        try:
            summary.write_json(args.summary_json)
        except OSError as error:
            raise SpikewatchError(
                f"cannot write the summary to {args.summary_json}: {error.strerror}"
            ) from None
    return 0


def apply_run_options(config: Config, args: argparse.Namespace) -> Config:
    overrides: dict[str, dict] = {}
    if args.metrics_address is not None:
        overrides.setdefault("metrics", {})["address"] = args.metrics_address
    if args.no_metrics:
        overrides.setdefault("metrics", {})["enabled"] = False
    if args.no_progress:
        overrides.setdefault("runtime", {})["progress"] = False
    if getattr(args, "source", None):
        overrides.setdefault("source", {})["kind"] = args.source
    if getattr(args, "path", None):
        path = Path(args.path)
        kind = args.format or ("jsonl" if ".jsonl" in path.suffixes or ".json" in path.suffixes else "csv")
        source = overrides.setdefault("source", {})
        source.update(kind=kind, path=str(path))
        for option, key in (
            ("key_column", "key_field"),
            ("timestamp_column", "timestamp_field"),
            ("label_column", "label_field"),
            ("default_key", "default_key"),
        ):
            if getattr(args, option) is not None:
                source[key] = getattr(args, option)
        if args.ignore_column:
            source["ignore_fields"] = args.ignore_column
    if getattr(args, "speed", None) is not None:
        overrides.setdefault("source", {})["speed"] = args.speed
    if getattr(args, "bootstrap_servers", None):
        overrides.setdefault("kafka", {})["bootstrap_servers"] = args.bootstrap_servers.split(",")
    if getattr(args, "topic", None):
        overrides.setdefault("kafka", {})["topics"] = args.topic
    if getattr(args, "idle_timeout_s", None) is not None:
        overrides.setdefault("kafka", {})["idle_timeout_s"] = args.idle_timeout_s
    if getattr(args, "log_format", None):
        overrides.setdefault("logs", {})["format"] = args.log_format
    if getattr(args, "log_bucket_seconds", None) is not None:
        overrides.setdefault("logs", {})["bucket_seconds"] = args.log_bucket_seconds
    return config.with_overrides(overrides) if overrides else config


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more records")
    return value


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML configuration (default: built-in defaults, as in config.toml)")
    parser.add_argument("--summary-json", metavar="PATH", help="also write the end-of-run summary as JSON to PATH")
    parser.add_argument("--metrics-address", metavar="HOST:PORT", help="serve Prometheus metrics here (default 127.0.0.1:9108)")
    parser.add_argument("--no-metrics", action="store_true", help="do not serve metrics")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint at checkpoint.path")
    parser.add_argument("--max-records", type=_non_negative_int, metavar="N", help="stop after reading N records (a checkpoint is written)")
    parser.add_argument("--speed", type=float, metavar="X", help="replay at X times real time; 0 = as fast as possible")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.add_argument("--log-format", metavar="FORMAT", help='read raw log lines split by this loghub-style format, e.g. "<Date> <Time> <Level> <Content>", and count drain3 templates per time bucket (sets logs.format)')
    parser.add_argument("--log-bucket-seconds", type=float, metavar="S", help="width of the time buckets that log templates are counted in, in seconds (sets logs.bucket_seconds, default 60)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity (default INFO)")



def add_parsers(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run the pipeline on the configured source (default: the built-in demo stream)")
    add_run_options(run)
    run.add_argument("--source", choices=["demo", "csv", "jsonl", "stdin", "kafka"], help="override source.kind")
    run.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="Kafka brokers, comma-separated (sets kafka.bootstrap_servers)")
    run.add_argument("--topic", action="append", metavar="NAME", help="Kafka topic to consume; repeatable (sets kafka.topics)")
    run.add_argument("--idle-timeout-s", type=float, metavar="S", help="end a Kafka run after S seconds without a record, with a checkpoint and the summary (sets kafka.idle_timeout_s)")
    run.set_defaults(handler=main)

    replay = commands.add_parser("replay", help="replay a recorded CSV or JSON-lines file through the pipeline")
    replay.add_argument("path", help="CSV or JSON-lines file (optionally .gz)")
    replay.add_argument("--format", choices=["csv", "jsonl"], help="file format (default: from the file name)")
    replay.add_argument("--key-column", help="column holding the stream key (default: one key for the whole file)")
    replay.add_argument("--default-key", help="stream key when there is no key column (default: 'default')")
    replay.add_argument("--timestamp-column", help="column holding the timestamp (default: 'timestamp')")
    replay.add_argument("--label-column", help="column holding a 0/1 anomaly label")
    replay.add_argument("--ignore-column", action="append", help="column that is not a channel; repeatable")
    add_run_options(replay)
    replay.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    config = apply_run_options(load_config(args.config), args)
    return run_pipeline(config, args)
