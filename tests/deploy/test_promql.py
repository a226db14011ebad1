"""The metric-name lexer that the dashboard and rule checks rely on."""

import pytest

from .promql import exported_names, label_values_metric, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="spikewatch"} == 0', {"up"}),
        ("max_over_time(up[2m]) == 0", {"up"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(spikewatch_window_score_bucket{instance=~"$instance"}[$__rate_interval])))',
            {"spikewatch_window_score_bucket"},
        ),
        (
            "sum by (instance) (rate(a_total[10m])) / sum by (instance) (rate(b_total[10m])) > 1e-2",
            {"a_total", "b_total"},
        ),
        ("time() - x_seconds > 600 and on (instance) y_total offset 5m", {"x_seconds", "y_total"}),
        ('max by (key) (last_over_time(k{key=~"${key}"}[2m])) > max by (key) (t)', {"k", "t"}),
    ],
)
def test_metric_names_found(expr, names):
    assert metric_names(expr) == names


def test_label_values_query():
    assert label_values_metric("label_values(spikewatch_worker_info, instance)") == "spikewatch_worker_info"
    with pytest.raises(ValueError, match="not a label_values"):
        label_values_metric("query_result(up)")


def test_exported_names_have_suffixes():
    names = exported_names()
    assert "spikewatch_records_total" in names
    assert "spikewatch_records" not in names
    assert "spikewatch_window_score_bucket" in names
    assert "spikewatch_active_keys" in names
