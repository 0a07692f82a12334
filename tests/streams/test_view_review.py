"""Review sampling wired into the pipeline: requests within the budget, every high-risk turn, exact pi."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors import PredictionPoweredRate
from detectors.review_sampler import ReviewSampler
from schemas import ReviewRequest, Stream
from streams.config import Settings
from streams.emit import Emit
from streams.generator import TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore
from streams.views.review import review_signals

START = datetime(2026, 11, 2, 8, tzinfo=UTC)
HIGH_RISK_TOPICS = {"earnings", "identity", "fraud"}
QUALITY = {
    "relevance",
    "execution_accuracy",
    "safety",
    "hallucination",
    "bias",
    "personalization",
    "compliance",
}


def _pipeline(**settings: Any) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(**settings), Metrics(registry)), registry


def _turn(turn_id: str, seconds: float, **extra: Any) -> bytes:
    record = {
        "turn_id": turn_id,
        "conversation_id": f"c-{turn_id}",
        "ts": (START + timedelta(seconds=seconds)).isoformat(),
        "journey": "shopper",
        "channel": "chat",
        "model_version": "m-1",
        "intent": "returns",
        **extra,
    }
    return orjson.dumps(record)


def _verdict(turn_id: str, seconds: float, *verdicts: dict[str, Any], judge: str = "judge-a") -> bytes:
    record = {
        "turn_id": turn_id,
        "ts": (START + timedelta(seconds=seconds + 5)).isoformat(),
        "judge_id": judge,
        "judge_version": "1",
        "verdicts": list(verdicts) or [{"dimension": "relevance", "label": "pass", "confidence": 0.99}],
    }
    return orjson.dumps(record)


def _label(turn_id: str, seconds: float, label: str, pi: float | None = None) -> bytes:
    record: dict[str, Any] = {
        "turn_id": turn_id,
        "ts": (START + timedelta(seconds=seconds + 600)).isoformat(),
        "annotator_id": "ann-1",
        "vendor_id": "vendor-a",
        "verdicts": [{"dimension": "relevance", "label": label}],
    }
    if pi is not None:
        record["inclusion_probability"] = pi
    return orjson.dumps(record)


def _v(dimension: str, label: str, confidence: float | None = None) -> dict[str, Any]:
    return {"dimension": dimension, "label": label, **({"confidence": confidence} if confidence else {})}


def _feed(pipeline: Pipeline, records: list[tuple[Stream, bytes]], offset: int = 0) -> list[Emit]:
    out = []
    for i, (stream, raw) in enumerate(records, start=offset):
        out += pipeline.process(stream, raw, source_topic=stream.value, offset=i)
    return out


def _requests(emits: list[Emit]) -> list[dict[str, Any]]:
    found = [e for e in emits if e.topic == "review_requests"]
    for e in found:
        assert e.key == e.value["request_id"] == f"review/{e.value['turn_id']}"
        ReviewRequest.model_validate(e.value)
    return [e.value for e in found]


# -- generated traffic: budget, high-risk turns, inclusion probabilities ----------------------------------


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    """6 h of generator traffic at one turn a second through the pipeline, observations applied by hand
    so a standalone sampler can be fed the very same ``reviewable`` observations."""
    budget = 300.0
    pipeline, registry = _pipeline(review_budget_per_hour=budget, review_seed=3)
    oracle = ReviewSampler(budget_per_hour=budget, seed=3)
    taxonomy = pipeline.taxonomy
    # the default taxonomy's high-risk dimensions, as ``high_risk`` below has them
    assert {d for d in QUALITY if taxonomy.policy(d).high_risk} == {"safety", "bias"}
    turns: dict[str, dict[str, Any]] = {}
    fails: dict[str, set[str]] = {}
    requests: list[dict[str, Any]] = []
    expected: dict[str, float] = {}  # the standalone sampler's pi of every turn it requests
    pis: dict[str, float] = {}
    for _, offset, stream, raw, source, _ in to_records(
        TrafficGenerator(seed=5, rate=1.0, label_share=0.0).records(6 * 3600, drain=True)
    ):
        event = orjson.loads(raw)
        if stream is Stream.CHAT_TURNS:
            turns[event["turn_id"]] = event
        elif stream is Stream.JUDGE_VERDICTS:
            fails[event["turn_id"]] = {v["dimension"] for v in event["verdicts"] if v["label"] == "fail"}
        for emit in pipeline.ingest(stream, raw, source_topic=source, offset=offset):
            if emit.topic != "observations":
                continue
            obs = emit.value
            if obs["kind"] == "reviewable":
                signals = review_signals(obs, taxonomy)
                oracle.update(
                    obs["turn_id"],
                    obs["ts"],
                    segment=obs["segment"]["journey"],
                    high_risk=signals["high_risk"],
                    confidence=signals["confidence"],
                    disagreement=bool(signals["disagreements"]),
                    decided_before=bool(obs.get("update")),
                )
                pis[obs["turn_id"]] = oracle.inclusion_probability
                if oracle.requested:
                    expected[obs["turn_id"]] = oracle.inclusion_probability
            requests += _requests(pipeline.aggregate(obs))
    high_risk = {
        turn_id
        for turn_id, failed in fails.items()
        if failed & {"safety", "bias"}
        or (failed & QUALITY and set(turns[turn_id]["risk_topics"]) & HIGH_RISK_TOPICS)
    }
    return {
        "budget": budget,
        "pipeline": pipeline,
        "registry": registry,
        "turns": turns,
        "high_risk": high_risk,
        "requests": requests,
        "expected": expected,
        "pis": pis,
    }


def test_every_high_risk_turn_is_requested_with_probability_one(generated: dict[str, Any]) -> None:
    by_turn = {r["turn_id"]: r for r in generated["requests"]}
    assert len(by_turn) == len(generated["requests"]), "one request per turn"
    high_risk = generated["high_risk"]
    assert len(high_risk) > 300  # ~2% of 21,600 turns: enough to mean something
    for turn_id in high_risk:
        request = by_turn[turn_id]
        assert (request["reason"], request["inclusion_probability"], request["priority"]) == (
            "high_risk",
            1,
            1,
        )
    assert {t for t, r in by_turn.items() if r["reason"] == "high_risk"} == high_risk


def test_requests_per_hour_of_event_time_stay_within_the_budget(generated: dict[str, Any]) -> None:
    budget, requests = generated["budget"], generated["requests"]
    per_hour = Counter(
        int((datetime.fromisoformat(r["ts"]) - START).total_seconds() // 3600) for r in requests
    )
    assert set(per_hour) == set(range(6))
    # stated tolerance: every hour within 15% of the budget, the six hours together within 5%
    assert all(0.85 * budget <= n <= 1.15 * budget for n in per_hour.values()), per_hour
    assert 0.95 * 6 * budget <= len(requests) <= 1.05 * 6 * budget
    reasons = Counter(r["reason"] for r in requests)
    assert reasons["uncertain"] > reasons["high_risk"] > reasons["disagreement"] > 50, reasons
    registry = generated["registry"]
    assert registry.get_sample_value("convowatch_review_budget_per_hour") == budget
    assert registry.get_sample_value("convowatch_review_expected_requests_per_hour") == pytest.approx(
        budget, rel=0.05
    )
    counted = sum(
        registry.get_sample_value("convowatch_review_requests_total", {"reason": reason, "journey": journey})
        or 0.0
        for reason in ("high_risk", "disagreement", "uncertain", "segment_coverage", "random")
        for journey in ("shopper", "driver_support")
    )
    assert counted == len(requests)


def test_each_request_carries_the_samplers_inclusion_probability(generated: dict[str, Any]) -> None:
    published = {r["turn_id"]: r["inclusion_probability"] for r in generated["requests"]}
    assert published == generated["expected"]  # same turns, same pi, to the last bit
    # every judged turn had a chance, and the chances sum to the expected number of requests
    pis = generated["pis"]
    assert len(pis) == len(generated["turns"])
    assert min(pis.values()) >= 0.001
    assert sum(pis.values()) == pytest.approx(len(published), rel=0.05)


def test_the_sampler_state_survives_a_json_round_trip(generated: dict[str, Any]) -> None:
    sampler = generated["pipeline"].aggregator.detector("review")
    assert isinstance(sampler, ReviewSampler)
    restored = ReviewSampler.from_dict(orjson.loads(orjson.dumps(sampler.to_dict())))
    assert restored.to_dict() == sampler.to_dict()
    assert sampler.n_turns == len(generated["turns"]) and sampler.n_requested == len(generated["requests"])


# -- hand-built turns: reasons, replays, configuration ----------------------------------------------------


def test_reasons_priorities_queues_and_evidence_of_hand_built_turns() -> None:
    # a budget no traffic here reaches: every turn is requested (pi = 1), with the reason of its top term
    pipeline, _ = _pipeline(review_budget_per_hour=1e6, review_queues={"driver_support": "vendor-b/drivers"})
    cases: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
        "unsafe": ({}, [_v("safety", "fail", 0.99)]),
        "risky": ({"risk_topics": ["fraud"], "journey": "driver_support"}, [_v("relevance", "fail", 0.99)]),
        "flagged": ({"guardrail_flags": ["toxicity_filter"]}, [_v("safety", "pass", 0.99)]),
        "thumbs": ({"outcome": {"user_feedback": "down"}}, [_v("relevance", "pass", 0.99)]),
        "intent": ({"intent": "returns"}, [_v("intent", "order_status", 0.99)]),
        "unsure": ({}, [_v("relevance", "pass", 0.55), _v("safety", "pass", 0.97)]),
        "plain": ({"risk_topics": ["fraud"]}, [_v("relevance", "pass", 0.99)]),
    }
    records: list[tuple[Stream, bytes]] = []
    for i, (name, (extra, verdicts)) in enumerate(cases.items()):
        records.append((Stream.CHAT_TURNS, _turn(name, i, **extra)))
        records.append((Stream.JUDGE_VERDICTS, _verdict(name, i, *verdicts)))
    requests = {r["turn_id"]: r for r in _requests(_feed(pipeline, records))}
    assert {t: r["reason"] for t, r in requests.items()} == {
        "unsafe": "high_risk",
        "risky": "high_risk",
        "flagged": "disagreement",
        "thumbs": "disagreement",
        "intent": "disagreement",
        "unsure": "uncertain",
        "plain": "random",  # a risky topic the judge passes is not high-risk
    }
    assert all(r["inclusion_probability"] == 1.0 for r in requests.values())
    assert requests["unsafe"]["evidence"] == {"high_risk_fails": ["safety"], "judge_confidence": 0.99}
    assert requests["risky"]["evidence"]["risk_topics"] == ["fraud"]
    assert requests["flagged"]["evidence"]["disagreements"] == ["guardrail_flag_judge_passes_safety"]
    assert requests["thumbs"]["evidence"]["disagreements"] == ["thumbs_down_judge_passes"]
    assert requests["intent"]["evidence"]["disagreements"] == ["intent_differs_from_judge"]
    assert requests["unsure"]["evidence"]["judge_confidence"] == 0.55  # the least sure of the two
    assert requests["risky"]["queue"] == "vendor-b/drivers" and requests["plain"]["queue"] == "default"
    assert requests["unsafe"]["priority"] == 1.0 and requests["risky"]["priority"] == 1.0
    # priority = the sampler's over its maximum 1 + 5 + 5 + 1: disagreement > uncertain (0.55) > plain
    assert requests["flagged"]["priority"] > requests["unsure"]["priority"] > requests["plain"]["priority"]
    # ... with the segment term 1 / sqrt(1 + 4): four shopper requests before it, seconds ago
    assert requests["unsure"]["priority"] == pytest.approx(
        (1 + 5 * 0.9 + 1 / math.sqrt(1 + 4)) / 12, rel=1e-3
    )
    assert requests["unsure"]["segment"]["journey"] == "shopper"
    assert requests["unsure"]["ts"] == "2026-11-02T08:00:05Z" and requests["unsure"]["judge_ids"] == [
        "judge-a"
    ]


def test_one_decision_per_turn_and_a_replayed_observation_publishes_nothing() -> None:
    pipeline, _ = _pipeline()
    observations = []
    for i, (stream, raw) in enumerate(
        [
            (Stream.JUDGE_VERDICTS, _verdict("t-1", 0, _v("safety", "fail"))),
            (Stream.CHAT_TURNS, _turn("t-1", 0)),
            (Stream.JUDGE_VERDICTS, _verdict("t-1", 0, _v("bias", "fail"), judge="judge-b")),
            (Stream.HUMAN_LABELS, _label("t-1", 0, "fail")),
        ]
    ):
        emits = pipeline.ingest(stream, raw, source_topic="in", partition=0, offset=i)
        observations += [e for e in emits if e.topic == "observations"]
    reviewable = [o for o in observations if o.value["kind"] == "reviewable"]
    assert len(reviewable) == 1 and reviewable[0].key == "review"  # the second judge decides nothing
    assert sorted(reviewable[0].value["judges"]) == ["judge-a"]
    first = _requests(pipeline.aggregate(reviewable[0].value, 0))
    assert len(first) == 1 and first[0]["reason"] == "high_risk"
    assert pipeline.aggregate(reviewable[0].value, 0) == []  # re-delivered: skipped by its source position
    sampler = pipeline.aggregator.detector("review")
    assert isinstance(sampler, ReviewSampler) and sampler.n_turns == 1
    # a worker that lost the state decides again: the same request, apart from when it was made
    again, _ = _pipeline()
    second = _requests(again.aggregate(reviewable[0].value, 0))
    drop = "requested_at"
    assert [{k: v for k, v in r.items() if k != drop} for r in second] == [
        {k: v for k, v in r.items() if k != drop} for r in first
    ]


@pytest.mark.parametrize("second_judge", ["judge-a", "judge-b"])
def test_a_turn_a_later_verdict_makes_high_risk_is_requested_then(second_judge: str) -> None:
    """A judge prompted per dimension sends its safety fail after its relevance pass (or a second judge
    fails the turn): the first decision saw no high-risk failure, and high-risk turns are always requested."""
    pipeline, _ = _pipeline(review_budget_per_hour=0.001)
    records: list[tuple[Stream, bytes]] = []
    for i in range(30):  # the sampler learns that its budget is tiny
        records += [(Stream.CHAT_TURNS, _turn(f"t-{i}", i)), (Stream.JUDGE_VERDICTS, _verdict(f"t-{i}", i))]
    records += [(Stream.CHAT_TURNS, _turn("late", 40)), (Stream.JUDGE_VERDICTS, _verdict("late", 40))]
    first = _feed(pipeline, records)
    assert "late" not in {r["turn_id"] for r in _requests(first)}  # drawn against a tiny probability
    assert [e.key for e in first if e.topic == "review_keep"] == []  # routed to the join in process
    failing = [(Stream.JUDGE_VERDICTS, _verdict("late", 50, _v("safety", "fail", 0.9), judge=second_judge))]
    (request,) = _requests(_feed(pipeline, failing, offset=len(records)))
    assert request["turn_id"] == "late" and request["reason"] == "high_risk"
    assert request["inclusion_probability"] == 1.0 and request["priority"] == 1.0
    assert request["evidence"]["high_risk_fails"] == ["safety"]
    assert pipeline.joiner.kept_for_review == {"late"}
    # decided as high-risk now: another failure asks nothing more
    more = [(Stream.JUDGE_VERDICTS, _verdict("late", 60, _v("bias", "fail", 0.9), judge="judge-c"))]
    assert _requests(_feed(pipeline, more, offset=len(records) + 1)) == []


def test_a_turn_decided_again_counts_once_in_the_samplers_turns_and_requests() -> None:
    """A later verdict that makes a decided turn high-risk requests it (again, replacing any request): the
    sampler counted it as one more turn, and one more request if it had been requested, so its budget
    controller saw those turns twice."""

    def run(later_fails: bool) -> tuple[ReviewSampler, list[dict[str, Any]]]:
        pipeline, _ = _pipeline(review_budget_per_hour=1800)  # half of the turns, at one a second
        records: list[tuple[Stream, bytes]] = []
        for i in range(120):
            records += [
                (Stream.CHAT_TURNS, _turn(f"t-{i}", i)),
                (Stream.JUDGE_VERDICTS, _verdict(f"t-{i}", i)),
            ]
        if later_fails:  # every other turn: a second judge fails safety
            fail = _v("safety", "fail", 0.9)
            records += [
                (Stream.JUDGE_VERDICTS, _verdict(f"t-{i}", 130, fail, judge="judge-b"))
                for i in range(0, 120, 2)
            ]
        requests = _requests(_feed(pipeline, records))
        sampler = pipeline.aggregator.detector("review")
        assert isinstance(sampler, ReviewSampler)
        return sampler, requests

    plain, _ = run(later_fails=False)
    sampler, requests = run(later_fails=True)
    requested = {r["turn_id"] for r in requests}
    assert len(requests) - len(requested) > 10  # turns requested before, and again as high-risk
    assert {r["turn_id"] for r in requests if r["reason"] == "high_risk"} == {
        f"t-{i}" for i in range(0, 120, 2)
    }
    assert (sampler.n_turns, sampler.n_requested) == (120, len(requested))
    # the recent traffic holds 120 turns, as without the later verdicts (60 of them high-risk now)
    assert sampler.turns_per_hour == pytest.approx(plain.turns_per_hour, rel=1e-9)


def test_a_stored_sampler_follows_the_configuration() -> None:
    pipeline, _ = _pipeline(review_budget_per_hour=10, review_segment_floor_per_hour=2, review_seed=4)
    _feed(pipeline, [(Stream.CHAT_TURNS, _turn("t-1", 0)), (Stream.JUDGE_VERDICTS, _verdict("t-1", 0))])
    store = DictStore()  # the aggregates as a restarted worker recovers them (JSON)
    stored = pipeline.aggregator.store.get("review")
    store.put("review", orjson.loads(orjson.dumps(stored.encode())), None)
    registry = CollectorRegistry()
    settings = Settings(review_budget_per_hour=25, review_min_probability=0.01)
    restarted = Pipeline(settings, Metrics(registry), aggregate_store=store)
    _feed(restarted, [(Stream.CHAT_TURNS, _turn("t-2", 9)), (Stream.JUDGE_VERDICTS, _verdict("t-2", 9))], 2)
    sampler = restarted.aggregator.detector("review")
    assert isinstance(sampler, ReviewSampler) and sampler.n_turns == 2
    params = (sampler.budget_per_hour, sampler.segment_floor_per_hour, sampler.min_probability, sampler.seed)
    assert params == (25, 0.0, 0.01, 0)
    assert registry.get_sample_value("convowatch_review_budget_per_hour") == 25
    with pytest.raises(ValueError, match="min_probability"):
        _pipeline(review_min_probability=0.0)


# -- inverse-probability weighting of human labels ----------------------------------------------------------


def test_a_label_with_inclusion_probability_weighs_its_inverse_in_the_calibrated_rate() -> None:
    pipeline, _ = _pipeline()
    records: list[tuple[Stream, bytes]] = []
    direct, unweighted = PredictionPoweredRate(), PredictionPoweredRate()
    labels = []
    for i in range(40):
        judge_fail = i % 4 == 0
        records.append((Stream.CHAT_TURNS, _turn(f"t-{i}", i)))
        records.append(
            (Stream.JUDGE_VERDICTS, _verdict(f"t-{i}", i, _v("relevance", "fail" if judge_fail else "pass")))
        )
        direct.update(judge_fail)
        unweighted.update(judge_fail)
        if i % 3 == 0:  # 14 labelled turns; the judge misses one defect, found on a turn sampled at p = 0.25
            truth = judge_fail or i == 9
            pi = 0.25 if i == 9 else 1.0 if i % 2 == 0 else None
            labels.append((f"t-{i}", i, truth, pi))
            direct.add_label(judge_fail, truth, 1.0 / pi if pi else 1.0)
            unweighted.add_label(judge_fail, truth)
    for turn_id, i, truth, pi in labels:
        records.append((Stream.HUMAN_LABELS, _label(turn_id, i, "fail" if truth else "pass", pi)))
    out = []
    for i, (stream, raw) in enumerate(records):
        out += pipeline.ingest(stream, raw, source_topic="in", partition=0, offset=i)
    labelled = {
        e.value["turn_id"]: e.value
        for e in out
        if e.topic == "observations" and e.value["kind"] == "labelled"
    }
    assert (
        labelled["t-9"]["inclusion_probability"] == 0.25 and labelled["t-3"]["inclusion_probability"] is None
    )
    for emit in out:
        if emit.topic == "observations":
            pipeline.aggregate(emit.value, 0)
    rows = {r["journey"]: r for r in pipeline.report()["defect_rates"] if r["dimension"] == "relevance"}
    for journey in ("*", "shopper"):
        row = rows[journey]
        assert (row["n_judged"], row["n_labelled"]) == (40, 14)
        assert row["estimate"] == pytest.approx(direct.estimate, abs=1e-12)
        assert row["interval"] == pytest.approx(list(direct.interval), abs=1e-12)
        assert row["human_estimate"] == pytest.approx(8 / 17, abs=1e-12)  # t-9 counts as 4 labels of 17
    assert unweighted.human_estimate == pytest.approx(5 / 14)
    assert abs(direct.estimate - unweighted.estimate) > 0.01
