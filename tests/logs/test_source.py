"""Tests of raw log sources: BGL as template-count records, replay with --log-format, resume."""

import json
import math
from collections import Counter

import pytest

from spikewatch.cli import main
from spikewatch.config import Config
from spikewatch.errors import ConfigError, InvalidRecord
from spikewatch.evaluation.benchmarks import BGL_FORMAT
from spikewatch.logs.buckets import BucketCounter
from spikewatch.logs.formats import LogFormat
from spikewatch.logs.source import LogLineSource, TemplateCountSource, build_log_source
from spikewatch.logs.templates import TemplateChannels
from spikewatch.records import RecordDecoder

LINES = [
    "- 1000 INFO node 1 started",
    "- 1010 INFO node 2 started",
    "E 1070 ERROR disk sda failed",
    "this line has no timestamp",
    "- 1130 INFO node 3 started",
    "- 1135 WARN fan 4 slow",
    "- 1200 INFO node 5 started",
    "truncated",
]


def log_source(path, state_path=None, channels=8) -> TemplateCountSource:
    templates = TemplateChannels(template_channels=channels)
    return TemplateCountSource(
        LogLineSource(path),
        log_format=LogFormat("<Label> <Timestamp> <Level> <Content>"),
        templates=templates,
        counter=BucketCounter(names=templates.names, bucket_seconds=60.0),
        state_path=state_path,
    )


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_bgl_buckets_match_the_lines(shared_data):
    path = shared_data / "loghub" / "BGL" / "BGL_2k.log"
    config = Config().with_overrides(
        {"source": {"kind": "csv", "path": str(path)}, "logs": {"format": BGL_FORMAT}}
    )
    items = list(build_log_source(config))
    records = [item.payload for item in items]

    # Expected buckets, counted straight from the file: field 2 is the Unix time, field 1 the tag.
    lines = [line.split(" ", 2) for line in path.read_text(errors="replace").splitlines()]
    per_bucket = Counter(math.floor(int(fields[1]) / 60) for fields in lines)
    alerted = {math.floor(int(fields[1]) / 60) for fields in lines if fields[0] != "-"}

    assert len(records) == len(per_bucket) == 1380
    assert sum(record["values"]["lines"] for record in records) == 2000
    assert {record["timestamp"] / 60 for record in records if record["label"]} == alerted
    assert len(alerted) == 125
    assert all(
        record["values"]["lines"] == per_bucket[record["timestamp"] / 60] for record in records
    )
    # Every line is counted in exactly one template channel.
    for record in records:
        values = record["values"]
        assert (
            sum(v for name, v in values.items() if name.startswith("template_")) == values["lines"]
        )
    decoded = RecordDecoder().decode(records[0])
    assert len(decoded.values) == 34


def test_unparsed_line_is_passed_on_for_dead_lettering(log_file):
    items = list(log_source(log_file))
    unparsed = [item.payload for item in items if isinstance(item.payload, str)]
    assert unparsed == ["this line has no timestamp", "truncated"]
    reasons = []
    for payload in unparsed:
        with pytest.raises(InvalidRecord) as error:
            RecordDecoder().decode(payload)
        reasons.append(error.value.reason)
    assert reasons == ["invalid_timestamp", "invalid_log_line"]
    records = [item.payload for item in items if isinstance(item.payload, dict)]
    assert [record["timestamp"] for record in records] == [960.0, 1020.0, 1080.0, 1200.0]
    assert [record["label"] for record in records] == [0, 1, 0, 0]
    assert [record["values"]["lines"] for record in records] == [2.0, 1.0, 2.0, 1.0]


def test_record_positions_never_skip_open_lines(log_file):
    positions = [item.position for item in log_source(log_file) if isinstance(item.payload, dict)]
    # The 960 s bucket is emitted when line 3 opens the next one: lines up to 2 are covered.
    assert positions == [2, 4, 6, 8]


def test_resume_maps_templates_onto_the_same_channels(log_file, tmp_path):
    state = tmp_path / "templates.state"
    whole = [item.payload for item in log_source(log_file) if isinstance(item.payload, dict)]

    first = log_source(log_file, state_path=state)
    items = iter(first)
    next(item for item in items if isinstance(item.payload, dict))
    second_record = next(item for item in items if isinstance(item.payload, dict))
    first.commit(second_record.position)
    assert state.exists()

    resumed = log_source(log_file, state_path=state)
    resumed.seek(second_record.position)
    rest = [item.payload for item in resumed if isinstance(item.payload, dict)]
    assert [record["timestamp"] for record in rest] == [1080.0, 1200.0]
    for record, expected in zip(rest, whole[2:]):
        # Re-read lines of the bucket that was open at the checkpoint are no longer new.
        channels = {k: v for k, v in record["values"].items() if k != "new_templates"}
        assert channels == {k: v for k, v in expected["values"].items() if k != "new_templates"}


def test_key_field_must_be_in_the_format(log_file):
    with pytest.raises(ConfigError, match="key_field"):
        TemplateCountSource(
            LogLineSource(log_file),
            log_format=LogFormat("<Timestamp> <Content>"),
            templates=TemplateChannels(template_channels=2),
            counter=BucketCounter(
                names=TemplateChannels(template_channels=2).names, bucket_seconds=1.0
            ),
            key_field="Node",
        )


def test_demo_source_has_no_log_lines():
    config = Config().with_overrides({"logs": {"format": "<Timestamp> <Content>"}})
    with pytest.raises(ConfigError, match="no raw log lines"):
        build_log_source(config)


def test_replay_with_log_format_dead_letters_bad_lines(log_file, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(
        f'[alerts]\npath = "{tmp_path / "alerts.jsonl"}"\n'
        f'[dead_letter]\npath = "{tmp_path / "dead.jsonl"}"\n'
        f'[checkpoint]\npath = "{tmp_path / "ckpt" / "run.ckpt"}"\n'
    )
    code = main(
        [
            "replay",
            str(log_file),
            "--log-format",
            "<Label> <Timestamp> <Level> <Content>",
            "--log-bucket-seconds",
            "60",
            "--config",
            str(config),
            "--no-metrics",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "4 accepted" in capsys.readouterr().out
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [letter["reason"] for letter in letters] == ["invalid_timestamp", "invalid_log_line"]
    assert [letter["payload"] for letter in letters] == ["this line has no timestamp", "truncated"]
    assert (tmp_path / "ckpt" / "run.ckpt.templates").exists()
