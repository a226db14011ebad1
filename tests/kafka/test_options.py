"""The [kafka] section and the Kafka options of `spikewatch run` and `spikewatch produce`."""

from __future__ import annotations

import pytest

from spikewatch.cli import build_parser
from spikewatch.commands.run import apply_run_options
from spikewatch.config import Config, config_from_dict, load_config
from spikewatch.errors import ConfigError


def test_defaults_commit_by_hand_and_run_until_stopped() -> None:
    kafka = Config().kafka
    assert kafka.key_from == "message_key"
    assert kafka.idle_timeout_s == 0.0
    assert kafka.heartbeat_interval_ms < kafka.session_timeout_ms


def test_config_toml_kafka_section_loads() -> None:
    assert load_config("config.toml").kafka == Config().kafka


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"bootstrap_servers": ["localhost"]}, "not HOST:PORT"),
        ({"heartbeat_interval_ms": 50_000}, "must be below kafka.session_timeout_ms"),
        ({"backoff_initial_ms": 500, "backoff_max_ms": 100}, "is below kafka.backoff_initial_ms"),
        ({"topics": []}, "kafka.topics"),
        ({"key_from": "header"}, "key_from"),
        ({"group": "x"}, "unknown key 'kafka.group'"),
    ],
)
def test_invalid_kafka_options_are_named(kafka: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"kafka": kafka})


def test_run_options_set_kafka_section() -> None:
    args = build_parser().parse_args(
        [
            "run",
            "--source",
            "kafka",
            "--bootstrap-servers",
            "127.0.0.1:1,127.0.0.1:2",
            "--topic",
            "a",
            "--topic",
            "b",
            "--idle-timeout-s",
            "5",
            "--max-records",
            "10",
        ]
    )
    config = apply_run_options(Config(), args)
    assert config.source.kind == "kafka"
    assert config.kafka.bootstrap_servers == ["127.0.0.1:1", "127.0.0.1:2"]
    assert config.kafka.topics == ["a", "b"]
    assert config.kafka.idle_timeout_s == 5.0
    assert args.max_records == 10


def test_produce_command_parses() -> None:
    args = build_parser().parse_args(
        ["produce", "data.csv", "--topic", "t", "--speed", "10", "--key-column", "host"]
    )
    assert args.command == "produce"
    assert args.path == "data.csv"
    assert args.speed == 10.0
    assert build_parser().parse_args(["produce", "--topic", "t"]).path is None
