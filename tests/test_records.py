import json
import time

import pytest

from spikewatch.errors import InvalidRecord
from spikewatch.records import Record, RecordDecoder, check_order, parse_timestamp


def reason_of(decoder: RecordDecoder, raw) -> str:
    with pytest.raises(InvalidRecord) as error:
        decoder.decode(raw)
    return error.value.reason


def test_flat_row_and_schema_form_decode_alike():
    decoder = RecordDecoder(key_field="host", label_field="label")
    flat = decoder.decode({"host": "a", "timestamp": "2024-01-01 00:00:00", "cpu": "1.5", "label": "1"})
    schema = decoder.decode(
        json.dumps({"key": "a", "timestamp": 1704067200, "values": {"cpu": 1.5}, "label": 1})
    )
    assert flat == schema == Record("a", 1704067200.0, {"cpu": 1.5}, 1)


def test_first_record_fixes_channels():
    decoder = RecordDecoder()
    decoder.decode({"timestamp": 1, "a": 1, "b": 2})
    assert decoder.channels == ("a", "b")
    assert reason_of(decoder, {"timestamp": 2, "a": 1}) == "missing_channel"
    assert reason_of(decoder, {"timestamp": 2, "a": 1, "b": 2, "c": 3}) == "unknown_channel"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"timestamp": 1, "a": ', "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ({"a": 1}, "missing_timestamp"),
        ({"timestamp": "", "a": 1}, "missing_timestamp"),
        ({"timestamp": "yesterday", "a": 1}, "invalid_timestamp"),
        ({"timestamp": 1, "a": "abc"}, "non_numeric_value"),
        ({"timestamp": 1, "a": "nan"}, "non_finite_value"),
        ({"timestamp": 1, "a": float("inf")}, "non_finite_value"),
        ({"timestamp": 1, "a": True}, "non_numeric_value"),
        ({"timestamp": 1}, "no_channels"),
        ({"timestamp": time.time() + 10 * 86400, "a": 1}, "timestamp_in_future"),
        ({"timestamp": 1, "a": 1, None: ["surplus"]}, "unknown_channel"),
        ({"timestamp": 1, "a": None}, "missing_channel"),
    ],
)
def test_invalid_records_name_their_reason(raw, reason):
    assert reason_of(RecordDecoder(), raw) == reason


def test_label_must_be_binary():
    decoder = RecordDecoder(label_field="y")
    assert reason_of(decoder, {"timestamp": 1, "a": 1, "y": "7"}) == "invalid_label"


def test_key_override_replaces_key_field():
    decoder = RecordDecoder(key_field="host")
    record = decoder.decode({"host": "a", "timestamp": 1, "v": 1}, key_override="kafka-key")
    assert record.key == "kafka-key"


def test_iso_timestamps_with_and_without_offset():
    assert parse_timestamp("1970-01-01T00:01:00Z") == 60.0
    assert parse_timestamp("1970-01-01 00:01:00") == 60.0
    assert parse_timestamp("1970-01-01T01:01:00+01:00") == 60.0


def test_order_checks():
    record = Record("k", 100.0, {"a": 1.0})
    check_order(record, None, 0.0)
    check_order(record, 99.0, 0.0)
    with pytest.raises(InvalidRecord, match="duplicate"):
        check_order(record, 100.0, 0.0)
    with pytest.raises(InvalidRecord, match="out_of_order"):
        check_order(record, 105.0, 2.0)
    check_order(record, 101.0, 2.0)  # within the lateness allowance


@pytest.mark.parametrize(
    "raw",
    [
        '{"a":' * 5000 + "1" + "}" * 5000,
        "[" * 100000 + "]" * 100000,
        '{"timestamp": 1, "x": ' + "9" * 5000 + "}",
    ],
)
def test_pathological_json_is_invalid_json(raw):
    assert reason_of(RecordDecoder(), raw) == "invalid_json"


def test_key_that_is_not_valid_unicode_is_rejected():
    raw = '{"key": "k\\ud800", "timestamp": 1, "values": {"a": 1}}'
    assert reason_of(RecordDecoder(), raw) == "invalid_key"


def test_millisecond_timestamps_get_a_hint():
    with pytest.raises(InvalidRecord, match="looks like milliseconds"):
        RecordDecoder().decode({"timestamp": time.time() * 1000, "a": 1})
