"""Tests of log formats: splitting lines into fields and reading their timestamps."""

import pytest

from spikewatch.errors import InvalidRecord
from spikewatch.evaluation.benchmarks import BGL_FORMAT
from spikewatch.logs.formats import LogFormat, LogFormatError

BGL_LINE = (
    "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 "
    "R30-M0-N9-C:J16-U01 RAS KERNEL FATAL data TLB error interrupt"
)


def test_bgl_line_splits_into_fields():
    fields = LogFormat(BGL_FORMAT).parse(BGL_LINE)
    assert fields["Label"] == "KERNDTLB"
    assert fields["Timestamp"] == "1118536327"
    assert fields["Node"] == "R30-M0-N9-C:J16-U01"
    assert fields["Level"] == "FATAL"
    assert fields["Content"] == "data TLB error interrupt"


def test_content_keeps_inner_spaces_and_runs_of_blanks_split_fields():
    fmt = LogFormat("<Level>  <Timestamp> <Content>")
    fields = fmt.parse("WARN 1700000000   disk   sda1 is 91% full")
    assert fields["Level"] == "WARN"
    assert fields["Content"] == "disk   sda1 is 91% full"
    assert fmt.timestamp(fields) == 1700000000.0


def test_literal_text_between_fields():
    fmt = LogFormat("[<Timestamp>] <Level>: <Content>")
    fields = fmt.parse("[2024-05-01T12:00:00Z] ERROR: pump 7 stalled")
    assert fields["Level"] == "ERROR"
    assert fmt.timestamp(fields) == 1714564800.0


def test_date_and_time_fields_with_strptime_format():
    fmt = LogFormat(
        "<Date> <Time> <Pid> <Level> <Component>: <Content>", timestamp_format="%y%m%d %H%M%S"
    )
    fields = fmt.parse("081109 203615 148 INFO dfs.DataNode$PacketResponder: Received block")
    assert fields["Component"] == "dfs.DataNode$PacketResponder"
    assert fmt.timestamp(fields) == 1226262975.0


def test_unmatched_line_is_invalid_log_line():
    with pytest.raises(InvalidRecord) as error:
        LogFormat("[<Timestamp>] <Level>: <Content>").parse("no brackets here")
    assert error.value.reason == "invalid_log_line"


def test_bad_timestamp_is_invalid_timestamp():
    fmt = LogFormat("<Timestamp> <Content>")
    with pytest.raises(InvalidRecord) as error:
        fmt.timestamp(fmt.parse("yesterday something happened"))
    assert error.value.reason == "invalid_timestamp"


def test_timestamp_off_strptime_format_is_invalid_timestamp():
    fmt = LogFormat("<Date> <Time> <Content>", timestamp_format="%Y-%m-%d %H:%M:%S")
    with pytest.raises(InvalidRecord) as error:
        fmt.timestamp(fmt.parse("2024/05/01 12:00:00 message"))
    assert error.value.reason == "invalid_timestamp"


@pytest.mark.parametrize(
    ("format", "message"),
    [
        ("<Timestamp> <Level>", "no <Content>"),
        ("<Level> <Content>", "no <Timestamp>"),
        ("<Date> <Level> <Content>", "no <Timestamp>"),
        ("<Timestamp> <Level> <Level> <Content>", "twice"),
    ],
)
def test_format_errors_name_the_fix(format, message):
    with pytest.raises(LogFormatError, match=message):
        LogFormat(format)
