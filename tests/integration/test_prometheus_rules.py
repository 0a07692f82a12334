"""promtool over the Prometheus config, rules and rule unit tests, plus what promtool does not check:
every alert carries a severity and the three annotations, and every rule has unit tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import PrometheusError, promtool

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
SEVERITIES = {"critical", "high", "medium", "low"}  # what prometheus/alertmanager.yml routes on


def _run_promtool(*args: str | Path) -> None:
    try:
        result = promtool(*args)
    except PrometheusError as exc:
        pytest.fail(str(exc), pytrace=False)
    command = " ".join(["promtool", *(str(a) for a in args)])
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"


def _rules() -> list[dict[str, Any]]:
    return [rule for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for rule in g["rules"]]


def _unit_tests() -> list[dict[str, Any]]:
    return [test for f in TEST_FILES for test in yaml.safe_load(f.read_text())["tests"]]


def test_files_exist() -> None:
    assert CONFIG.is_file()
    assert RULE_FILES, "no rule files in prometheus/rules/"
    assert TEST_FILES, "no rule unit tests in prometheus/tests/"


@pytest.mark.prometheus
def test_promtool_check_config() -> None:
    # also checks every rule file the config names
    _run_promtool("check", "config", CONFIG)


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    _run_promtool("check", "rules", *RULE_FILES)


@pytest.mark.prometheus
def test_promtool_test_rules() -> None:
    _run_promtool("test", "rules", *TEST_FILES)


def test_config_loads_the_rule_files_and_alertmanager() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    loaded = {p for pattern in config["rule_files"] for p in CONFIG.parent.glob(pattern)}
    assert set(RULE_FILES) <= loaded, f"rule files not loaded by prometheus.yml: {set(RULE_FILES) - loaded}"
    targets = [
        t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    workers = [t for sc in jobs["convowatch"]["static_configs"] for t in sc["targets"]]
    assert workers == ["join-1:9108", "join-2:9108", "aggregate:9108"]


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    problems = []
    for rule in _rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        severity = rule.get("labels", {}).get("severity")
        # a templated severity passes the series' own through (the spike backstop's with a default)
        templated = (
            "{{ $labels.severity }}",
            "{{ if $labels.severity }}{{ $labels.severity }}{{ else }}high{{ end }}",
        )
        if severity not in SEVERITIES and severity not in templated:
            problems.append(f"{name}: severity {severity!r} not in {sorted(SEVERITIES)}")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not annotations.get(key):
                problems.append(f"{name}: no {key} annotation")
        if not str(annotations.get("runbook_url", "")).startswith("https://"):
            problems.append(f"{name}: runbook_url is not an https URL")
        if not name.startswith("Convowatch"):
            problems.append(f"{name}: alert names start with Convowatch (Alertmanager routes on it)")
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    problems = [f"{a}: no unit test where it fires" for a in sorted(alerts - firing)]
    problems += [f"{a}: no unit test where it stays silent" for a in sorted(alerts - silent)]
    assert not problems, "\n".join(problems)


def test_every_recording_rule_has_a_unit_test() -> None:
    tested = {
        name
        for test in _unit_tests()
        for case in test.get("promql_expr_test", [])
        for name in re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", case["expr"])
        if case.get("exp_samples")
    }
    records = {rule["record"] for rule in _rules() if "record" in rule}
    assert records <= tested, f"recording rules without a unit test: {sorted(records - tested)}"
