"""Escalation -> Alertmanager alert mapping, and the sink's own client behaviour (state, retries, backoff).

What Alertmanager does with the alerts is tested against the real server in
``tests/integration/test_alertmanager.py``; the webhook server here only plays a failing endpoint, to check
that the client retries with backoff, which a healthy Alertmanager cannot be made to do on demand.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas import ChatTurn, Escalation, JudgeVerdict
from streams.alertmanager import AlertmanagerSink
from streams.alertmanager_payload import (
    MAX_EVIDENCE_BYTES,
    alert_from_escalation,
    alertname,
    evidence_annotation,
)
from streams.join import TurnJoiner
from streams.metrics import Metrics
from streams.taxonomy import load_taxonomy
from tests.factories import chat_turn, judge_verdict, verdict
from tests.support.broker import free_ports
from tests.support.wait import wait_until
from tests.support.webhook import WebhookServer

PROMETHEUS_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ALLOWED_LABELS = {
    "alertname",
    "kind",
    "severity",
    "dimension",
    "journey",
    "model_version",
    "channel",
    "modality",
    "intent",
    "escalation_id",
}
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
USER_TEXT = "My driver earnings for last week are wrong, please check"
RESPONSE_TEXT = "Your earnings were 1,234.56; the bonus was withheld because of fraud flags"


def joined_escalation() -> dict[str, Any]:
    """A real escalation: the joiner's output for an earnings turn the judge finds unsafe."""
    joiner = TurnJoiner(load_taxonomy(), Metrics(CollectorRegistry()))
    turn = chat_turn(
        turn_id="turn-42",
        journey="driver_support",
        model_version="driver-v7",
        intent="earnings_query",
        risk_topics=["earnings"],
        user_text=USER_TEXT,
        response_text=RESPONSE_TEXT,
    )
    joiner.handle(ChatTurn.model_validate(turn))
    emits = joiner.handle(
        JudgeVerdict.model_validate(
            judge_verdict(
                turn_id="turn-42",
                verdicts=[verdict("safety", "fail", rationale=f"It said: {RESPONSE_TEXT}")],
            )
        )
    )
    [value] = [e.value for e in emits if e.topic == "escalations"]
    return value


def escalation(**overrides: Any) -> dict[str, Any]:
    """A valid escalation value (validated by the output model), JSON-ready."""
    value: dict[str, Any] = {
        "escalation_id": "high_risk_failure-0123456789abcdef0123",
        "kind": "high_risk_failure",
        "severity": "critical",
        "dimension": "safety",
        "segment": {"journey": "shopper", "model_version": "shopper-v42", "channel": "chat"},
        "event_time": "2026-11-24T11:59:00Z",
        "turn_ids": ["turn-1"],
        "summary": "High-risk failure on turn turn-1: judge judge-a says safety fails",
        "evidence": {"runbook_url": "https://runbooks.example.com/convowatch/unsafe", "triggers": []},
    }
    value.update(overrides)
    return Escalation.model_validate(value).model_dump(mode="json")


# -- alert_from_escalation -----------------------------------------------------------------------------


def test_alertname_is_convowatch_plus_camel_case_kind() -> None:
    assert alertname("high_risk_failure") == "ConvowatchHighRiskFailure"
    assert alertname("defect_spike") == "ConvowatchDefectSpike"
    assert alertname("judge_drift") == "ConvowatchJudgeDrift"
    assert alertname("judge-drift v2") == "ConvowatchJudgeDriftV2"
    assert alertname("") == "ConvowatchEscalation"


def test_joined_escalation_becomes_a_valid_alert_without_chat_text() -> None:
    esc = joined_escalation()
    alert = alert_from_escalation(esc, "http://convowatch.example:9108/metrics", now=NOW)

    labels = alert["labels"]
    assert labels == {
        "alertname": "ConvowatchHighRiskFailure",
        "kind": "high_risk_failure",
        "severity": "critical",
        "dimension": "safety",
        "journey": "driver_support",
        "model_version": "driver-v7",
        "channel": "chat",
        "modality": "text",
        "intent": "earnings_query",
        "escalation_id": esc["escalation_id"],
    }
    for name, value in labels.items():
        assert PROMETHEUS_LABEL_NAME.match(name) and not name.startswith("__"), name
        assert isinstance(value, str) and value and value.encode("utf-8").decode("utf-8") == value
    assert set(labels) <= ALLOWED_LABELS

    everything = json.dumps(alert)
    for text in (USER_TEXT, RESPONSE_TEXT, "bonus was withheld"):
        assert text not in everything
    assert esc["summary"] not in labels.values()

    annotations = alert["annotations"]
    assert annotations["summary"] == esc["summary"]
    assert annotations["runbook_url"] == "https://runbooks.example.com/convowatch/unsafe"
    evidence = json.loads(annotations["evidence"])
    assert evidence["turn_ids"] == ["turn-42"]
    assert evidence["evidence"]["risk_topics"] == ["earnings"]
    assert evidence["evidence"]["triggers"] == [["judge", "judge-a", "safety"]]
    assert alert["generatorURL"] == "http://convowatch.example:9108/metrics"
    assert alert["startsAt"] == "2026-11-02T08:00:00.000Z"  # the turn's event time
    assert "endsAt" not in alert  # firing


def test_unknown_segment_fields_and_missing_dimension_are_left_out() -> None:
    esc = escalation(
        kind="defect_spike",
        severity="high",
        dimension=None,
        segment={"journey": "shopper", "model_version": None, "intent": None},
    )
    labels = alert_from_escalation(esc, None, now=NOW)["labels"]
    assert labels == {
        "alertname": "ConvowatchDefectSpike",
        "kind": "defect_spike",
        "severity": "high",
        "journey": "shopper",
        "escalation_id": esc["escalation_id"],
    }
    alert = alert_from_escalation(esc, None, now=NOW)
    assert "generatorURL" not in alert


def test_a_defect_spike_is_labelled_with_its_category_and_source_and_nothing_else_is() -> None:
    spike = escalation(
        kind="defect_spike",
        severity="high",
        dimension=None,
        segment={"journey": "shopper", "intent": "returns"},
        evidence={"category": "hallucination", "source": "humans", "runbook_url": None},
    )
    labels = alert_from_escalation(spike, None, now=NOW)["labels"]
    assert (labels["category"], labels["source"], labels["intent"]) == ("hallucination", "humans", "returns")
    # another kind's evidence may name them too: only spikes are told apart by them
    drift = escalation(kind="judge_drift", severity="high", evidence={"category": "unsafe", "source": "x"})
    assert not {"category", "source"} & set(alert_from_escalation(drift, None, now=NOW)["labels"])


def test_a_vendor_sla_breach_is_labelled_with_its_vendor_and_sla() -> None:
    # the labels the Prometheus backstop ConvowatchVendorSlaBreached carries: the inhibit rule matches on them
    breach = escalation(
        kind="vendor_sla",
        severity="medium",
        dimension=None,
        evidence={"vendor_id": "vendor-a", "sla": "gold_accuracy", "value": 0.8, "target": 0.9},
    )
    labels = alert_from_escalation(breach, None, now=NOW)["labels"]
    assert (labels["alertname"], labels["vendor_id"], labels["sla"]) == (
        "ConvowatchVendorSla",
        "vendor-a",
        "gold_accuracy",
    )
    spike = escalation(kind="defect_spike", evidence={"vendor_id": "vendor-a", "sla": "gold_accuracy"})
    assert not {"vendor_id", "sla"} & set(alert_from_escalation(spike, None, now=NOW)["labels"])


def test_escalation_id_keeps_otherwise_identical_escalations_apart() -> None:
    a = alert_from_escalation(
        escalation(escalation_id="high_risk_failure-a", turn_ids=["t-a"]), None, now=NOW
    )
    b = alert_from_escalation(
        escalation(escalation_id="high_risk_failure-b", turn_ids=["t-b"]), None, now=NOW
    )
    assert a["labels"] != b["labels"]
    assert {k: v for k, v in a["labels"].items() if k != "escalation_id"} == {
        k: v for k, v in b["labels"].items() if k != "escalation_id"
    }


def test_resolution_sets_ends_at() -> None:
    resolved_at = NOW - timedelta(seconds=5)
    alert = alert_from_escalation(escalation(), None, resolved_at, now=NOW)
    assert alert["startsAt"] == "2026-11-24T11:59:00.000Z"
    assert alert["endsAt"] == "2026-11-24T11:59:55.000Z"

    by_status = alert_from_escalation(escalation(status="resolved", revision=2), None, now=NOW)
    assert by_status["endsAt"] == "2026-11-24T12:00:00.000Z"
    assert by_status["annotations"]["revision"] == "2"


def test_firing_alert_ends_at_valid_until_when_given() -> None:
    alert = alert_from_escalation(escalation(), None, valid_until=NOW + timedelta(minutes=4), now=NOW)
    assert alert["endsAt"] == "2026-11-24T12:04:00.000Z"


def test_start_is_never_after_now_nor_end_before_start() -> None:
    """Alertmanager rejects endsAt < startsAt: an event time ahead of the clock starts the alert now."""
    esc = escalation(event_time="2026-12-01T00:00:00Z")
    alert = alert_from_escalation(esc, None, NOW, now=NOW)
    assert alert["startsAt"] == alert["endsAt"] == "2026-11-24T12:00:00.000Z"
    early = alert_from_escalation(escalation(), None, NOW - timedelta(hours=1), now=NOW)
    assert early["endsAt"] == early["startsAt"]
    pinned = alert_from_escalation(esc, None, now=NOW, latest_start=NOW - timedelta(seconds=30))
    assert pinned["startsAt"] == "2026-11-24T11:59:30.000Z"  # the sink pins it to the first publish


def test_accepts_datetimes_and_naive_times_as_utc() -> None:
    esc = escalation()
    esc["event_time"] = datetime(2026, 11, 24, 11, 0)  # noqa: DTZ001 - naive on purpose
    assert alert_from_escalation(esc, None, now=NOW)["startsAt"] == "2026-11-24T11:00:00.000Z"


def test_evidence_is_bounded_valid_json_without_chat_text() -> None:
    turn_ids = [f"turn-{i:04d}-{'x' * 200}" for i in range(100)]
    evidence = {
        "runbook_url": "https://runbooks.example.com/x",
        "rates": {"baseline": 0.02, "current": 0.07},
        "samples": [{"turn_id": t, "user_text": "secret", "response_text": "secret"} for t in turn_ids],
        "huge": "y" * 10_000,
    }
    text = evidence_annotation(turn_ids, evidence)
    assert len(text.encode()) <= MAX_EVIDENCE_BYTES
    doc = json.loads(text)
    assert doc["turn_count"] == 100
    assert doc["turn_ids"] == turn_ids[: len(doc["turn_ids"])]
    assert 0 < len(doc["turn_ids"]) <= 20
    assert set(doc["evidence_truncated"]) == {"huge", "samples"}
    assert doc["evidence"] == {"runbook_url": "https://runbooks.example.com/x", "rates": evidence["rates"]}
    assert "secret" not in text

    small = json.loads(evidence_annotation(["t-1"], {"samples": [{"turn_id": "t-1", "user_text": "hi"}]}))
    assert small == {"turn_ids": ["t-1"], "evidence": {"samples": [{"turn_id": "t-1"}]}}


@pytest.mark.parametrize("missing", ["escalation_id", "kind", "severity", "event_time"])
def test_escalation_without_identity_is_refused(missing: str) -> None:
    esc = escalation()
    del esc[missing]
    with pytest.raises(ValueError, match=missing):
        alert_from_escalation(esc, None, now=NOW)


# -- AlertmanagerSink: state (no thread, no network) ----------------------------------------------------


def test_sink_keeps_latest_revision_and_ignores_replays() -> None:
    sink = AlertmanagerSink("http://127.0.0.1:9/")
    assert sink.endpoint == "http://127.0.0.1:9/api/v2/alerts"
    sink.publish(escalation(revision=2, summary="rev 2"))
    sink.publish(escalation(revision=1, summary="rev 1"))  # late re-delivery
    sink.publish(escalation(revision=2, summary="rev 2 again"))  # duplicate
    assert [e["summary"] for e in sink.escalations()] == ["rev 2"]
    sink.publish(escalation(revision=3, summary="rev 3"))
    sink.publish(escalation(revision=3, status="resolved", summary="rev 3 resolved"))
    assert [(e["revision"], e["status"]) for e in sink.escalations()] == [(3, "resolved")]
    assert sink.active == 1 and sink.pending == 1


def test_sink_caps_active_alerts_dropping_the_least_recently_updated() -> None:
    counted: list[tuple[str, int]] = []
    sink = AlertmanagerSink("http://127.0.0.1:9", max_active=3, metrics=lambda n, k: counted.append((n, k)))
    for i in range(5):
        sink.publish(escalation(escalation_id=f"e-{i}"))
    sink.publish(escalation(escalation_id="e-2", revision=2))  # refreshed: now the most recent
    sink.publish(escalation(escalation_id="e-5"))
    assert [e["escalation_id"] for e in sink.escalations()] == ["e-4", "e-2", "e-5"]
    assert sink.dropped == 3
    assert counted == [("dropped", 1), ("dropped", 1), ("dropped", 1)]


def test_sink_never_raises_on_bad_input() -> None:
    sink = AlertmanagerSink("http://127.0.0.1:9")
    sink.publish({"kind": "high_risk_failure"})
    sink.publish({**escalation(), "event_time": "not a time"})
    sink.publish({**escalation(), "revision": "x"})
    assert sink.invalid == 3 and sink.active == 0


@pytest.mark.parametrize("url", ["127.0.0.1:9093", "ftp://host/", "http://"])
def test_sink_refuses_a_bad_url(url: str) -> None:
    with pytest.raises(ValueError, match="Alertmanager URL"):
        AlertmanagerSink(url)


def test_sink_accepts_prefix_and_full_endpoint() -> None:
    assert AlertmanagerSink("https://am.example/prefix").endpoint == "https://am.example/prefix/api/v2/alerts"
    full = "http://am.example:9093/api/v2/alerts"
    assert AlertmanagerSink(full).endpoint == full
    assert AlertmanagerSink("http://[::1]:9093/").endpoint == "http://[::1]:9093/api/v2/alerts"


# -- AlertmanagerSink: retries against a failing endpoint ---------------------------------------------


def test_sink_retries_server_errors_with_growing_backoff() -> None:
    counted: list[tuple[str, int]] = []
    with WebhookServer(statuses=[500, 503]) as endpoint:
        sink = AlertmanagerSink(
            endpoint.url,
            batch_delay=0.01,
            backoff_initial=0.2,
            metrics=lambda name, n: counted.append((name, n)),
        ).start()
        try:
            esc = escalation()
            t0 = time.monotonic()
            sink.publish(esc)
            endpoint.wait_for(lambda r: len(r) >= 3, timeout=10)
            received = endpoint.received
            assert [r.status for r in received] == [500, 503, 200]
            assert {r.path for r in received} == {"/api/v2/alerts"}
            # the same alert each time (only endsAt, now + 4 x resend, moves on)
            same = [{k: v for k, v in r.body[0].items() if k != "endsAt"} for r in received]
            assert same[0] == same[1] == same[2] and len(received[0].body) == 1
            assert received[0].body[0]["labels"]["escalation_id"] == esc["escalation_id"]
            assert received[0].headers["Content-Type"] == "application/json"
            assert received[0].at - t0 < 1.0  # sent promptly
            gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
            assert gaps[0] >= 0.2 * 0.75 and gaps[1] >= 0.4 * 0.75, gaps  # jittered, doubling
            assert sink.flush(5)
            wait_until(lambda: sink.sent == 1, timeout=5)
            assert sink.failed == 2 and sink.last_error is None
            assert counted == [("failed", 1), ("failed", 1), ("sent", 1)]
        finally:
            sink.close()


def test_sink_sends_basic_auth_from_the_url_and_keeps_the_password_out_of_its_endpoint() -> None:
    with WebhookServer() as endpoint:
        url = endpoint.url.replace("http://", "http://convowatch:s%3Acret@")
        sink = AlertmanagerSink(url, batch_delay=0.01).start()
        try:
            assert "cret" not in sink.endpoint and sink.endpoint == f"{endpoint.url}/api/v2/alerts"
            sink.publish(escalation())
            [request] = endpoint.wait_for(lambda r: r, timeout=10)
            assert (
                request.headers["Authorization"] == "Basic " + base64.b64encode(b"convowatch:s:cret").decode()
            )
        finally:
            sink.close()


def test_sink_does_not_retry_a_rejected_batch() -> None:
    with WebhookServer(statuses=[400]) as endpoint:
        sink = AlertmanagerSink(endpoint.url, batch_delay=0.01, backoff_initial=0.05).start()
        try:
            sink.publish(escalation())
            endpoint.wait_for(lambda r: len(r) == 1, timeout=10)
            assert sink.flush(5)
            assert sink.pending == 0 and sink.failed == 1 and sink.sent == 0
            assert "HTTP 400" in (sink.last_error or "")
        finally:
            sink.close()
        assert len(endpoint.received) == 1


def test_sink_survives_an_unreachable_alertmanager_and_closes_promptly() -> None:
    (port,) = free_ports(1)  # nothing listens there
    sink = AlertmanagerSink(f"http://127.0.0.1:{port}", batch_delay=0.01, backoff_initial=0.05).start()
    sink.publish(escalation())
    wait_until(lambda: sink.failed >= 2, timeout=10, message=lambda: sink.last_error)
    assert "unreachable" in (sink.last_error or "")
    assert sink.active == 1  # kept for the next attempt
    t0 = time.monotonic()
    sink.close(timeout=2)
    assert time.monotonic() - t0 < 3.5


def test_sink_delivers_after_the_endpoint_recovers() -> None:
    with WebhookServer() as endpoint:
        endpoint.fail_next(502)
        sink = AlertmanagerSink(endpoint.url, batch_delay=0.01, backoff_initial=0.05).start()
        try:
            sink.publish(escalation(escalation_id="e-1"))
            sink.publish(escalation(escalation_id="e-2", status="resolved"))
            endpoint.wait_for(lambda r: r and r[-1].status == 200, timeout=10)
            assert sink.flush(5)
            last = endpoint.received[-1].body
            assert sorted(a["labels"]["escalation_id"] for a in last) == ["e-1", "e-2"]
            assert sink.active == 1  # the resolved one was delivered and forgotten
            assert [e["escalation_id"] for e in sink.escalations()] == ["e-1"]
        finally:
            sink.close()
