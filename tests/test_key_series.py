"""Per-key score series: the top-N cap, the allow list and the removal of dropped keys."""

import math

import pytest
from prometheus_client import generate_latest

from spikewatch.metrics import KeySeries, PipelineMetrics


class FakeClock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self):
        return self.now_s


def exported_keys(metrics, name="spikewatch_key_score"):
    """Keys that have a ``name`` sample in the exposition."""
    keys = set()
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(name + "{"):
            keys.add(line.split('key="', 1)[1].split('"', 1)[0])
    return keys


def capped(metrics):
    return metrics.key_series_capped._value.get()


@pytest.fixture
def clock():
    return FakeClock()


def make_series(clock, **options):
    metrics = PipelineMetrics()
    options.setdefault("max_keys", 2)
    options.setdefault("refresh_s", 10.0)
    options.setdefault("max_tracked_keys", 1000)
    return metrics, KeySeries(metrics, clock=clock, **options)


def test_keys_beyond_cap_not_exported(clock):
    metrics, series = make_series(clock)
    series.update("a", 1.0, 2.0)
    series.update("b", 2.0, 2.0)
    series.update("c", 3.0, 2.0)
    assert exported_keys(metrics) == {"a", "b"}
    assert exported_keys(metrics, "spikewatch_key_threshold") == {"a", "b"}
    assert capped(metrics) == 1


def test_rerank_keeps_top_scores(clock):
    metrics, series = make_series(clock)
    series.update("a", 1.0, 2.0)
    series.update("b", 2.0, 2.0)
    series.update("c", 3.0, 2.0)
    clock.now_s = 10.0
    series.update("b", 2.5, 2.0)
    assert exported_keys(metrics) == {"b", "c"}
    assert series.exported == {"b", "c"}
    sample = f'spikewatch_key_score{{key="c"}} 3.0'
    assert sample in generate_latest(metrics.registry).decode()


def test_allow_list_always_exported(clock):
    metrics, series = make_series(clock, max_keys=1, allow=["quiet"])
    series.update("loud", 9.0, 1.0)
    series.update("quiet", 0.01, 1.0)
    series.update("other", 5.0, 1.0)
    clock.now_s = 10.0
    series.update("other", 5.0, 1.0)
    assert exported_keys(metrics) == {"loud", "quiet"}
    clock.now_s = 20.0
    series.update("loud", 0.1, 1.0)
    assert exported_keys(metrics) == {"other", "quiet"}


def test_zero_cap_exports_only_allow_list(clock):
    metrics, series = make_series(clock, max_keys=0, allow=["pump-7"])
    series.update("pump-7", 1.0, 2.0)
    series.update("pump-8", 3.0, 2.0)
    assert exported_keys(metrics) == {"pump-7"}
    assert capped(metrics) == 1


def test_untrusted_threshold_not_exported(clock):
    metrics, series = make_series(clock)
    series.update("a", 1.0, None)
    assert exported_keys(metrics) == {"a"}
    assert exported_keys(metrics, "spikewatch_key_threshold") == set()


def test_nan_score_ranks_last(clock):
    metrics, series = make_series(clock, max_keys=1)
    series.update("a", math.nan, 1.0)
    series.update("b", 0.5, 1.0)
    clock.now_s = 10.0
    series.update("b", 0.5, 1.0)
    assert exported_keys(metrics) == {"b"}


def test_forgotten_key_loses_series(clock):
    metrics, series = make_series(clock, max_keys=5, max_tracked_keys=2, allow=["a"])
    series.update("a", 1.0, 1.0)
    series.update("b", 1.0, 1.0)
    series.update("c", 1.0, 1.0)
    assert exported_keys(metrics) == {"b", "c"}


def test_key_gone_from_engine_dropped(clock):
    metrics, series = make_series(clock, max_keys=5, allow=["b"])
    live = {"a", "b", "c"}
    series.follow(lambda: live)
    for key in ("a", "b", "c"):
        series.update(key, 1.0, 1.0)
    live -= {"a", "b"}
    clock.now_s = 10.0
    series.update("c", 1.0, 1.0)
    assert exported_keys(metrics) == {"c"}
    assert series.exported == {"c"}


def test_invalid_options_rejected():
    with pytest.raises(ValueError, match="max_keys = -1"):
        KeySeries(PipelineMetrics(), max_keys=-1, refresh_s=1.0, max_tracked_keys=10)
