"""Tests of --detectors specifications and of the spikewatch warm-up in windows."""

import pytest

from spikewatch.config import Config
from spikewatch.evaluation.baselines import OnlineBaseline, pysad_available
from spikewatch.evaluation.benchmarks import EvaluationError
from spikewatch.evaluation.detectors import (
    SpikewatchDetector,
    parse_detectors,
    split_specs,
    warmup_windows_for,
)


def test_split_keeps_commas_inside_brackets():
    assert split_specs("spikewatch, a=spikewatch[x.y=[1,2];z.w=3],halfspacetrees") == [
        "spikewatch",
        "a=spikewatch[x.y=[1,2];z.w=3]",
        "halfspacetrees",
    ]


def test_registered_names():
    spikewatch, ann, trees = parse_detectors("spikewatch,spikewatch-ann,halfspacetrees")
    assert isinstance(spikewatch, SpikewatchDetector)
    assert spikewatch.overrides == {}
    assert ann.overrides == {"encoder": {"kind": "ann"}}
    assert isinstance(trees, OnlineBaseline)
    assert "HalfSpaceTrees" in trees.description
    assert "MinMaxScaler" in trees.description


def test_settings_become_configuration_keys():
    (detector,) = parse_detectors(
        "spikewatch-ann[windows.length=64;windows.stride=16;detector.objective=soft-boundary]"
    )
    assert detector.overrides == {
        "encoder": {"kind": "ann"},
        "windows": {"length": 64, "stride": 16},
        "detector": {"objective": "soft-boundary"},
    }
    config = detector.config(Config())
    assert config.windows.length == 64
    assert config.encoder.kind == "ann"
    assert (
        detector.name
        == "spikewatch-ann_windows.length=64_windows.stride=16_detector.objective=soft-boundary"
    )


def test_alias_names_the_detector():
    (detector,) = parse_detectors("wide=spikewatch[windows.length=64]")
    assert detector.name == "wide"


def test_toml_file_is_a_pipeline_configuration(tmp_path):
    path = tmp_path / "short.toml"
    path.write_text("[windows]\nlength = 16\nstride = 4\n")
    (detector,) = parse_detectors(str(path))
    assert detector.name == "short"
    assert detector.config(Config()).windows.length == 16


def test_baseline_settings_are_keyword_arguments():
    (detector,) = parse_detectors("halfspacetrees[n_trees=5;height=3]")
    assert "n_trees=5" in detector.description
    assert "height=3" in detector.description


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("isolation-forest", "unknown detector"),
        ("spikewatch,spikewatch", "appear twice"),
        ("spikewatch[windows]", "NAME=VALUE"),
        ("spikewatch[length=3]", "SECTION.KEY"),
        ("halfspacetrees[trees=3]", "invalid HalfSpaceTrees setting"),
        ("missing.toml", "not found"),
    ],
)
def test_invalid_specifications(text, message):
    with pytest.raises(EvaluationError, match=message):
        parse_detectors(text)


@pytest.mark.skipif(not pysad_available(), reason="PySAD is not installed")
def test_pysad_loda_is_seeded():
    (detector,) = parse_detectors("pysad-loda")
    assert "LODA" in detector.description
    assert "random_state=42" in detector.description


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(10, 1), (32, 1), (39, 1), (40, 2), (604, 72), (750, 90)],
)
def test_warmup_windows_end_within_the_rows(rows, expected):
    assert warmup_windows_for(rows, length=32, stride=8) == expected
