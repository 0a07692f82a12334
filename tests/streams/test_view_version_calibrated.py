"""Model versions compared on human-calibrated defect rates: a judge that misses most of a canary's new
defects still lets the human labels catch the regression, on the right dimension, once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.aggregate import Aggregator
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore
from streams.views.version_calibrated import VersionCalibratedView
from streams.views.version_outcomes import VersionOutcomeView

START = datetime(2026, 11, 2, 8, tzinfo=UTC)
LABEL_DELAY = 120  # turns (seconds) between a turn and its human label


def _judge(rng: random.Random, truth: bool, new_kind: bool) -> bool:
    """A biased judge: flags 90% of the usual defects, 20% of the canary's new kind, and 4% of good turns."""
    if truth:
        return rng.random() < (0.2 if new_kind else 0.9)
    return rng.random() < 0.04


def _run(pipeline: Pipeline, canary_rate: float, turns: int = 3_000, seed: int = 5) -> list[Any]:
    """1 shopper turn/s; v2 serves half of them from turn 200 with relevance defects at ``canary_rate``
    (v1: 3%); hallucination 3% on both. A human labels 20% of turns, ``LABEL_DELAY`` s later."""
    rng = random.Random(seed)
    out: list[Any] = []
    pending: list[tuple[int, bytes]] = []
    offset = 0

    def send(stream: Stream, raw: bytes) -> None:
        nonlocal offset
        offset += 1
        out.extend(pipeline.process(stream, raw, source_topic=stream.value, offset=offset))

    for i in range(turns):
        ts = START + timedelta(seconds=i)
        version = "v2" if i >= 200 and rng.random() < 0.5 else "v1"
        base = rng.random() < 0.03
        new_kind = version == "v2" and not base and rng.random() < (canary_rate - 0.03) / 0.97
        truth = {"relevance": base or new_kind, "hallucination": rng.random() < 0.03}
        judged = {
            "relevance": _judge(rng, truth["relevance"], new_kind),
            "hallucination": _judge(rng, truth["hallucination"], False),
        }
        turn = {
            "turn_id": f"t{i}",
            "conversation_id": f"c{i}",
            "ts": ts.isoformat(),
            "journey": "shopper",
            "channel": "chat",
            "model_version": version,
        }
        verdict = {
            "turn_id": f"t{i}",
            "ts": (ts + timedelta(seconds=2)).isoformat(),
            "judge_id": "judge-a",
            "judge_version": "1",
            "verdicts": [{"dimension": d, "label": "fail" if f else "pass"} for d, f in judged.items()],
        }
        send(Stream.CHAT_TURNS, orjson.dumps(turn))
        send(Stream.JUDGE_VERDICTS, orjson.dumps(verdict))
        if rng.random() < 0.2:
            label = {
                "turn_id": f"t{i}",
                "ts": (ts + timedelta(seconds=LABEL_DELAY)).isoformat(),
                "annotator_id": "a1",
                "vendor_id": "vendor-a",
                "inclusion_probability": 0.2,
                "verdicts": [{"dimension": d, "label": "fail" if y else "pass"} for d, y in truth.items()],
            }
            pending.append((i + LABEL_DELAY, orjson.dumps(label)))
        while pending and pending[0][0] <= i:
            send(Stream.HUMAN_LABELS, pending.pop(0)[1])
    for _, raw in pending:
        send(Stream.HUMAN_LABELS, raw)
    return out


def _calibrated(out: list[Any]) -> list[dict[str, Any]]:
    return [
        e.value
        for e in out
        if e.topic == "escalations"
        and e.value["kind"] == "version_regression"
        and e.value["evidence"].get("source") == "calibrated"
    ]


def _pipeline() -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    # tau2 = 1e-3: the mixture tuned to lifts of about 3 points (labels are few, lifts that matter large)
    settings = Settings(version_min_labels=30, version_tau2=1e-3)
    return Pipeline(settings, Metrics(registry), batched=True), registry


LABELS = {"judge_id": "judge-a", "journey": "shopper", "control": "v1", "treatment": "v2"}


def test_a_regression_the_judge_half_misses_raises_one_calibrated_escalation() -> None:
    pipeline, registry = _pipeline()
    out = _run(pipeline, canary_rate=0.15)
    found = _calibrated(out)
    assert len(found) == 1, [e["summary"] for e in found]
    [alarm] = found
    ev = alarm["evidence"]
    assert (alarm["dimension"], ev["dimension"], ev["journey"], ev["control"], ev["treatment"]) == (
        "relevance",
        "relevance",
        "shopper",
        "v1",
        "v2",
    )
    assert alarm["status"] == "firing" and alarm["severity"] == "high"
    assert ev["decision"] == "worse" and ev["p_value"] <= 0.05 and ev["interval"][0] > 0
    # the judge sees a fraction of the lift; the calibrated estimate sees it whole
    assert ev["lift"] > 0.08 and ev["judge_lift"] < 0.06
    assert 230 <= ev["labels_treatment"] <= 260, ev["labels_treatment"]  # seeded: 243
    rel = {**LABELS, "dimension": "relevance"}
    assert registry.get_sample_value("convowatch_version_calibrated_decision", rel) == -1.0
    hal = {**LABELS, "dimension": "hallucination"}
    assert registry.get_sample_value("convowatch_version_calibrated_decision", hal) == 0.0
    low = registry.get_sample_value("convowatch_version_calibrated_lift_bound", {**rel, "bound": "lower"})
    lift = registry.get_sample_value("convowatch_version_calibrated_lift", rel)
    assert low is not None and lift is not None and 0 < low < lift
    labelled = registry.get_sample_value(
        "convowatch_version_calibrated_turns", {**rel, "arm": "treatment", "sample": "labelled"}
    )
    judged = registry.get_sample_value(
        "convowatch_version_calibrated_turns", {**rel, "arm": "treatment", "sample": "judged"}
    )
    assert labelled is not None and judged is not None and 0.15 < labelled / judged < 0.25
    # the judge-only comparison (streams/views/versions.py) sees +1 point and does not decide
    judge_only = [e for e in out if e.topic == "escalations" and "source" not in e.value["evidence"]]
    assert [e.value for e in judge_only if e.value["kind"] == "version_regression"] == []
    rows = {r["dimension"]: r for r in pipeline.report()["version_calibrated"]}
    assert rows["relevance"]["decision"] == "worse" and rows["hallucination"]["decision"] == "continue"


def test_equal_versions_under_a_biased_judge_raise_nothing() -> None:
    pipeline, registry = _pipeline()
    assert _calibrated(_run(pipeline, canary_rate=0.03)) == []
    rel = {**LABELS, "dimension": "relevance"}
    assert registry.get_sample_value("convowatch_version_calibrated_decision", rel) == 0.0
    assert registry.get_sample_value("convowatch_version_calibrated_p_value", rel) > 0.05
    [row] = [r for r in pipeline.report()["version_calibrated"] if r["dimension"] == "relevance"]
    # the judge says ~7%, humans 3%: the calibrated rates are the human ones
    assert row["interval"][0] < 0 < row["interval"][1]
    assert abs(row["control_rate"] - 0.03) < 0.015 and abs(row["treatment_rate"] - 0.03) < 0.02


def test_replayed_verdicts_and_labels_count_once() -> None:
    metrics = Metrics(CollectorRegistry())
    view = VersionCalibratedView(metrics, min_samples=5, min_labels=2)
    aggregator = Aggregator(metrics, views=[view])
    segment = {"journey": "shopper", "model_version": "v1"}

    stream: list[dict[str, Any]] = []
    for i in range(60):
        seg = {**segment, "model_version": "v2" if i % 2 else "v1"}
        common = {"turn_id": f"t{i}", "ts": 1_700_000_000.0 + i, "segment": seg, "judge_id": "judge-a"}
        labels = {"relevance": "fail" if i % 7 == 0 else "pass", "intent": "refund"}
        stream.append({"kind": "judged", "labels": labels, "src": ["judge", i, 0], **common})
        if i % 3 == 0:
            pair = {"dimension": "relevance", "judge_label": labels["relevance"], "human_label": "fail"}
            stream.append(
                {"kind": "pair", "inclusion_probability": 0.5, "src": ["human", i, 0], **pair, **common}
            )
    for o in stream:
        aggregator.apply(o)
    for o in stream[-20:]:
        aggregator.apply(dict(o))
    [row] = view.report(aggregator)["version_calibrated"]  # only quality dimensions: not intent
    assert row["dimension"] == "relevance"
    assert (row["n_control"], row["n_treatment"]) == (29, 30)  # t0 (v1) came before v2 existed
    assert (row["labels_control"], row["labels_treatment"]) == (9, 10)
    assert aggregator.duplicates == 20


def _judged(n: int, journey: str) -> dict[str, Any]:
    return {
        "kind": "judged",
        "src": ["in:0", n, 0],
        "judge_id": "judge-a",
        "turn_id": f"t{n}",
        "ts": 1000.0 + n,
        "labels": {"relevance": "pass"},
        "segment": {"journey": journey, "model_version": "v1"},
    }


def _turn(n: int, journey: str) -> dict[str, Any]:
    return {
        "kind": "turn",
        "src": ["in:0", n, 0],
        "turn_id": f"t{n}",
        "ts": 1000.0 + n,
        "segment": {"journey": journey, "model_version": "v1"},
        "outcome": {"contained": True},
    }


@pytest.mark.parametrize(
    ("view", "observation"), [(VersionCalibratedView, _judged), (VersionOutcomeView, _turn)]
)
def test_after_a_restart_each_journey_keeps_its_comparison(view: Any, observation: Any) -> None:
    # 50 journeys get their own comparison, the 51st shares "other". A restarted process that met the
    # 51st first gave it a comparison of its own and folded the 50th (perhaps firing) into "other".
    store = DictStore()
    first = Aggregator(Metrics(CollectorRegistry()), store, views=[view(Metrics(CollectorRegistry()))])
    journeys = [f"j{i:02d}" for i in range(51)]
    for n, journey in enumerate(journeys):
        first.apply(observation(n, journey))
    first.flush()
    restarted = view(Metrics(CollectorRegistry()))
    again = Aggregator(Metrics(CollectorRegistry()), store, views=[restarted])
    again.rebalanced()
    again.apply(observation(100, "j50"))
    if view is VersionCalibratedView:
        guard = restarted.journeys("judge-a", "journey")
    else:  # sharded by journey: a guard per observation partition (None embedded)
        guard = restarted.partition_journeys(None)
    assert (guard("j49"), guard("j50")) == ("j49", "other")
