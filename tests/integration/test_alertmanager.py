"""Escalations reach people: AlertmanagerSink -> a real Alertmanager with the shipped routing -> webhooks.

One Alertmanager (the ``prometheus-alertmanager`` binary) runs for the module, with
``prometheus/alertmanager.yml`` as shipped except for two things: the receivers' URLs point at a local
webhook server (``<webhook>/<receiver name>``) and the group timings are shortened so notifications come
within a second. The routing tree, matchers, grouping and inhibition rules are the shipped ones.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import Escalation
from streams.alertmanager import AlertmanagerSink
from streams.alertmanager_payload import alert_from_escalation
from streams.taxonomy import load_taxonomy
from tests.support.alertmanager import (
    SHIPPED_CONFIG,
    AlertmanagerError,
    AlertmanagerServer,
    find_amtool,
    write_config_for_test,
)
from tests.support.wait import wait_until
from tests.support.webhook import Received, WebhookServer

pytestmark = pytest.mark.prometheus

GENERATOR = "http://convowatch.test:9108/metrics"
#: Owning team per dimension, from the default taxonomy (the sink labels alerts with it)
TEAMS = load_taxonomy().teams()


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        amtool = find_amtool()
    except AlertmanagerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=30, check=False)


# -- the shipped configuration ----------------------------------------------------------------------


def test_shipped_config_passes_amtool_check_config() -> None:
    result = _amtool("check-config", str(SHIPPED_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "ConvowatchHighRiskFailure", "severity": "critical"}, "convowatch-pager"),
        ({"alertname": "ConvowatchDefectSpike", "severity": "critical"}, "convowatch-pager"),
        ({"alertname": "ConvowatchHighRiskFailure", "severity": "high"}, "convowatch-oncall"),
        ({"alertname": "ConvowatchJudgeDrift", "severity": "medium"}, "convowatch-team"),
        ({"alertname": "ConvowatchDefectSpike", "severity": "low"}, "convowatch-team"),
        ({"alertname": "SomethingElse", "severity": "critical"}, "convowatch-team"),
    ],
)
def test_shipped_routing_by_severity(labels: dict[str, str], receiver: str) -> None:
    matchers = [f"{k}={v}" for k, v in labels.items()]
    result = _amtool("config", "routes", "test", f"--config.file={SHIPPED_CONFIG}", *matchers)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


# -- a real Alertmanager --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


@pytest.fixture(scope="module")
def alertmanager(
    webhook: WebhookServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AlertmanagerServer]:
    path = write_config_for_test(webhook.url, tmp_path_factory.mktemp("alertmanager"))
    check = _amtool("check-config", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    server = AlertmanagerServer(path)
    try:
        server.start()
    except AlertmanagerError as exc:
        server.close()
        pytest.fail(f"Alertmanager could not start: {exc}", pytrace=False)
    yield server
    server.close()


@pytest.fixture
def sink(alertmanager: AlertmanagerServer) -> Iterator[AlertmanagerSink]:
    sink = AlertmanagerSink(alertmanager.url, generator_url=GENERATOR, batch_delay=0.05, teams=TEAMS).start()
    yield sink
    sink.close()


def escalation(journey: str, n: int, **overrides: Any) -> dict[str, Any]:
    """A valid escalation value in segment ``journey``/m-1 (validated by the output model)."""
    value: dict[str, Any] = {
        "escalation_id": f"high_risk_failure-{journey}-{n}",
        "kind": "high_risk_failure",
        "severity": "critical",
        "dimension": "safety",
        "segment": {"journey": journey, "model_version": "m-1", "channel": "chat", "modality": "text"},
        "event_time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "turn_ids": [f"turn-{journey}-{n}"],
        "summary": f"High-risk failure on turn turn-{journey}-{n}: judge judge-a says safety fails",
        "evidence": {
            "dimensions": ["safety"],
            "triggers": [["judge", "judge-a", "safety"]],
            "risk_topics": [],
            "runbook_url": "https://runbooks.example.com/convowatch/unsafe",
        },
    }
    value.update(overrides)
    return Escalation.model_validate(value).model_dump(mode="json")


def _by_id(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["labels"]["escalation_id"]: a for a in alerts if "escalation_id" in a["labels"]}


def _notified(received: list[Received], receiver: str, eid: str, status: str) -> list[dict[str, Any]]:
    """Webhook payloads for ``receiver`` in which alert ``eid`` has ``status``."""
    return [
        r.body
        for r in received
        if r.path == f"/{receiver}"
        and r.body["receiver"] == receiver
        and any(a["labels"].get("escalation_id") == eid and a["status"] == status for a in r.body["alerts"])
    ]


def _wait_notified(webhook: WebhookServer, receiver: str, eid: str, status: str) -> None:
    webhook.wait_for(lambda r: _notified(r, receiver, eid, status), timeout=10)


def _wait_alert(
    alertmanager: AlertmanagerServer, eid: str, updated_after: datetime | None = None
) -> dict[str, Any]:
    """Alertmanager's active alert ``eid`` (updated after ``updated_after``), waiting up to 10 s for it."""

    def probe() -> dict[str, Any] | None:
        alert = _by_id(alertmanager.alerts()).get(eid)
        if alert is None or (
            updated_after is not None and datetime.fromisoformat(alert["updatedAt"]) <= updated_after
        ):
            return None
        return alert

    alert = wait_until(probe, timeout=10, message=lambda: f"alerts: {alertmanager.alerts()}")
    assert alert is not None
    return alert


def test_escalations_reach_the_receiver_for_their_severity_and_resolve(
    alertmanager: AlertmanagerServer, webhook: WebhookServer, sink: AlertmanagerSink
) -> None:
    tag = uuid.uuid4().hex[:8]
    critical = [escalation(f"shop-{tag}", i) for i in (1, 2)]  # same labels but escalation_id
    high = escalation(
        f"drive-{tag}",
        1,
        severity="high",
        dimension="hallucination",
        evidence={"risk_topics": ["earnings"], "runbook_url": "https://runbooks.example.com/h"},
    )
    medium = escalation(f"shop-{tag}", 3, kind="judge_drift", severity="medium", dimension=None)
    everything = [*critical, high, medium]
    for esc in everything:
        sink.publish(esc)

    # Alertmanager holds one alert per escalation, labelled and annotated as alert_from_escalation says.
    ids = {e["escalation_id"] for e in everything}
    wait_until(
        lambda: ids <= set(_by_id(alertmanager.alerts())),
        timeout=10,
        message=lambda: f"Alertmanager alerts: {alertmanager.alerts()}; sink error {sink.last_error}",
    )
    active = _by_id(alertmanager.alerts())
    receivers = {e["escalation_id"]: "convowatch-pager" for e in critical}
    receivers |= {high["escalation_id"]: "convowatch-oncall", medium["escalation_id"]: "convowatch-team"}
    for esc in everything:
        got = active[esc["escalation_id"]]
        assert got["receivers"] == [{"name": receivers[esc["escalation_id"]]}]
        team = TEAMS.get(esc["dimension"])  # the sink adds the taxonomy's owner
        expected = alert_from_escalation({**esc, "team": team}, GENERATOR)
        assert got["labels"] == expected["labels"]
        assert got["labels"].get("team") == team
        assert got["annotations"] == expected["annotations"]
        assert json.loads(got["annotations"]["evidence"])["turn_ids"] == esc["turn_ids"]
        assert got["generatorURL"] == GENERATOR
        assert got["status"]["state"] == "active"
        starts = datetime.fromisoformat(got["startsAt"])
        assert abs(starts - datetime.fromisoformat(esc["event_time"])) < timedelta(milliseconds=1)
        assert datetime.fromisoformat(got["endsAt"]) > datetime.now(UTC) + timedelta(minutes=3)
    assert active[high["escalation_id"]]["annotations"]["runbook_url"] == "https://runbooks.example.com/h"
    assert active[medium["escalation_id"]]["labels"]["alertname"] == "ConvowatchJudgeDrift"
    assert active[critical[0]["escalation_id"]]["labels"]["team"] == "trust-and-safety"
    assert "team" not in active[medium["escalation_id"]]["labels"]  # no dimension, no owner
    assert sink.sent >= len(everything) and sink.failed == 0

    # Each goes to the receiver its severity routes to.
    for eid, receiver in receivers.items():
        _wait_notified(webhook, receiver, eid, "firing")
    pages = [
        b for b in webhook.bodies(path="/convowatch-pager") if b["groupLabels"]["journey"] == f"shop-{tag}"
    ]
    assert {a["labels"]["escalation_id"] for b in pages for a in b["alerts"]} == {
        e["escalation_id"] for e in critical
    }
    assert all(
        b["groupLabels"]
        == {
            "alertname": "ConvowatchHighRiskFailure",
            "kind": "high_risk_failure",
            "journey": f"shop-{tag}",
            "model_version": "m-1",
        }
        for b in pages
    )

    # Resolving: Alertmanager drops the alerts from its active list and tells the same receivers.
    for esc in [*critical, high]:
        sink.publish({**esc, "status": "resolved", "revision": 2})
    resolved_ids = {e["escalation_id"] for e in [*critical, high]}
    wait_until(
        lambda: not resolved_ids & set(_by_id(alertmanager.alerts())),
        timeout=10,
        message=lambda: f"still active: {resolved_ids & set(_by_id(alertmanager.alerts()))}",
    )
    assert medium["escalation_id"] in _by_id(alertmanager.alerts())
    resolved_page = webhook.wait_for(
        lambda r: [
            b
            for b in _notified(r, "convowatch-pager", critical[0]["escalation_id"], "resolved")
            if b["status"] == "resolved"
        ],
        timeout=10,
    )[-1]
    assert {a["labels"]["escalation_id"] for a in resolved_page["alerts"]} == {
        e["escalation_id"] for e in critical
    }
    assert all(a["status"] == "resolved" for a in resolved_page["alerts"])
    _wait_notified(webhook, "convowatch-oncall", high["escalation_id"], "resolved")
    assert sink.flush(5) and sink.active == 1  # resolved ones are forgotten once delivered

    # A late re-delivery of the first revision does not fire a resolved escalation again.
    sink.publish(critical[0])
    assert sink.active == 1 and sink.pending == 0


def test_critical_defect_spike_inhibits_high_risk_warnings_of_its_segment(
    alertmanager: AlertmanagerServer, sink: AlertmanagerSink
) -> None:
    tag = uuid.uuid4().hex[:8]
    journey = f"drive-{tag}"
    spike = escalation(journey, 0, escalation_id=f"defect_spike-{tag}", kind="defect_spike", dimension=None)
    muted = escalation(journey, 1, severity="high", dimension="hallucination")
    critical = escalation(journey, 2)  # critical high-risk failures still notify
    elsewhere = escalation(journey, 3, severity="high", segment={"journey": journey, "model_version": "m-2"})
    for esc in (spike, muted, critical, elsewhere):
        sink.publish(esc)

    def states() -> dict[str, str]:
        return {eid: a["status"]["state"] for eid, a in _by_id(alertmanager.alerts()).items()}

    wait_until(
        lambda: states().get(muted["escalation_id"]) == "suppressed",
        timeout=10,
        message=lambda: f"states: {states()}",
    )
    found = _by_id(alertmanager.alerts())
    assert found[muted["escalation_id"]]["status"]["inhibitedBy"]
    for esc in (spike, critical, elsewhere):
        assert found[esc["escalation_id"]]["status"]["state"] == "active", found[esc["escalation_id"]]


def spike(
    journey: str, category: str, tag: str, source: str = "judge-a", **slice_values: str
) -> dict[str, Any]:
    """A ``defect_spike`` escalation of ``category`` from ``source`` in one slice of ``journey`` (as
    SpikeView makes it)."""
    segment = {"journey": journey, "intent": None, "model_version": None, "channel": None, "modality": None}
    where = "/".join(f"{k}={v}" for k, v in sorted(slice_values.items()))
    return escalation(
        journey,
        0,
        escalation_id=f"defect_spike-{tag}-{source}-{category}-{journey}-{where}",
        kind="defect_spike",
        severity="high",
        dimension=None,
        segment=segment | slice_values,
        evidence={"category": category, "source": source, "baseline_rate": 0.02, "current_rate": 0.09},
    )


def test_a_finer_slice_spike_mutes_its_journeys_spike_of_the_same_category(
    alertmanager: AlertmanagerServer, sink: AlertmanagerSink
) -> None:
    tag = uuid.uuid4().hex[:8]
    journey, other_journey, bare_journey = f"shop-{tag}", f"drive-{tag}", f"bare-{tag}"
    muted = [spike(journey, "unsafe", tag), spike(journey, "hallucination", tag)]
    finer = spike(journey, "unsafe", tag, model_version="m-2")  # says where the unsafe spike is
    active = [
        # slices of turns without the field (unknown) and of values past the cap (other) say nothing finer:
        # published first, so that they have reached Alertmanager before the muting ones below
        spike(bare_journey, "unsafe", tag),
        spike(bare_journey, "unsafe", tag, model_version="unknown"),
        spike(bare_journey, "unsafe", tag, model_version="other"),
        spike(bare_journey, "unsafe", tag, intent="unknown"),
        spike(bare_journey, "unsafe", tag, intent="other"),
        finer,
        spike(journey, "hallucination", tag, intent="returns"),
        spike(journey, "biased", tag),  # no finer biased spike in the journey
        spike(journey, "unsafe", tag, source="humans"),  # another source's: its own evidence
        spike(other_journey, "unsafe", tag),  # another journey's
    ]
    for esc in active + muted:
        sink.publish(esc)
    assert {
        (labels["category"], labels["source"])
        for labels in (alert_from_escalation(e, None)["labels"] for e in active)
    } == {("unsafe", "judge-a"), ("hallucination", "judge-a"), ("biased", "judge-a"), ("unsafe", "humans")}

    def states() -> dict[str, str]:
        return {eid: a["status"]["state"] for eid, a in _by_id(alertmanager.alerts()).items()}

    wait_until(
        lambda: (
            all(states().get(e["escalation_id"]) == "suppressed" for e in muted)
            and all(states().get(e["escalation_id"]) == "active" for e in active)
        ),
        timeout=10,
        message=lambda: f"states: {states()}",
    )
    found = _by_id(alertmanager.alerts())
    assert all(found[e["escalation_id"]]["status"]["inhibitedBy"] for e in muted)
    # once the finer spike resolves, its journey's spike notifies again
    sink.publish(finer | {"status": "resolved", "revision": 2})
    wait_until(
        lambda: states().get(muted[0]["escalation_id"]) == "active",
        timeout=10,
        message=lambda: f"states: {states()}",
    )
    assert states().get(muted[1]["escalation_id"]) == "suppressed"


def test_sink_resends_active_alerts_and_expires_unresolved_high_risk_failures(
    alertmanager: AlertmanagerServer, webhook: WebhookServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    one_shot = escalation(f"exp-{tag}", 1)
    drift = escalation(f"exp-{tag}", 2, kind="judge_drift", severity="medium")  # not an expiring kind
    sink = AlertmanagerSink(alertmanager.url, resend_seconds=1.0, expire_after=3.0, batch_delay=0.05).start()
    try:
        for esc in (one_shot, drift):
            sink.publish(esc)
        first = _wait_alert(alertmanager, one_shot["escalation_id"])
        # Re-sent every second, each time with endsAt = now + 4 s, so Alertmanager's copy keeps moving on.
        later = _wait_alert(
            alertmanager, one_shot["escalation_id"], updated_after=datetime.fromisoformat(first["updatedAt"])
        )
        ends, updated = datetime.fromisoformat(later["endsAt"]), datetime.fromisoformat(later["updatedAt"])
        assert timedelta(seconds=3) < ends - updated < timedelta(seconds=5)
        assert later["startsAt"] == first["startsAt"]
        # No update for 3 s: the high-risk failure is resolved; the drift alert stays.
        wait_until(
            lambda: one_shot["escalation_id"] not in _by_id(alertmanager.alerts()),
            timeout=10,
            message=lambda: f"expired {sink.expired}, alerts {list(_by_id(alertmanager.alerts()))}",
        )
        assert sink.expired == 1
        assert drift["escalation_id"] in _by_id(alertmanager.alerts())
        _wait_notified(webhook, "convowatch-pager", one_shot["escalation_id"], "resolved")
        # A new revision fires it again.
        sink.publish({**one_shot, "revision": 2})
        wait_until(lambda: one_shot["escalation_id"] in _by_id(alertmanager.alerts()), timeout=10)
    finally:
        sink.close()


def test_a_revision_that_changes_the_labels_ends_the_alert_of_the_old_ones(
    alertmanager: AlertmanagerServer, sink: AlertmanagerSink
) -> None:
    # a high-risk turn's severity rises (or its segment arrives) with a later revision: Alertmanager must not
    # keep the first labels as a second alert of the same escalation until they time out
    tag = uuid.uuid4().hex[:8]
    first = escalation(f"relabel-{tag}", 1, severity="high")
    eid = first["escalation_id"]
    sink.publish(first)
    _wait_alert(alertmanager, eid)
    sink.publish({**first, "revision": 2, "severity": "critical"})

    def alerts_of_the_escalation() -> list[dict[str, Any]]:
        return [a for a in alertmanager.alerts() if a["labels"].get("escalation_id") == eid]

    wait_until(
        lambda: [a["labels"]["severity"] for a in alerts_of_the_escalation()] == ["critical"],
        timeout=10,
        message=lambda: f"alerts of {eid}: {alerts_of_the_escalation()}",
    )
