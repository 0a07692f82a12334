"""AlertmanagerSink's bookkeeping, without sending (its delivery is tested against a real Alertmanager in
tests/integration/test_alertmanager.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import Escalation
from streams.alertmanager import AlertmanagerSink


def escalation(n: int, kind: str = "high_risk_failure") -> dict[str, Any]:
    value = {
        "escalation_id": f"{kind}-{n}",
        "kind": kind,
        "severity": "critical",
        "dimension": "safety",
        "segment": {"journey": "shopper", "model_version": "m-1", "channel": "chat", "modality": "text"},
        "event_time": datetime.now(UTC).isoformat(),
        "turn_ids": [f"turn-{n}"],
        "summary": f"escalation {n}",
        "evidence": {},
    }
    return Escalation.model_validate(value).model_dump(mode="json")


def test_at_the_cap_high_risk_alerts_go_before_an_open_spike() -> None:
    # a spike is published once and not again until it resolves: dropped, it would lapse while still true
    sink = AlertmanagerSink("http://127.0.0.1:9", max_active=2)  # not started: nothing is sent
    sink.publish(escalation(1, kind="defect_spike"))
    for n in (2, 3, 4):
        sink.publish(escalation(n))
    assert [e["escalation_id"] for e in sink.escalations()] == ["defect_spike-1", "high_risk_failure-4"]
    assert sink.dropped == 2


def test_forget_drops_firing_alerts_of_sources_no_longer_owned_and_keeps_pending_resolves() -> None:
    # after a rebalance another worker updates these escalations: re-sent from here, they would fire again
    # what that worker resolves
    sink = AlertmanagerSink("http://127.0.0.1:9")  # not started: nothing is sent
    sink.publish(escalation(1), source=("inputs", 0))
    sink.publish(escalation(2), source=("inputs", 1))
    sink.publish(escalation(3, kind="defect_spike"), source=("observations", 1))
    sink.publish(escalation(4), source=None)  # no source: never forgotten
    sink.publish(escalation(5), source=("inputs", 1))
    sink.publish({**escalation(5), "status": "resolved", "revision": 2})  # a resolve still to deliver
    assert sink.forget(lambda source: source == ("inputs", 0)) == 2
    held = {e["escalation_id"]: e.get("status") for e in sink.escalations()}
    assert held == {
        "high_risk_failure-1": "firing",
        "high_risk_failure-4": "firing",
        "high_risk_failure-5": "resolved",
    }


def test_at_the_cap_the_alert_just_published_is_kept_and_superseded_resolves_are_not_listed() -> None:
    sink = AlertmanagerSink("http://127.0.0.1:9", max_active=2)
    sink.publish(escalation(1, kind="defect_spike"))
    sink.publish(escalation(2, kind="judge_drift"))
    sink.publish(escalation(3))  # a new high-risk failure: never sent if dropped now
    assert [e["escalation_id"] for e in sink.escalations()] == ["judge_drift-2", "high_risk_failure-3"]
    relabelled = AlertmanagerSink("http://127.0.0.1:9")
    first = escalation(4)
    relabelled.publish(first)
    relabelled.publish({**first, "revision": 2, "severity": "high"})  # the old labels' resolve is queued
    assert [(e["escalation_id"], e["revision"]) for e in relabelled.escalations()] == [
        ("high_risk_failure-4", 2)
    ]
    assert relabelled.active == 2  # the queued resolve of the first labels, and the alert
