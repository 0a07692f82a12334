"""convowatch's own alerts and the Prometheus backstops of the same incidents in a real Alertmanager with the
shipped routing and inhibit rules: while convowatch's alert for a thing fires, the backstop for it is muted;
without one, the backstop notifies.

Each test runs its own Alertmanager (``prometheus/alertmanager.yml`` with its receivers on a local webhook
and short group timings, as in ``test_alertmanager.py``): a high-risk or drift backstop is muted by any alert
of its kind and severity, so the alerts of another test would mute it too. convowatch's alerts go through the
real :class:`~streams.alertmanager.AlertmanagerSink`; the backstops are posted as Prometheus posts them: the
rule's labels, the labels its expression keeps and the external labels of ``prometheus/prometheus.yml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import Escalation
from streams.alertmanager import AlertmanagerSink
from streams.alertmanager_payload import alert_labels
from streams.taxonomy import load_taxonomy
from streams.views.spikes import category_severities
from tests.support.alertmanager import AlertmanagerError, AlertmanagerServer, write_config_for_test
from tests.support.wait import wait_until
from tests.support.webhook import Received, WebhookServer

pytestmark = pytest.mark.prometheus

PROMETHEUS = Path(__file__).resolve().parents[2] / "prometheus"
RULES = {
    rule["alert"]: rule
    for group in yaml.safe_load((PROMETHEUS / "rules" / "convowatch.yml").read_text())["groups"]
    for rule in group["rules"]
    if "alert" in rule
}
EXTERNAL_LABELS = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["global"]["external_labels"]
SPIKE_SEVERITY = category_severities(load_taxonomy())


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture
def alertmanager(webhook: WebhookServer, tmp_path: Path) -> Iterator[AlertmanagerServer]:
    server = AlertmanagerServer(write_config_for_test(webhook.url, tmp_path))
    try:
        server.start()
    except AlertmanagerError as exc:
        server.close()
        pytest.fail(f"Alertmanager could not start: {exc}", pytrace=False)
    yield server
    server.close()


@pytest.fixture
def sink(alertmanager: AlertmanagerServer) -> Iterator[AlertmanagerSink]:
    sink = AlertmanagerSink(alertmanager.url, batch_delay=0.05).start()
    yield sink
    sink.close()


def backstop(alertname: str, **labels: str) -> dict[str, Any]:
    """The alert Prometheus posts for rule ``alertname`` of prometheus/rules/convowatch.yml with the labels
    its expression keeps (``labels``)."""
    rule_labels = {k: v for k, v in RULES[alertname]["labels"].items() if "{{" not in v}  # templates: given
    return {
        "labels": {"alertname": alertname, **rule_labels, **labels, **EXTERNAL_LABELS},
        "annotations": {"summary": alertname},
        "startsAt": datetime.now(UTC).isoformat(),
    }


def escalation(kind: str, severity: str, name: str, **fields: Any) -> dict[str, Any]:
    """A valid escalation of ``kind`` (validated by the output model); ``name`` makes its id."""
    value: dict[str, Any] = {
        "escalation_id": f"{kind}-{name}",
        "kind": kind,
        "severity": severity,
        "dimension": None,
        "segment": {
            "journey": None,
            "intent": None,
            "model_version": None,
            "channel": None,
            "modality": None,
        },
        "event_time": datetime.now(UTC).isoformat(),
        "turn_ids": [],
        "summary": f"{kind} {name}",
        "evidence": {},
        **fields,
    }
    return Escalation.model_validate(value).model_dump(mode="json")


def spike(category: str, journey: str, **slice_values: str) -> dict[str, Any]:
    """A defect_spike escalation of one slice, as SpikeView makes it (fields outside the slice None)."""
    where = "-".join(f"{k}={v}" for k, v in sorted(slice_values.items()))
    return escalation(
        "defect_spike",
        "high",
        f"{category}-{journey}-{where}",
        segment={"journey": journey, "intent": None, "model_version": None, "channel": None, "modality": None}
        | slice_values,
        evidence={"category": category, "source": "judge-a", "baseline_rate": 0.02, "current_rate": 0.09},
    )


def spike_backstop(
    category: str, journey: str, model_version: str = "*", intent: str = "*"
) -> dict[str, Any]:
    """ConvowatchDefectSpikeActive of one slice: a field outside the slice is "*", the severity the
    category's in the taxonomy (set_spike_active)."""
    return backstop(
        "ConvowatchDefectSpikeActive",
        category=category,
        journey=journey,
        model_version=model_version,
        intent=intent,
        severity=SPIKE_SEVERITY[category],
    )


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _states(alertmanager: AlertmanagerServer) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """Alertmanager's active alerts by label set: their status (state, inhibitedBy, silencedBy)."""
    return {_key(a["labels"]): a["status"] for a in alertmanager.alerts()}


def _notified(received: list[Received], alertname: str) -> list[Received]:
    return [
        r
        for r in received
        if any(a["labels"]["alertname"] == alertname and a["status"] == "firing" for a in r.body["alerts"])
    ]


def test_a_high_risk_failure_pages_once_and_its_backstop_pages_when_no_convowatch_alert_fires(
    alertmanager: AlertmanagerServer, webhook: WebhookServer, sink: AlertmanagerSink
) -> None:
    failure = escalation(
        "high_risk_failure",
        "critical",
        "shopper-1",
        dimension="safety",
        segment={"journey": "shopper", "model_version": "shopper-v42", "intent": None, "channel": None},
        turn_ids=["turn-1"],
    )
    sink.publish(failure)
    own = _key(alert_labels(failure))
    wait_until(lambda: own in _states(alertmanager), timeout=10, message=lambda: alertmanager.alerts())
    # Prometheus: the escalation counter rose, ConvowatchHighRiskEscalations{severity="critical"} fires
    backup = backstop("ConvowatchHighRiskEscalations", severity="critical")
    alertmanager.post([backup])
    muted = _key(backup["labels"])
    status = wait_until(
        lambda: (s := _states(alertmanager).get(muted)) and s["state"] == "suppressed" and s,
        timeout=10,
        message=lambda: _states(alertmanager),
    )
    own_fingerprint = next(a["fingerprint"] for a in alertmanager.alerts() if _key(a["labels"]) == own)
    assert status["inhibitedBy"] == [own_fingerprint]
    assert _states(alertmanager)[own] == {"state": "active", "inhibitedBy": [], "silencedBy": []}

    # the page is convowatch's alert; the backstop's group is flushed (every second here) and sends nothing
    webhook.wait_for(lambda r: _notified(r, "ConvowatchHighRiskFailure"), timeout=10)
    wait_until(
        lambda: alertmanager.flushes("ConvowatchHighRiskEscalations") >= 3,
        timeout=10,
        message=lambda: alertmanager.tail(),
    )
    assert not _notified(webhook.received, "ConvowatchHighRiskEscalations")
    assert [r.path for r in _notified(webhook.received, "ConvowatchHighRiskFailure")] == ["/convowatch-pager"]

    # convowatch's alert ends (here: resolved; likewise when its posts stop and it times out): the backstop
    # is all that says the incident happened, and pages
    sink.publish({**failure, "status": "resolved", "revision": 2})
    page = webhook.wait_for(lambda r: _notified(r, "ConvowatchHighRiskEscalations"), timeout=10)[0]
    assert page.path == "/convowatch-pager"


def test_without_convowatch_alerts_every_backstop_notifies_by_its_severity(
    alertmanager: AlertmanagerServer, webhook: WebhookServer
) -> None:
    backstops = {
        "ConvowatchHighRiskEscalations": (
            backstop("ConvowatchHighRiskEscalations", severity="critical"),
            "pager",
        ),
        # a safety spike pages, as convowatch's own alert of it does (until 2026-11-26 it went to on-call)
        "ConvowatchDefectSpikeActive": (spike_backstop("unsafe", "shopper"), "pager"),
        "ConvowatchJudgeDriftEscalations": (backstop("ConvowatchJudgeDriftEscalations"), "oncall"),
        "ConvowatchVendorSlaBreached": (
            backstop("ConvowatchVendorSlaBreached", vendor_id="vendor-a", sla="gold_accuracy"),
            "team",
        ),
    }
    alertmanager.post([alert for alert, _ in backstops.values()])
    for alertname, (_, receiver) in backstops.items():
        pages = webhook.wait_for(lambda r, name=alertname: _notified(r, name), timeout=10)
        assert {r.path for r in pages} == {f"/convowatch-{receiver}"}
    assert all(s["state"] == "active" for s in _states(alertmanager).values())


def test_spike_drift_and_vendor_backstops_are_muted_by_convowatch_alerts_of_the_same_thing_only(
    alertmanager: AlertmanagerServer, sink: AlertmanagerSink
) -> None:
    own = [
        spike("unsafe", "shopper"),  # the journey's slice
        spike("hallucination", "shopper", model_version="shopper-v42"),
        spike("biased", "shopper", intent="returns"),
        escalation(
            "judge_drift", "high", "judge-a-safety", dimension="safety", evidence={"judge_id": "judge-a"}
        ),
        escalation(
            "vendor_sla", "medium", "vendor-a", evidence={"vendor_id": "vendor-a", "sla": "gold_accuracy"}
        ),
    ]
    muted = [
        spike_backstop("unsafe", "shopper"),
        spike_backstop("hallucination", "shopper", model_version="shopper-v42"),
        spike_backstop("biased", "shopper", intent="returns"),
        backstop("ConvowatchJudgeDriftEscalations"),
        backstop("ConvowatchVendorSlaBreached", vendor_id="vendor-a", sla="gold_accuracy"),
    ]
    # slices whose version or intent shows as "other" (past a guard or the series budget)
    muted_folded = [
        spike_backstop("hallucination", "shopper", model_version="other"),
        spike_backstop("biased", "shopper", intent="other"),
        # the metric's guard admits 20 journeys, the app's alerts name 50: "shopper" may be "other" there
        spike_backstop("unsafe", "other"),
        spike_backstop("hallucination", "other", model_version="other"),
    ]
    notifying = [
        spike_backstop("unsafe", "driver", model_version="other"),  # no convowatch spike there
        spike_backstop("unsafe", "shopper", model_version="shopper-v42"),  # a finer slice of the category
        spike_backstop("hallucination", "shopper"),  # the journey, where only a model version alerted
        spike_backstop("hallucination", "shopper", model_version="shopper-v41"),
        spike_backstop("biased", "shopper", intent="refunds"),
        spike_backstop("biased", "shopper", model_version="shopper-v42"),
        spike_backstop("unsafe", "driver"),  # another journey
        spike_backstop("privacy", "shopper"),  # another category
        spike_backstop("privacy", "other"),  # journeys past the guard, a category no convowatch spike has
        backstop("ConvowatchVendorSlaBreached", vendor_id="vendor-b", sla="gold_accuracy"),
        backstop("ConvowatchVendorSlaBreached", vendor_id="vendor-a", sla="turnaround"),
        backstop("ConvowatchHighRiskEscalations", severity="high"),  # no convowatch high-risk alert
    ]
    for esc in own:
        sink.publish(esc)
    own_keys = [_key(alert_labels(esc)) for esc in own]
    wait_until(
        lambda: set(own_keys) <= set(_states(alertmanager)),
        timeout=10,
        message=lambda: f"{_states(alertmanager)}; sink error {sink.last_error}",
    )
    alertmanager.post(muted + muted_folded + notifying)

    def settled() -> bool:
        states = _states(alertmanager)

        def state(alert: dict[str, Any]) -> str | None:
            return states.get(_key(alert["labels"]), {}).get("state")

        return all(state(a) == "suppressed" for a in muted + muted_folded) and all(
            state(a) == "active" for a in notifying
        )

    wait_until(settled, timeout=10, message=lambda: _states(alertmanager))
    states = _states(alertmanager)
    fingerprints = {_key(a["labels"]): a["fingerprint"] for a in alertmanager.alerts()}
    for alert, esc in zip(muted, own, strict=True):  # each muted by the convowatch alert of its incident
        assert states[_key(alert["labels"])]["inhibitedBy"] == [fingerprints[_key(alert_labels(esc))]]
    assert all(states[key]["state"] == "active" for key in own_keys)  # convowatch's alerts are never muted
