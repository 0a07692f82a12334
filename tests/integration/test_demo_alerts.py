"""The demo's escalations reach a real Alertmanager when ``CONVOWATCH_ALERTMANAGER_URL`` is set."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from streams.config import Settings
from streams.demo import run_demo
from tests.support.alertmanager import AlertmanagerServer
from tests.support.worker import REPO

pytestmark = pytest.mark.prometheus


def test_demo_escalations_become_alerts(tmp_path: Path) -> None:
    with AlertmanagerServer(REPO / "prometheus" / "alertmanager.yml") as alertmanager:
        settings = Settings(alertmanager_url=alertmanager.url)
        report = run_demo(settings, duration=3, out_dir=tmp_path, metrics_port=0, stream=io.StringIO())
        escalations = {line for line in (tmp_path / "escalations.jsonl").read_text().splitlines()}
        assert escalations, "the demo raised no escalation"
        alerts = alertmanager.alerts()
        ids = {a["labels"]["escalation_id"] for a in alerts}
        expected = {json.loads(line)["escalation_id"] for line in escalations}
        assert ids == expected
        assert {a["labels"]["alertname"] for a in alerts} == {"ConvowatchHighRiskFailure"}
        assert report["outputs"]["escalations"] >= len(expected)
