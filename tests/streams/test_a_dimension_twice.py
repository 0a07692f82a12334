"""A dimension given twice in one verdict or label record (a judge checking sub-policies): any fail of a
quality dimension makes it fail, whatever the order; embedded, from the records' bytes to the outputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas import Stream, parse_record
from streams.config import Settings
from streams.join import Emit
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from tests.factories import chat_turn, human_label, judge_verdict, raw, verdict

BUILD = {Stream.JUDGE_VERDICTS: judge_verdict, Stream.HUMAN_LABELS: human_label}
SUB_POLICIES = {
    "pass": verdict("safety", "pass", score=0.9, confidence=0.95, rationale="no self-harm content"),
    "fail": verdict("safety", "fail", score=0.2, confidence=0.6, rationale="leaks a phone number"),
}
ORDERS = [("pass", "fail"), ("fail", "pass")]


def _twice(order: tuple[str, str]) -> list[dict[str, Any]]:
    return [SUB_POLICIES[label] for label in order]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("stream", list(BUILD))
def test_the_fail_stands_with_its_own_score_confidence_and_rationale(stream, order):
    record = BUILD[stream](verdicts=[verdict("tone", "warm"), *_twice(order), verdict("relevance", "pass")])
    event = parse_record(stream, raw(record))
    assert [(v.dimension, v.label) for v in event.verdicts] == [
        ("tone", "warm"),
        ("safety", "fail"),
        ("relevance", "pass"),
    ]
    (safety,) = (v for v in event.verdicts if v.dimension == "safety")
    assert (safety.score, safety.confidence, safety.rationale) == (0.2, 0.6, "leaks a phone number")


@pytest.mark.parametrize("stream", list(BUILD))
def test_of_a_passing_or_free_dimension_given_twice_the_first_stands(stream):
    record = BUILD[stream](
        verdicts=[
            verdict("safety", "pass", confidence=0.9),
            verdict("intent", "refund"),
            verdict("safety", "pass", confidence=0.1),
            verdict("intent", "cancel"),
        ]
    )
    event = parse_record(stream, raw(record))
    assert [(v.dimension, v.label, v.confidence) for v in event.verdicts] == [
        ("safety", "pass", 0.9),
        ("intent", "refund", None),
    ]


def _run(*records: tuple[Stream, dict[str, Any]]) -> tuple[list[Emit], CollectorRegistry]:
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(), metrics=Metrics(registry))
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    out: list[Emit] = []
    for stream, record in records:
        out += pipeline.process(stream, raw({**record, "ts": ts}), source_topic=f"convowatch.{stream.value}")
    return out, registry


def _conflicts_and_duplicates(registry: CollectorRegistry) -> float:
    return sum(
        registry.get_sample_value(name, {"stream": stream.value}) or 0.0
        for name in ("convowatch_label_conflicts_total", "convowatch_duplicates_total")
        for stream in BUILD
    )


@pytest.mark.parametrize("order", ORDERS)
def test_a_judges_safety_fail_among_two_safety_verdicts_makes_a_defect_and_escalates(order):
    # [pass, fail] kept the pass (the first label stood): no defect, no escalation, whatever the fail said
    out, registry = _run(
        (Stream.CHAT_TURNS, chat_turn()),
        (Stream.JUDGE_VERDICTS, judge_verdict(verdicts=_twice(order))),
    )
    assert [
        (e.value["dimension"], e.value["label"], e.value["source"]) for e in out if e.topic == "defects"
    ] == [("safety", "fail", "judge")]
    (escalation,) = (e.value for e in out if e.topic == "escalations")
    assert (escalation["kind"], escalation["status"], escalation["dimension"]) == (
        "high_risk_failure",
        "firing",
        "safety",
    )
    assert not [e for e in out if e.topic == "deadletter"]
    assert _conflicts_and_duplicates(registry) == 0  # one record's sub-policies are not a conflict


@pytest.mark.parametrize("order", ORDERS)
def test_a_human_safety_fail_among_two_safety_labels_keeps_the_judges_escalation_firing(order):
    # [pass, fail] read as a pass overturned the judge's escalation: published resolved, its alert resolved
    out, registry = _run(
        (Stream.CHAT_TURNS, chat_turn()),
        (Stream.JUDGE_VERDICTS, judge_verdict(verdicts=[verdict("safety", "fail")])),
        (Stream.HUMAN_LABELS, human_label(verdicts=_twice(order))),
    )
    revisions = [e.value for e in out if e.topic == "escalations"]
    assert [(r["revision"], r["status"]) for r in revisions] == [(1, "firing"), (2, "firing")]
    assert revisions[-1]["evidence"]["human_review"] == {"safety": {"pass": 0, "fail": 1}}
    assert sorted(e.value["source"] for e in out if e.topic == "defects") == ["human", "judge"]
    assert _conflicts_and_duplicates(registry) == 0
