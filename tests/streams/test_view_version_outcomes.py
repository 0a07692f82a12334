"""Model versions compared on business outcomes: a canary that completes fewer tasks raises one escalation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.aggregate import Aggregator
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.views.version_outcomes import VersionOutcomeView, outcome_values

START = datetime(2026, 11, 2, 8, tzinfo=UTC)
RATES = {"escalated_to_agent": 0.08, "task_completed": 0.85, "down": 0.1}


def _turn(turn_id: str, ts: datetime, version: str, rng: random.Random, completed: float) -> bytes:
    escalated = rng.random() < RATES["escalated_to_agent"]
    feedback = rng.random()
    turn = {
        "turn_id": turn_id,
        "conversation_id": turn_id,
        "ts": ts.isoformat(),
        "journey": "shopper",
        "channel": "chat",
        "model_version": version,
        "outcome": {
            "escalated_to_agent": escalated,
            "contained": not escalated,
            "task_completed": rng.random() < completed,
            # a third of turns report no feedback: they do not count for thumbs_down
            "user_feedback": None if feedback < 0.33 else "down" if feedback < 0.33 + RATES["down"] else "up",
        },
    }
    return orjson.dumps(turn)


def _run(pipeline: Pipeline, canary_completed: float, turns: int = 1_500, seed: int = 3) -> list[Any]:
    """1 shopper turn/s; v2 serves 40% of them from turn 200, completing ``canary_completed`` of tasks."""
    rng = random.Random(seed)
    out: list[Any] = []
    for i in range(turns):
        canary = i >= 200 and rng.random() < 0.4
        version, completed = ("v2", canary_completed) if canary else ("v1", RATES["task_completed"])
        raw = _turn(f"t{i}", START + timedelta(seconds=i), version, rng, completed)
        out += pipeline.process(Stream.CHAT_TURNS, raw, source_topic="chat", offset=i)
    return out


def _regressions(out: list[Any]) -> list[dict[str, Any]]:
    return [e.value for e in out if e.topic == "escalations" and e.value["kind"] == "version_regression"]


def _pipeline() -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(), Metrics(registry), batched=True), registry


def test_outcome_values() -> None:
    assert outcome_values({"contained": False, "user_feedback": "down"}) == {
        "contained": False,
        "thumbs_down": True,
    }
    assert outcome_values({}) == {} and outcome_values(None) == {}
    assert outcome_values({"task_completed": True, "escalated_to_agent": None}) == {"task_completed": True}


def test_a_canary_completing_fewer_tasks_raises_exactly_one_regression() -> None:
    pipeline, registry = _pipeline()
    found = _regressions(_run(pipeline, canary_completed=0.65))
    assert len(found) == 1, [e["summary"] for e in found]
    [alarm] = found
    ev = alarm["evidence"]
    assert (ev["source"], ev["outcome"], ev["journey"], ev["control"], ev["treatment"]) == (
        "outcome",
        "task_completed",
        "shopper",
        "v1",
        "v2",
    )
    assert alarm["status"] == "firing" and alarm["segment"]["model_version"] == "v2"
    assert ev["decision"] == "worse" and ev["higher_is_better"] and ev["p_value"] <= 0.05
    assert ev["lift"] < -0.1 and ev["interval"][1] < 0
    assert 400 <= ev["n_treatment"] <= 450, ev["n_treatment"]  # seeded: decided at 421 canary turns
    labels = {"journey": "shopper", "outcome": "task_completed", "control": "v1", "treatment": "v2"}
    assert registry.get_sample_value("convowatch_version_outcome_decision", labels) == -1.0
    low = registry.get_sample_value("convowatch_version_outcome_lift_bound", {**labels, "bound": "lower"})
    high = registry.get_sample_value("convowatch_version_outcome_lift_bound", {**labels, "bound": "upper"})
    lift = registry.get_sample_value("convowatch_version_outcome_lift", labels)
    assert low is not None and lift is not None and high is not None and low < lift < high < 0
    for outcome in ("escalated_to_agent", "contained", "thumbs_down"):  # equal rates: no decision
        other = {**labels, "outcome": outcome}
        assert registry.get_sample_value("convowatch_version_outcome_decision", other) == 0.0
    assert (
        registry.get_sample_value(
            "convowatch_escalations_total", {"kind": "version_regression", "severity": "high"}
        )
        == 1.0
    )
    rows = {r["outcome"]: r for r in pipeline.report()["version_outcomes"]}
    assert sorted(rows) == ["contained", "escalated_to_agent", "task_completed", "thumbs_down"]
    assert rows["task_completed"]["decision"] == "worse"
    # turns without feedback are left out of thumbs_down only
    assert rows["thumbs_down"]["n_treatment"] < rows["contained"]["n_treatment"]


def test_an_equal_canary_raises_nothing() -> None:
    pipeline, registry = _pipeline()
    assert _regressions(_run(pipeline, canary_completed=RATES["task_completed"])) == []
    labels = {"journey": "shopper", "outcome": "task_completed", "control": "v1", "treatment": "v2"}
    assert registry.get_sample_value("convowatch_version_outcome_decision", labels) == 0.0
    assert registry.get_sample_value("convowatch_version_outcome_p_value", labels) > 0.05
    assert registry.get_sample_value("convowatch_version_outcome_turns", {**labels, "arm": "treatment"}) > 400


def test_a_replayed_turn_counts_once() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    aggregator = Aggregator(metrics, views=[VersionOutcomeView(metrics, min_samples=5)])

    def obs(i: int, version: str) -> dict[str, Any]:
        return {
            "kind": "turn",
            "turn_id": f"t{i}",
            "ts": 1_700_000_000.0 + i,
            "segment": {"journey": "shopper", "model_version": version},
            "outcome": {"task_completed": i % 3 == 0},
            "src": ["chat", i, 0],
        }

    stream = [obs(i, "v2" if i % 2 else "v1") for i in range(100)]
    for o in stream:
        aggregator.apply(o)
    for o in stream[-30:]:  # a replay after a crash: same source positions
        aggregator.apply(dict(o))
    [row] = VersionOutcomeView(metrics).report(aggregator)["version_outcomes"]
    assert (row["n_control"], row["n_treatment"]) == (49, 50)  # v1's first turn came before v2 existed
    assert aggregator.duplicates == 30
