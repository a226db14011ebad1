"""The Grafana dashboard and its provisioning, checked statically (no Grafana server here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .promql import PROMETHEUS_SERIES, exported_names, label_values_metric, metric_names
from .test_metrics_exposition import PLANNED_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "spikewatch.json"


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included, without the rows themselves."""
    found = []
    for panel in dashboard["panels"]:
        found.extend(panel.get("panels", []))
        if panel["type"] != "row":
            found.append(panel)
    return found


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel."""
    return [(panel["title"], target["expr"]) for panel in panels(dashboard) for target in panel["targets"]]


def test_every_query_names_exported_metric(dashboard):
    exported = exported_names() | PROMETHEUS_SERIES
    for title, expr in queries(dashboard):
        names = metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, f"panel {title!r} queries metrics the product does not export: {sorted(unknown)}"


def test_variables_name_exported_metrics(dashboard):
    exported = exported_names()
    variables = dashboard["templating"]["list"]
    assert {variable["name"] for variable in variables} == {"instance", "key"}
    for variable in variables:
        assert label_values_metric(variable["query"]["query"]) in exported


def test_dashboard_shows_every_planned_metric(dashboard):
    used = set().union(*(metric_names(expr) for _, expr in queries(dashboard)))
    assert sorted(set(PLANNED_NAMES) - used) == []


def test_panels_use_provisioned_datasource(dashboard):
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


def test_panel_layout_valid(dashboard):
    every = dashboard["panels"]
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0, panel["title"]
    for panel in panels(dashboard):
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    assert dashboard["uid"] == "spikewatch-overview"


def test_provisioning_points_at_mounted_dashboards():
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "spikewatch.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
