"""``spikewatch produce``: send a recorded stream, or the built-in demo, to a Kafka topic."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from spikewatch.config import load_config
from spikewatch.errors import SpikewatchError
from spikewatch.records import RecordDecoder
from spikewatch.sources import CsvSource, DemoSource, JsonlSource, Source

logger = logging.getLogger(__name__)


def add_parsers(commands: argparse._SubParsersAction) -> None:
    produce = commands.add_parser(
        "produce",
        help="send a CSV or JSON-lines file (default: the built-in demo stream) to a Kafka topic",
    )
    produce.add_argument(
        "path",
        nargs="?",
        help="CSV or JSON-lines file (optionally .gz); omitted: the built-in demo",
    )
    produce.add_argument(
        "--topic", metavar="NAME", help="topic to send to (default: the first of kafka.topics)"
    )
    produce.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="Kafka brokers, comma-separated (default: kafka.bootstrap_servers)",
    )
    produce.add_argument(
        "--config",
        metavar="PATH",
        help="TOML configuration for [kafka] and the column options of [source]",
    )
    produce.add_argument(
        "--format", choices=["csv", "jsonl"], help="file format (default: from the file name)"
    )
    produce.add_argument(
        "--key-column",
        help="column holding the stream key, sent as the message key "
        "(default: one key for the whole file)",
    )
    produce.add_argument(
        "--default-key", help="stream key when there is no key column (default: 'default')"
    )
    produce.add_argument(
        "--timestamp-column", help="column holding the timestamp (default: 'timestamp')"
    )
    produce.add_argument("--label-column", help="column holding a 0/1 anomaly label")
    produce.add_argument(
        "--ignore-column", action="append", help="column that is not a channel; repeatable"
    )
    produce.add_argument(
        "--speed",
        type=float,
        default=0.0,
        metavar="X",
        help="send at X times real time, by the records' timestamps; "
        "0 = as fast as possible (default)",
    )
    produce.add_argument(
        "--max-records", type=int, metavar="N", help="stop after sending N records"
    )
    produce.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )
    produce.set_defaults(handler=main)


def _open_source(args: argparse.Namespace) -> Source:
    if args.path is None:
        return DemoSource()
    path = Path(args.path)
    kind = args.format or (
        "jsonl" if ".jsonl" in path.suffixes or ".json" in path.suffixes else "csv"
    )
    return JsonlSource(path) if kind == "jsonl" else CsvSource(path)


def main(args: argparse.Namespace) -> int:
    from spikewatch.kafka.client import new_producer, quiet_client_logs
    from spikewatch.kafka.produce import ProduceSummary, decoded_records, produce_records

    overrides: dict[str, dict] = {}
    if args.bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap_servers.split(",")}
    source_options = {
        "key_field": args.key_column,
        "default_key": args.default_key,
        "timestamp_field": args.timestamp_column,
        "label_field": args.label_column,
        "ignore_fields": args.ignore_column,
    }
    overrides["source"] = {key: value for key, value in source_options.items() if value is not None}
    config = load_config(args.config).with_overrides(overrides)
    if args.speed < 0:
        raise SpikewatchError(f"--speed {args.speed} must be 0 (as fast as possible) or positive")
    topic = args.topic or config.kafka.topics[0]
    source = _open_source(args)
    src = config.source
    decoder = RecordDecoder(
        key_field=src.key_field,
        default_key=src.default_key,
        timestamp_field=src.timestamp_field,
        label_field=src.label_field,
        ignore_fields=src.ignore_fields,
        channels=config.validation.channels,
        max_future_s=config.validation.max_future_s,
    )
    quiet_client_logs()
    from kafka.errors import KafkaError

    try:
        producer = new_producer(config.kafka)
    except KafkaError as error:
        raise SpikewatchError(
            f"cannot connect to Kafka at {','.join(config.kafka.bootstrap_servers)}: {error}; "
            "check --bootstrap-servers and that the broker is running"
        ) from None
    logger.info(
        "sending %s to topic %s at %s", source.name, topic, ",".join(config.kafka.bootstrap_servers)
    )
    summary = ProduceSummary()
    try:
        produce_records(
            decoded_records(source, decoder, summary),
            producer,
            topic,
            speed=args.speed,
            max_records=args.max_records,
            summary=summary,
        )
    except KeyboardInterrupt:
        logger.info("interrupted: flushing the records sent so far")
        producer.flush()
    finally:
        producer.close()
    print(summary.format(topic))
    return 0
