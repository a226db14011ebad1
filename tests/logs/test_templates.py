"""Tests of template mining and of the mapping of templates onto channels."""

import logging

import pytest

from spikewatch.logs.templates import TemplateChannels, template_channel_names


def test_channel_names_count_and_order():
    names = template_channel_names(4)
    assert names == [
        "lines",
        "new_templates",
        "template_1",
        "template_2",
        "template_3",
        "template_other",
    ]
    assert template_channel_names(12)[2] == "template_01"


def test_channel_names_reject_zero():
    with pytest.raises(ValueError, match="template_channels"):
        template_channel_names(0)


def test_similar_messages_share_a_template():
    channels = TemplateChannels(template_channels=8)
    first = channels.add("instruction cache parity error corrected")
    second = channels.add("instruction cache parity error corrected")
    other = channels.add("generating core.2275")
    assert first == (0, True)
    assert second == (0, False)
    assert other == (1, True)


def test_numbers_become_parameters():
    channels = TemplateChannels(template_channels=8)
    channels.add("63543 double-hummer alignment exceptions")
    assert channels.add("162 double-hummer alignment exceptions") == (0, False)
    assert channels.templates() == [(1, "<*> double-hummer alignment exceptions", 2)]


def test_templates_past_the_channels_share_the_last():
    channels = TemplateChannels(template_channels=3)
    indices = [channels.add(message)[0] for message in ("a b", "c d e", "f g h i", "j k l m n")]
    assert indices == [0, 1, 2, 2]


def test_state_round_trip_keeps_numbering():
    channels = TemplateChannels(template_channels=8)
    for message in ("node 1 up", "disk sda full", "node 2 up"):
        channels.add(message)
    restored = TemplateChannels(template_channels=8)
    restored.load_state_bytes(channels.state_bytes())
    assert restored.templates() == channels.templates()
    assert restored.add("disk sdb full") == (1, False)
    assert restored.add("fan speed low now") == (2, True)


def test_no_drain3_ini_lookup(caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        TemplateChannels(template_channels=4).add("message one")
    assert not [record for record in caplog.records if "drain3.ini" in record.getMessage()]
