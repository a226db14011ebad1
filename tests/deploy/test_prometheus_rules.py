"""deploy/prometheus and deploy/alertmanager: promtool's rule unit tests and config checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .promql import PROMETHEUS_SERIES, exported_names, metric_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "spikewatch.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "spikewatch.rules.test.yml"


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not found: install the Debian package {package}")
    return path


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **options)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_rule_unit_tests():
    result = run([tool("promtool", "prometheus"), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules():
    result = run([tool("promtool", "prometheus"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config(tmp_path):
    # The compose file mounts the rules at /etc/prometheus/rules; point there at the repository.
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(RULES)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = run([tool("promtool", "prometheus"), "check", "config", str(local)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 rules found" in result.stdout


def test_amtool_check_config():
    result = run([tool("amtool", "prometheus-alertmanager"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_firing_test():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alert_rules()} - tested == set()


def test_flaky_scrape_case_present():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    stale_series = [
        series["series"]
        for test in tests
        for series in test["input_series"]
        if "stale" in str(series["values"]).split()
    ]
    assert any(name.startswith("spikewatch_key_score") for name in stale_series)


def test_rules_name_exported_metrics():
    exported = exported_names() | PROMETHEUS_SERIES
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], sorted(names - exported))


def test_rules_have_severity_and_text():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_prometheus_targets_are_compose_workers():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["spikewatch"]["static_configs"][0]["targets"]
    workers = sorted(name for name in compose["services"] if name.startswith("worker-"))
    assert sorted(target.split(":")[0] for target in targets) == workers
    assert {target.split(":")[1] for target in targets} == {"9108"}
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]
