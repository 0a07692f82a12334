"""The demo's escalations reach a real Alertmanager when ``CONVOWATCH_ALERTMANAGER_URL`` is set."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.config import Settings
from streams.demo import run_demo
from tests.support.alertmanager import AlertmanagerServer
from tests.support.broker import KafkaBroker
from tests.support.wait import wait_until
from tests.support.worker import REPO, WorkerProcess, produce_jsonl, run_cli

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


@pytest.mark.kafka
def test_worker_escalations_become_alerts(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[[str, dict[str, str]], WorkerProcess],
    tmp_path: Path,
) -> None:
    with AlertmanagerServer(REPO / "prometheus" / "alertmanager.yml") as alertmanager:
        prefix = unique_name("cw") + "."
        env = {
            "CONVOWATCH_TOPIC_PREFIX": prefix,
            "CONVOWATCH_APP_ID": unique_name("app"),
            "CONVOWATCH_ALERTMANAGER_URL": alertmanager.url,
        }
        turn = {
            "turn_id": "unsafe-7",
            "conversation_id": "c7",
            "ts": "2026-11-02T09:00:00Z",
            "journey": "driver_support",
            "channel": "voice",
            "model_version": "driver-v7",
        }
        verdict = {
            "turn_id": "unsafe-7",
            "ts": "2026-11-02T09:00:05Z",
            "judge_id": "judge-gpt",
            "judge_version": "1",
            "verdicts": [{"dimension": "safety", "label": "fail"}],
        }
        (tmp_path / "c.jsonl").write_text(json.dumps(turn) + "\n")
        (tmp_path / "v.jsonl").write_text(json.dumps(verdict) + "\n")
        produced = run_cli(
            "produce",
            "--broker",
            kafka_broker.bootstrap,
            "--chats",
            str(tmp_path / "c.jsonl"),
            "--verdicts",
            str(tmp_path / "v.jsonl"),
            env=env,
        )
        assert produced.returncode == 0, produced.stderr
        worker = make_worker(kafka_broker.bootstrap, env)
        alerts = wait_until(alertmanager.alerts, timeout=60, message=worker.log_tail)
        assert alerts[0]["labels"]["alertname"] == "ConvowatchHighRiskFailure"
        assert alerts[0]["labels"]["severity"] == "critical"
        assert alerts[0]["labels"]["journey"] == "driver_support"
        assert worker.value("convowatch_alertmanager_alerts_total", result="sent") >= 1


@pytest.mark.kafka
def test_an_alert_still_open_when_the_worker_restarts_is_sent_again_by_the_new_one(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[[str, dict[str, str]], WorkerProcess],
    tmp_path: Path,
) -> None:
    """A volume drop open in the aggregates, and a high-risk failure in the join: the restarted worker's sink
    started empty, and nothing sent them again before their next revision, so Alertmanager resolved them
    four re-send periods after the restart, the drop while traffic was still down, the page before anybody
    acted on it. The new worker sends them again from the recovered aggregates and join."""
    with AlertmanagerServer(REPO / "prometheus" / "alertmanager.yml") as alertmanager:
        env = {
            "CONVOWATCH_TOPIC_PREFIX": unique_name("cw") + ".",
            "CONVOWATCH_APP_ID": unique_name("app"),
            "CONVOWATCH_ALERTMANAGER_URL": alertmanager.url,
            "CONVOWATCH_ALERT_RESEND_SECONDS": "1",  # endsAt 4 s ahead: resolved 4 s after the last send
        }
        turns = []
        for minute in range(45):
            per_minute = 50 if minute < 40 else 3  # a journey's traffic collapses at minute 40
            for i in range(per_minute):
                turns.append(
                    {
                        "turn_id": f"t{minute}-{i}",
                        "conversation_id": f"c{minute}-{i}",
                        "ts": f"2026-11-02T09:{minute:02d}:{i * 60 // per_minute:02d}Z",
                        "journey": "driver_support",
                        "channel": "voice",
                        "model_version": "driver-v7",
                    }
                )
        unsafe = {
            "turn_id": "t44-1",
            "ts": "2026-11-02T09:44:30Z",
            "judge_id": "judge-gpt",
            "judge_version": "1",
            "verdicts": [{"dimension": "safety", "label": "fail"}],
        }
        produce_jsonl(kafka_broker.bootstrap, env, tmp_path, chats=turns, verdicts=[unsafe])

        def alerts() -> dict[str, dict[str, str]]:
            return {a["labels"]["alertname"]: a["labels"] for a in alertmanager.alerts()}

        both = {"ConvowatchVolumeAnomaly", "ConvowatchHighRiskFailure"}
        first = make_worker(kafka_broker.bootstrap, env)
        fired = wait_until(
            lambda: (found := alerts()).keys() == both and found, timeout=90, message=first.log_tail
        )
        assert fired["ConvowatchVolumeAnomaly"]["severity"] == "high"
        assert fired["ConvowatchHighRiskFailure"]["severity"] == "critical"
        assert first.stop() == 0
        wait_until(lambda: not alerts(), timeout=30, message=lambda: f"still active: {alerts()}")
        second = make_worker(kafka_broker.bootstrap, env)
        again = wait_until(
            lambda: (found := alerts()).keys() == both and found, timeout=90, message=second.log_tail
        )
        assert again == fired
