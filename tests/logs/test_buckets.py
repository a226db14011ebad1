"""Tests of template counts per key and time bucket."""

import pytest

from spikewatch.logs.buckets import BucketCounter
from spikewatch.logs.templates import template_channel_names

NAMES = template_channel_names(3)  # lines, new_templates, template_1, template_2, template_other


def counter(**options) -> BucketCounter:
    return BucketCounter(names=NAMES, bucket_seconds=60.0, **options)


def add(bucket_counter, key, timestamp, template=0, new=False, label=None, sequence=0, before=None):
    return bucket_counter.add(
        key, timestamp, template, new, label, sequence=sequence, position_before=before
    )


def test_bucket_closes_when_a_later_line_arrives():
    buckets = counter()
    assert add(buckets, "a", 0.0, template=0, new=True, label=0) == []
    assert add(buckets, "a", 30.0, template=1, new=True, label=1) == []
    assert add(buckets, "a", 59.9, template=0, label=0) == []
    closed = add(buckets, "a", 60.0, template=2, label=0)
    assert closed == [
        {
            "key": "a",
            "timestamp": 0.0,
            "values": {
                "lines": 3.0,
                "new_templates": 2.0,
                "template_1": 2.0,
                "template_2": 1.0,
                "template_other": 0.0,
            },
            "label": 1,
        }
    ]
    rest = buckets.close_all()
    assert rest[0]["timestamp"] == 60.0
    assert rest[0]["values"]["template_other"] == 1.0
    assert rest[0]["label"] == 0


def test_keys_have_their_own_buckets():
    buckets = counter()
    add(buckets, "a", 10.0)
    add(buckets, "b", 70.0)
    assert add(buckets, "a", 20.0) == []
    assert [record["key"] for record in buckets.close_all()] == ["a", "b"]


def test_unlabeled_stream_has_no_label():
    buckets = counter()
    add(buckets, "a", 10.0)
    assert buckets.close_all()[0]["label"] is None


def test_empty_buckets_are_cut_to_the_maximum():
    buckets = counter(max_empty_buckets=2)
    add(buckets, "a", 0.0, label=0)
    closed = add(buckets, "a", 600.0, label=0)
    assert [record["timestamp"] for record in closed] == [0.0, 60.0, 120.0]
    assert closed[1]["values"]["lines"] == 0.0
    assert closed[1]["label"] == 0


def test_no_empty_buckets_by_default():
    buckets = counter()
    add(buckets, "a", 0.0)
    assert [record["timestamp"] for record in add(buckets, "a", 600.0)] == [0.0]


def test_late_line_counts_in_the_open_bucket():
    buckets = counter()
    add(buckets, "a", 10.0)
    add(buckets, "a", 70.0)
    assert add(buckets, "a", 15.0) == []
    assert buckets.late_lines == 1
    assert buckets.close_all()[0]["values"]["lines"] == 2.0


def test_close_through_closes_only_finished_buckets():
    buckets = counter()
    add(buckets, "a", 10.0)
    add(buckets, "b", 100.0)
    closed = buckets.close_through(100.0)
    assert [record["key"] for record in closed] == ["a"]
    assert list(buckets.open) == ["b"]


def test_safe_position_is_before_the_oldest_open_bucket():
    buckets = counter()
    assert buckets.safe_position(7) == 7
    add(buckets, "a", 10.0, sequence=1, before=None)
    add(buckets, "b", 15.0, sequence=2, before=1)
    add(buckets, "a", 70.0, sequence=3, before=2)  # closes a's first bucket
    # b's bucket opened after line 1 and is still open, so only line 1 is safe to skip.
    assert buckets.safe_position(3) == 1
    buckets.close_all()
    assert buckets.safe_position(3) == 3


def test_counter_rejects_bad_settings():
    with pytest.raises(ValueError, match="bucket_seconds"):
        BucketCounter(names=NAMES, bucket_seconds=0.0)
    with pytest.raises(ValueError, match="must start with"):
        BucketCounter(names=["a", "b", "c"], bucket_seconds=1.0)
