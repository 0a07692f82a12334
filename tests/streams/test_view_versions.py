"""Model-version comparison through the whole embedded pipeline: a worse canary raises one escalation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline

START = datetime(2026, 11, 2, 8, tzinfo=UTC)


def _pipeline(**settings: Any) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(**settings), Metrics(registry), batched=True), registry


def _events(
    turn_id: str, ts: datetime, journey: str, version: str, failed: bool
) -> list[tuple[Stream, bytes]]:
    turn = {
        "turn_id": turn_id,
        "conversation_id": turn_id,
        "ts": ts.isoformat(),
        "journey": journey,
        "channel": "chat",
        "model_version": version,
        "intent": "order_status",
    }
    verdict = {
        "turn_id": turn_id,
        "ts": (ts + timedelta(seconds=2)).isoformat(),
        "judge_id": "judge-a",
        "judge_version": "1",
        "verdicts": [
            {"dimension": "relevance", "label": "fail" if failed else "pass"},
            {"dimension": "hallucination", "label": "pass"},
        ],
    }
    return [(Stream.CHAT_TURNS, orjson.dumps(turn)), (Stream.JUDGE_VERDICTS, orjson.dumps(verdict))]


def _run(
    pipeline: Pipeline,
    canary_rate: float,
    turns: int = 1_900,
    rollback_at: int | None = None,
    seed: int = 7,
    resume_at: int | None = None,
) -> list[Any]:
    """1 shopper turn/s, v2 taking 40% of it from turn 200 (until ``rollback_at``, and again from
    ``resume_at``); a quiet other journey.

    (Under 2,000 turns per segment, so the spike view's detectors stay in warm-up: this test stays fast.)
    """
    rng = random.Random(seed)
    out: list[Any] = []
    offset = 0
    for i in range(turns):
        ts = START + timedelta(seconds=i)
        serving = rollback_at is None or i < rollback_at or (resume_at is not None and i >= resume_at)
        canary = i >= 200 and serving and rng.random() < 0.4
        served = [("shopper", "v2", canary_rate) if canary else ("shopper", "v1", 0.03)]
        if i % 5 == 0:
            served.append(("driver_support", "d1", 0.03))
        for journey, version, rate in served:
            for stream, raw in _events(f"{journey}-{i}", ts, journey, version, rng.random() < rate):
                offset += 1
                out += pipeline.process(stream, raw, source_topic=stream.value, offset=offset)
    return out


def _regressions(out: list[Any]) -> list[dict[str, Any]]:
    return [e.value for e in out if e.topic == "escalations" and e.value["kind"] == "version_regression"]


def test_a_worse_canary_raises_exactly_one_regression_and_resolves_on_rollback() -> None:
    pipeline, registry = _pipeline(version_horizon_seconds=300)
    out = _run(pipeline, canary_rate=0.10, rollback_at=1_400)
    found = _regressions(out)
    firing = [e for e in found if e["status"] == "firing"]
    assert len(firing) == 1, [e["summary"] for e in found]
    alarm = firing[0]
    ev = alarm["evidence"]
    assert (ev["journey"], ev["control"], ev["treatment"], ev["judge_id"]) == (
        "shopper",
        "v1",
        "v2",
        "judge-a",
    )
    assert alarm["severity"] == "high" and alarm["segment"]["model_version"] == "v2"
    assert ev["decision"] == "worse" and ev["p_value"] <= 0.05
    assert ev["interval"][0] > 0 and ev["lift"] > 0.03
    assert ev["treatment_rate"] > ev["control_rate"] and 100 <= ev["n_treatment"] < 450
    # rolled back at turn 1,400: the comparison closes once v2 is out of the 300 s horizon
    resolved = [e for e in found if e["status"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["escalation_id"] == alarm["escalation_id"]
    assert resolved[0]["revision"] == 2
    labels = {"judge_id": "judge-a", "journey": "shopper", "control": "v1", "treatment": "v2"}
    assert registry.get_sample_value("convowatch_version_decision", labels) == -1.0
    lift = registry.get_sample_value("convowatch_version_lift", labels)
    low = registry.get_sample_value("convowatch_version_lift_bound", {**labels, "bound": "lower"})
    high = registry.get_sample_value("convowatch_version_lift_bound", {**labels, "bound": "upper"})
    assert lift is not None and low is not None and high is not None and 0 < low < lift < high
    assert (
        registry.get_sample_value(
            "convowatch_escalations_total", {"kind": "version_regression", "severity": "high"}
        )
        == 1.0
    )
    report = pipeline.report()["versions"]
    assert [(r["journey"], r["control"], r["treatment"], r["decision"], r["live"]) for r in report] == [
        ("shopper", "v1", "v2", "worse", False)
    ]


def test_a_worse_canary_back_after_a_pause_past_the_horizon_raises_a_new_regression() -> None:
    # the pause resolved the regression, and the pair's test kept its final "worse": back live, nothing
    # could fire again
    pipeline, _ = _pipeline(version_horizon_seconds=300)
    found = _regressions(_run(pipeline, canary_rate=0.10, turns=3_000, rollback_at=1_200, resume_at=1_700))
    assert [(e["status"], e["revision"]) for e in found] == [("firing", 1), ("resolved", 2), ("firing", 1)]
    first, resolved, again = found
    assert resolved["escalation_id"] == first["escalation_id"] != again["escalation_id"]
    assert 100 <= again["evidence"]["n_treatment"] < 450  # counted since it came back


def test_an_equal_version_raises_nothing() -> None:
    pipeline, registry = _pipeline()
    out = _run(pipeline, canary_rate=0.03)
    assert _regressions(out) == []
    labels = {"judge_id": "judge-a", "journey": "shopper", "control": "v1", "treatment": "v2"}
    assert registry.get_sample_value("convowatch_version_decision", labels) == 0.0
    assert registry.get_sample_value("convowatch_version_turns", {**labels, "arm": "treatment"}) > 500
    assert registry.get_sample_value("convowatch_version_p_value", labels) > 0.05
    assert (
        registry.get_sample_value(
            "convowatch_escalations_total", {"kind": "version_regression", "severity": "high"}
        )
        == 0.0
    )
    [row] = pipeline.report()["versions"]
    assert row["decision"] == "continue" and row["live"] and row["interval"][0] < 0 < row["interval"][1]


def test_version_gauges_come_back_after_the_shard_leaves_and_returns() -> None:
    # a rebalance removes the gauges of shards a worker lost; the view kept the removed children and set them
    # again when the shard came back, which exports nothing
    from streams.shard_gauges import clear_lost_children

    pipeline, registry = _pipeline()
    _run(pipeline, canary_rate=0.03, turns=400)
    labels = {
        "judge_id": "judge-a",
        "journey": "shopper",
        "control": "v1",
        "treatment": "v2",
        "arm": "treatment",
    }

    def treatment_turns() -> float | None:
        return registry.get_sample_value("convowatch_version_turns", labels)

    assert treatment_turns()
    clear_lost_children(pipeline.metrics, owns=lambda shard: False)  # the shard moved away
    assert treatment_turns() is None
    pipeline.aggregator.rebalanced()  # ... and came back
    _run(pipeline, canary_rate=0.03, turns=600)
    assert treatment_turns()
