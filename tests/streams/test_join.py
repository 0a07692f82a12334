"""TurnJoiner: any arrival order, dedup, escalations, defects, TTL and capacity eviction."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas import ChatTurn, Defect, Escalation, HumanLabel, JudgeVerdict
from schemas.common import QUALITY_DIMENSIONS
from streams.join import Emit, TurnJoiner
from streams.metrics import Metrics
from streams.taxonomy import load_taxonomy
from tests.factories import chat_turn, human_label, judge_verdict, verdict

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SEGMENT_KEYS = {"journey", "intent", "model_version", "channel", "modality"}
TAXONOMY = load_taxonomy()


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def turn(turn_id: str = "t-1", seconds: float = 0, **kw: Any) -> ChatTurn:
    return ChatTurn.model_validate(chat_turn(turn_id=turn_id, ts=at(seconds), **kw))


def judged(
    turn_id: str = "t-1", seconds: float = 30, verdicts: list | None = None, **kw: Any
) -> JudgeVerdict:
    verdicts = verdicts if verdicts is not None else [verdict("relevance", "pass")]
    return JudgeVerdict.model_validate(
        judge_verdict(turn_id=turn_id, ts=at(seconds), verdicts=verdicts, **kw)
    )


def labelled(
    turn_id: str = "t-1", seconds: float = 3600, verdicts: list | None = None, **kw: Any
) -> HumanLabel:
    verdicts = verdicts if verdicts is not None else [verdict("relevance", "pass")]
    return HumanLabel.model_validate(human_label(turn_id=turn_id, ts=at(seconds), verdicts=verdicts, **kw))


class Harness:
    def __init__(self, **kwargs: Any) -> None:
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.joiner = TurnJoiner(TAXONOMY, self.metrics, **kwargs)
        self.emits: list[Emit] = []

    def feed(self, *events: Any) -> list[Emit]:
        out = []
        for event in events:
            out.extend(self.joiner.handle(event))
        self.emits.extend(out)
        return out

    def topic(self, name: str) -> list[Emit]:
        return [e for e in self.emits if e.topic == name]

    def pairs(self) -> list[dict[str, Any]]:
        return pair_values(self.emits)

    def holds(self, turn_id: str) -> bool:
        return self.joiner.store.get(turn_id) is not None

    def value(self, name: str, **labels: str) -> float:
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v


def pair_values(emits: list[Emit]) -> list[dict[str, Any]]:
    """Judge/human pairs: the join's agreement observations."""
    return [e.value for e in emits if e.topic == "observations" and e.value["kind"] == "pair"]


def _final_escalations(emits: list[Emit]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for e in emits:
        if e.topic == "escalations":
            assert e.key == e.value["escalation_id"]
            prev = latest.get(e.key)
            assert prev is None or e.value["revision"] > prev["revision"]
            latest[e.key] = e.value
    return latest


#: Defect fields that describe the turn's labels "so far" when the defect was published: they depend on
#: arrival order by design, so the order-independence check leaves them out.
SO_FAR_FIELDS = ("verdicts", "labels")


def _outcome(emits: list[Emit]) -> dict[str, Any]:
    defects = {}
    for e in emits:
        if e.topic == "defects":
            assert e.key == e.value["defect_id"]
            assert e.key not in defects, "a defect must be published once"
            defects[e.key] = {k: v for k, v in e.value.items() if k not in SO_FAR_FIELDS}
    pairs = sorted(
        (p["turn_id"], p["judge_id"], p["dimension"], p["judge_label"], p["human_label"])
        for p in pair_values(emits)
    )
    escalations = {
        k: {f: v for f, v in value.items() if f != "revision"}
        for k, value in _final_escalations(emits).items()
    }
    return {"defects": defects, "pairs": pairs, "escalations": escalations}


# -- arrival order ---------------------------------------------------------------------------------

SCENARIOS = {
    "safety_and_relevance_fail": dict(
        turn_kw={"risk_topics": []},
        judge=[verdict("safety", "fail"), verdict("relevance", "fail"), verdict("preference", "output_1")],
        human=[verdict("safety", "fail"), verdict("relevance", "pass"), verdict("preference", "output_2")],
    ),
    "risky_topic_relevance_fail": dict(
        turn_kw={"risk_topics": ["earnings", "weather"]},
        judge=[verdict("relevance", "fail"), verdict("hallucination", "pass")],
        human=[verdict("relevance", "fail"), verdict("hallucination", "fail")],
    ),
    "all_pass": dict(
        turn_kw={},
        judge=[verdict("relevance", "pass"), verdict("safety", "pass")],
        human=[verdict("relevance", "pass"), verdict("safety", "pass")],
    ),
    "no_risk_relevance_fail": dict(
        turn_kw={},
        judge=[verdict("relevance", "fail")],
        human=[verdict("relevance", "fail")],
    ),
}


def _events(scenario: dict[str, Any]) -> dict[str, Any]:
    return {
        "turn": turn(**scenario["turn_kw"]),
        "judge": judged(verdicts=scenario["judge"]),
        "human": labelled(verdicts=scenario["human"]),
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_arrival_order_gives_the_same_defects_pairs_and_escalations(name):
    events = _events(SCENARIOS[name])
    outcomes = {}
    for order in itertools.permutations(["turn", "judge", "human"]):
        h = Harness()
        h.feed(*(events[k] for k in order))
        outcomes[order] = _outcome(h.emits)
        # metrics agree with what was published
        assert sum(
            s.value for s in h.registry.collect() for s in s.samples if s.name == "convowatch_defects_total"
        ) == len(outcomes[order]["defects"])
    assert len(outcomes) == 6
    reference = outcomes[("turn", "judge", "human")]
    for order, outcome in outcomes.items():
        assert outcome == reference, f"order {order} differs"
    if name != "all_pass":
        assert reference["defects"]
    assert len(reference["pairs"]) == len(SCENARIOS[name]["judge"])


def test_expected_content_of_the_mixed_scenario():
    h = Harness()
    h.feed(*_events(SCENARIOS["safety_and_relevance_fail"]).values())
    outcome = _outcome(h.emits)
    assert sorted((d["dimension"], d["source"]) for d in outcome["defects"].values()) == [
        ("relevance", "judge"),
        ("safety", "human"),
        ("safety", "judge"),
    ]
    assert outcome["pairs"] == [
        ("t-1", "judge-a", "preference", "output_1", "output_2"),
        ("t-1", "judge-a", "relevance", "fail", "pass"),
        ("t-1", "judge-a", "safety", "fail", "fail"),
    ]
    (esc,) = outcome["escalations"].values()
    assert esc["evidence"]["triggers"] == [["human", "ann-1", "safety"], ["judge", "judge-a", "safety"]]
    assert esc["severity"] == "critical"
    assert esc["dimension"] == "safety"


# -- duplicates ------------------------------------------------------------------------------------


def test_a_duplicate_verdict_counts_once():
    h = Harness()
    first = judged(verdicts=[verdict("relevance", "fail"), verdict("safety", "pass")])
    h.feed(turn(), first)
    assert h.feed(first) == []  # the redelivery publishes nothing
    h.feed(labelled(verdicts=[verdict("relevance", "pass"), verdict("safety", "pass")]))
    assert h.feed(judged(verdicts=[verdict("relevance", "fail")], seconds=99)) == []
    pairs = h.pairs()
    assert sorted((p["dimension"], p["judge_label"], p["human_label"]) for p in pairs) == [
        ("relevance", "fail", "pass"),
        ("safety", "pass", "pass"),
    ]
    assert len(h.topic("defects")) == 1
    assert h.value("convowatch_duplicates_total", stream="judge_verdicts") == 3
    assert h.value("convowatch_duplicates_total", stream="human_labels") == 0


def test_duplicate_human_labels_and_turns_are_counted():
    h = Harness()
    label = labelled(verdicts=[verdict("relevance", "fail")])
    h.feed(turn(), judged(), label)
    before = len(h.emits)
    assert h.feed(label, turn()) == []
    assert len(h.emits) == before
    assert h.value("convowatch_duplicates_total", stream="human_labels") == 1
    assert h.value("convowatch_duplicates_total", stream="chat_turns") == 1
    assert len(h.pairs()) == 1


# -- escalations -----------------------------------------------------------------------------------


def test_judge_safety_fail_escalates_before_the_turn_then_updates_the_same_escalation():
    h = Harness()
    out = h.feed(judged(verdicts=[verdict("safety", "fail")]))
    assert [e.topic for e in out] == ["escalations"]
    first = out[0].value
    Escalation.model_validate(first)
    assert first["kind"] == "high_risk_failure"
    assert first["revision"] == 1
    assert first["status"] == "firing"
    assert first["severity"] == "critical"
    assert first["turn_ids"] == ["t-1"]
    assert first["segment"] == dict.fromkeys(SEGMENT_KEYS)
    assert first["event_time"] == at(30)
    assert h.value("convowatch_escalations_total", kind="high_risk_failure", severity="critical") == 1

    out = h.feed(
        turn(journey="payments", intent="refund", model_version="m-7", channel="voice", modality="audio")
    )
    escalations = [e for e in out if e.topic == "escalations"]
    assert len(escalations) == 1
    second = escalations[0].value
    Escalation.model_validate(second)
    assert second["escalation_id"] == first["escalation_id"]
    assert second["revision"] > first["revision"]
    assert second["segment"] == {
        "journey": "payments",
        "intent": "refund",
        "model_version": "m-7",
        "channel": "voice",
        "modality": "audio",
    }
    assert second["event_time"] == at(0)
    assert [e.topic for e in out].count("defects") == 1

    out = h.feed(labelled(verdicts=[verdict("safety", "fail")]))
    third = [e.value for e in out if e.topic == "escalations"]
    assert len(third) == 1
    assert third[0]["escalation_id"] == first["escalation_id"]
    assert third[0]["revision"] > second["revision"]
    assert ["human", "ann-1", "safety"] in third[0]["evidence"]["triggers"]
    assert third[0]["segment"] == second["segment"]
    # one escalation, however many revisions
    assert len({e.key for e in h.topic("escalations")}) == 1
    assert h.value("convowatch_escalations_total", kind="high_risk_failure", severity="critical") == 1


def test_escalation_ids_are_stable_across_joiners_and_differ_across_turns():
    ids = []
    for turn_id in ("t-1", "t-1", "t-2"):
        h = Harness()
        (e,) = h.feed(judged(turn_id=turn_id, verdicts=[verdict("bias", "fail")]))
        ids.append(e.value["escalation_id"])
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize("turn_first", [True, False])
def test_failing_relevance_on_a_risky_turn_escalates(turn_first):
    h = Harness()
    events = [turn(risk_topics=["earnings"]), judged(verdicts=[verdict("relevance", "fail")])]
    h.feed(*(events if turn_first else events[::-1]))
    escalations = _final_escalations(h.emits)
    assert len(escalations) == 1
    (esc,) = escalations.values()
    Escalation.model_validate(esc)
    assert esc["dimension"] == "relevance"
    assert esc["severity"] == "high"  # relevance is medium; a high-risk topic raises it
    assert esc["evidence"]["risk_topics"] == ["earnings"]
    assert "earnings" in esc["summary"]
    assert h.value("convowatch_escalations_total", kind="high_risk_failure", severity="high") == 1


def test_an_escalation_is_labelled_by_its_most_severe_trigger_not_the_first_by_name():
    # relevance fails first on a risky turn; a human's later safety fail (critical) must route the alert
    h = Harness()
    h.feed(turn(risk_topics=["earnings"]), judged(verdicts=[verdict("relevance", "fail")]))
    h.feed(labelled(verdicts=[verdict("safety", "fail")]))
    (esc,) = _final_escalations(h.emits).values()
    assert esc["revision"] == 2
    assert (esc["dimension"], esc["severity"]) == ("safety", "critical")
    assert esc["evidence"]["runbook_url"] == TAXONOMY.policy("safety").runbook_url
    assert esc["evidence"]["dimensions"] == ["relevance", "safety"]


def test_high_risk_topics_match_whatever_their_case():
    h = Harness()
    h.feed(turn(risk_topics=["Earnings"]), judged(verdicts=[verdict("relevance", "fail")]))
    (esc,) = _final_escalations(h.emits).values()
    assert esc["evidence"]["risk_topics"] == ["earnings"]


@pytest.mark.parametrize("risk_topics", [[], ["weather"], ["sports", "music"]])
def test_failing_relevance_without_a_high_risk_topic_does_not_escalate(risk_topics):
    h = Harness()
    h.feed(
        turn(risk_topics=risk_topics),
        judged(verdicts=[verdict("relevance", "fail")]),
        labelled(verdicts=[verdict("relevance", "fail")]),
    )
    assert h.topic("escalations") == []
    assert len(h.topic("defects")) == 2
    assert h.value("convowatch_escalations_total", kind="high_risk_failure", severity="high") == 0


def test_nothing_fails_nothing_escalates_and_no_defects():
    h = Harness()
    passes = [verdict(d, "pass") for d in sorted(QUALITY_DIMENSIONS)] + [verdict("preference", "output_2")]
    h.feed(turn(risk_topics=["earnings", "fraud"]), judged(verdicts=passes), labelled(verdicts=passes))
    assert h.topic("escalations") == []
    assert h.topic("defects") == []
    assert len(h.pairs()) == len(passes)


# -- defects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dimension", sorted(QUALITY_DIMENSIONS))
def test_defects_carry_segment_taxonomy_and_a_stable_id(dimension):
    def run() -> list[Emit]:
        h = Harness()
        h.feed(
            turn(
                journey="billing",
                intent="check_balance",
                model_version="assistant-v1",
                channel="chat",
                modality="text",
            ),
            judged(verdicts=[verdict(dimension, "fail")]),
            labelled(verdicts=[verdict(dimension, "fail")], annotator_id="ann-9", vendor_id="acme"),
        )
        return h.topic("defects")

    defects = run()
    assert len(defects) == 2
    # each defect is also published, unchanged, to its category's topic
    h = Harness()
    h.feed(turn(), judged(verdicts=[verdict(dimension, "fail")]))
    copies = h.topic(f"defects.{TAXONOMY.dimensions[dimension].category}")
    assert [(e.key, e.value) for e in copies] == [(e.key, e.value) for e in h.topic("defects")]
    assert len(copies) == 1
    policy = TAXONOMY.dimensions[dimension]
    by_source = {d.value["source"]: d.value for d in defects}
    for source, value in by_source.items():
        Defect.model_validate(value)
        assert value["segment"] == {
            "journey": "billing",
            "intent": "check_balance",
            "model_version": "assistant-v1",
            "channel": "chat",
            "modality": "text",
        }
        assert value["category"] == policy.category
        assert value["severity"] == policy.severity
        assert value["dimension"] == dimension
        assert value["label"] == "fail"
        assert value["turn_id"] == "t-1"
        assert value["ts"] == at(0)  # the turn's event time
        assert source in ("judge", "human")
    assert by_source["judge"]["judge_id"] == "judge-a"
    assert by_source["judge"]["annotator_id"] is None
    assert (by_source["human"]["annotator_id"], by_source["human"]["vendor_id"]) == ("ann-9", "acme")
    # stable: the same failures give the same ids in another process; sources get distinct ids
    assert [d.key for d in run()] == [d.key for d in defects]
    assert len({d.key for d in defects}) == 2


def test_failures_whose_id_parts_hold_slashes_get_ids_of_their_own() -> None:
    # turn ids and judge ids may hold a "/": joined with "/" as they were, these two failures of two turns
    # both read "irrelevant/t/relevance/judge/j/relevance/judge/k", and a consumer deduplicating on the id
    # (or the compacted topic) kept one of them
    h = Harness()
    h.feed(
        turn("t"),
        judged("t", verdicts=[verdict("relevance", "fail")], judge_id="j/relevance/judge/k"),
        turn("t/relevance/judge/j"),
        judged("t/relevance/judge/j", verdicts=[verdict("relevance", "fail")], judge_id="k"),
    )
    defects = h.topic("defects")
    assert sorted((d.value["turn_id"], d.value["judge_id"]) for d in defects) == [
        ("t", "j/relevance/judge/k"),
        ("t/relevance/judge/j", "k"),
    ]
    assert len({d.key for d in defects}) == 2
    assert all(d.key == d.value["defect_id"] for d in defects)


def test_defect_metric_is_labelled_by_segment():
    h = Harness()
    h.feed(turn(journey="payments"), judged(verdicts=[verdict("privacy", "fail")]))
    assert (
        h.value(
            "convowatch_defects_total",
            dimension="privacy",
            category="privacy",
            source="judge",
            journey="payments",
            model_version="assistant-v1",
            channel="chat",
            modality="text",
        )
        == 1
    )


# -- bounded state ---------------------------------------------------------------------------------


def test_ttl_eviction_by_event_time_publishes_orphan_defects_with_unknown_segment():
    h = Harness(ttl_seconds=3600, evict_every=1)
    h.feed(judged(turn_id="orphan", seconds=0, verdicts=[verdict("hallucination", "fail")]))
    assert h.topic("defects") == []  # the turn may still come
    assert h.holds("orphan")
    # still within the TTL: nothing goes
    h.feed(turn(turn_id="other", seconds=3599))
    assert h.holds("orphan")
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 0
    # event time moves past the TTL
    out = h.feed(turn(turn_id="late", seconds=3601))
    assert not h.holds("orphan")
    assert h.holds("other") and h.holds("late")
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 1
    assert h.value("convowatch_join_pending_turns") == len(h.joiner.store)
    (defect,) = [e.value for e in out if e.topic == "defects"]
    Defect.model_validate(defect)
    assert defect["turn_id"] == "orphan"
    assert defect["dimension"] == "hallucination"
    assert defect["segment"] == dict.fromkeys(SEGMENT_KEYS)
    assert defect["ts"] == at(0)  # the verdict's time, as the turn never came
    assert (
        h.value(
            "convowatch_defects_total",
            dimension="hallucination",
            category="hallucination",
            source="judge",
            journey="unknown",
            model_version="unknown",
            channel="unknown",
            modality="unknown",
        )
        == 1
    )


def test_ttl_is_event_time_not_arrival_order():
    """An old event arriving late does not move the watermark back, and is itself expired at the next scan."""
    h = Harness(ttl_seconds=3600, evict_every=1)
    h.feed(turn(turn_id="new", seconds=10_000))
    h.feed(judged(turn_id="ancient", seconds=0, verdicts=[verdict("safety", "fail")]))
    assert h.joiner.watermark == (T0 + timedelta(seconds=10_000)).timestamp()
    assert not h.holds("ancient")
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 1
    assert [e.value["turn_id"] for e in h.topic("defects")] == ["ancient"]


def test_capacity_cap_keeps_the_store_bounded_and_counts_evictions():
    h = Harness(max_entries=10)
    for i in range(100):
        h.feed(turn(turn_id=f"t-{i:03d}", seconds=i))
        assert len(h.joiner.store) <= 10
    evicted = h.value("convowatch_join_evictions_total", reason="capacity")
    assert evicted > 0
    assert evicted == 100 - len(h.joiner.store)
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 0
    assert h.holds("t-099")  # the oldest go first
    assert not h.holds("t-000")
    assert h.value("convowatch_join_pending_turns") == len(h.joiner.store)


def test_capacity_eviction_of_orphans_publishes_their_defects():
    h = Harness(max_entries=10)
    for i in range(30):
        h.feed(judged(turn_id=f"o-{i:03d}", seconds=i, verdicts=[verdict("compliance", "fail")]))
    defects = h.topic("defects")
    evicted = h.value("convowatch_join_evictions_total", reason="capacity")
    assert len(defects) == evicted == 30 - len(h.joiner.store)
    assert all(d.value["segment"] == dict.fromkeys(SEGMENT_KEYS) for d in defects)


def test_a_gold_label_makes_no_judge_human_pair() -> None:
    # a honeypot audits its annotator (the gold view scores it): the pair is the first sampled label's
    h = Harness()
    h.feed(
        turn(),
        judged(verdicts=[verdict("relevance", "fail")]),
        labelled(annotator_id="gold-ann", is_gold=True, verdicts=[verdict("relevance", "fail")]),
    )
    assert h.pairs() == []
    labels = [e.value for e in h.topic("observations") if e.value["kind"] == "labelled"]
    assert [(v["annotator_id"], v["first_dimensions"]) for v in labels] == [("gold-ann", [])]
    h.feed(labelled(annotator_id="ann-2", seconds=3700, verdicts=[verdict("relevance", "pass")]))
    assert [(p["human_label"], p["judge_label"]) for p in h.pairs()] == [("pass", "fail")]
    labels = [e.value for e in h.topic("observations") if e.value["kind"] == "labelled"]
    assert [(v["annotator_id"], v["first_dimensions"], v["covered"]) for v in labels] == [
        ("gold-ann", [], []),  # nor does it make the turn a labelled one (coverage)
        ("ann-2", ["relevance"], ["judge-a"]),
    ]
    # a third annotator's label is first on the dimensions no sampled label had yet
    h.feed(
        labelled(
            annotator_id="ann-3",
            seconds=3800,
            verdicts=[verdict("relevance", "fail"), verdict("safety", "pass")],
        )
    )
    labels = [e.value for e in h.topic("observations") if e.value["kind"] == "labelled"]
    assert labels[-1]["first_dimensions"] == ["safety"]
    # a verdict after a gold label only: not a labelled turn either
    h = Harness()
    h.feed(turn(), labelled(annotator_id="gold-ann", is_gold=True), judged())
    assert [e.value["covered"] for e in h.topic("observations") if e.value["kind"] == "judged"] == [False]


def test_a_differing_later_label_from_the_same_judge_is_a_conflict_not_a_duplicate() -> None:
    h = Harness()
    h.feed(turn(), judged(verdicts=[verdict("safety", "fail")], judge_version="v1"))
    h.feed(judged(verdicts=[verdict("safety", "fail")], judge_version="v1"))  # redelivered
    flipped = h.feed(judged(verdicts=[verdict("safety", "pass")], judge_version="v2"))
    assert h.value("convowatch_duplicates_total", stream="judge_verdicts") == 1
    assert h.value("convowatch_label_conflicts_total", stream="judge_verdicts") == 1
    assert flipped == []  # the first label stands: nothing re-published


def _observed(h: Harness, kind: str) -> list[dict[str, Any]]:
    return [e.value for e in h.topic("observations") if e.value["kind"] == kind]


def test_a_judge_sending_a_turns_dimensions_in_several_verdicts_is_observed_on_each() -> None:
    # a judge prompted per dimension sends one verdict per dimension: only the first verdict's dimensions
    # reached the aggregation (spikes, drift, calibration saw one dimension of seven)
    h = Harness()
    h.feed(turn(), judged(verdicts=[verdict("relevance", "pass", confidence=0.9)], scores={"clip": 0.5}))
    h.feed(
        judged(seconds=40, verdicts=[verdict("relevance", "pass"), verdict("bias", "fail", confidence=0.8)])
    )
    h.feed(judged(seconds=50, verdicts=[verdict("bias", "fail")]))  # nothing new: no observation
    h.feed(judged(seconds=60, verdicts=[verdict("bias", "fail")], scores={"clip": 0.1, "artifact": 0.3}))
    judged_obs = _observed(h, "judged")
    assert [(v["labels"], v["conf"], v["scores"], v.get("update", False)) for v in judged_obs] == [
        ({"relevance": "pass"}, {"relevance": 0.9}, {"clip": 0.5}, False),
        ({"bias": "fail"}, {"bias": 0.8}, {}, True),
        ({}, {}, {"artifact": 0.3}, True),  # the first value of a score stands, as of a label
    ]
    # one review-sampling decision per turn, and one more when a later verdict made it a high-risk failure
    # (the bias fail): high-risk turns are always sent for review
    reviewable = _observed(h, "reviewable")
    assert [(v["judges"]["judge-a"]["labels"], v.get("update", False)) for v in reviewable] == [
        ({"relevance": "pass"}, False),
        ({"relevance": "pass", "bias": "fail"}, True),
    ]
    # the same before the turn arrived: its first observation has everything so far
    h = Harness()
    h.feed(
        judged(verdicts=[verdict("relevance", "pass")]),
        judged(seconds=40, verdicts=[verdict("bias", "fail")]),
    )
    h.feed(turn())
    h.feed(judged(seconds=70, verdicts=[verdict("safety", "pass")]))
    assert [v["labels"] for v in _observed(h, "judged")] == [
        {"relevance": "pass", "bias": "fail"},
        {"safety": "pass"},
    ]


def test_an_entry_of_code_before_the_second_review_decision_gets_none() -> None:
    """Its first decision may have been high-risk already (it kept no "vh"): deciding again would request
    the turn twice."""
    h = Harness()
    h.feed(turn(), judged(verdicts=[verdict("safety", "fail")]))
    entry = h.joiner.store.get("t-1")
    assert "vh" in entry["observed"]
    entry["observed"].remove("vh")  # as the code before wrote it
    h.joiner.store.put("t-1", entry, None)
    h.feed(judged(seconds=40, verdicts=[verdict("bias", "fail")]), labelled())
    assert len(_observed(h, "reviewable")) == 1


def test_the_pairs_of_a_turn_judged_high_risk_weigh_one_whatever_probability_the_label_copied() -> None:
    """Review sampling requests every judged high-risk turn (again, with pi 1, after a late failure)."""
    h = Harness()
    h.feed(turn("plain"), judged("plain"), labelled("plain", inclusion_probability=0.2))
    h.feed(turn("late"), judged("late"), judged("late", 40, [verdict("safety", "fail")], judge_id="judge-b"))
    h.feed(labelled("late", inclusion_probability=0.2, verdicts=[verdict("relevance", "pass")]))
    weights = {(p["turn_id"], p["judge_id"]): p["inclusion_probability"] for p in h.pairs()}
    assert weights == {("plain", "judge-a"): 0.2, ("late", "judge-a"): 1.0}


def test_an_annotators_later_label_with_more_dimensions_is_observed_and_counted_once_per_dimension() -> None:
    h = Harness()
    h.feed(turn(), judged())
    h.feed(labelled(annotator_id="ann-1", seconds=3600, verdicts=[verdict("relevance", "pass")]))
    h.feed(labelled(annotator_id="ann-2", seconds=3700, verdicts=[verdict("safety", "fail")]))
    h.feed(
        labelled(
            annotator_id="ann-1",
            seconds=3800,
            verdicts=[verdict("relevance", "pass"), verdict("safety", "pass"), verdict("bias", "pass")],
        )
    )
    h.feed(labelled(annotator_id="ann-1", seconds=3900, verdicts=[verdict("bias", "pass")]))  # nothing new
    rows = [
        (
            v["annotator_id"],
            v["labels"],
            v["first_dimensions"],
            v["label_ts"] - T0.timestamp(),
            v.get("update"),
        )
        for v in _observed(h, "labelled")
    ]
    assert rows == [
        ("ann-1", {"relevance": "pass"}, ["relevance"], 3600, None),
        ("ann-2", {"safety": "fail"}, ["safety"], 3700, None),
        # safety was ann-2's first: a per-turn human figure counts it once
        ("ann-1", {"safety": "pass", "bias": "pass"}, ["bias"], 3800, True),
    ]


def test_an_annotators_labels_before_the_turn_are_observed_at_the_first_labels_time() -> None:
    h = Harness()
    h.feed(labelled(seconds=100), labelled(seconds=5000, verdicts=[verdict("safety", "pass")]))
    h.feed(turn(), labelled(seconds=300, verdicts=[verdict("bias", "pass")]))
    h.feed(labelled(seconds=100, verdicts=[verdict("privacy", "pass")]))  # stamped as the first one
    rows = [(v["labels"], v["label_ts"] - T0.timestamp()) for v in _observed(h, "labelled")]
    assert rows == [
        ({"relevance": "pass", "safety": "pass"}, 100),
        ({"bias": "pass"}, 300),
        ({"privacy": "pass"}, 100),
    ]


def test_an_entry_from_before_the_counts_were_kept_is_not_observed_again() -> None:
    # an entry written by the previous version marks its observed raters without counting their labels:
    # everything it had then was observed, and a redelivered record must not observe it again
    h = Harness()
    h.feed(turn(), judged(), labelled())
    h.joiner.flush()
    entry = h.joiner.store.get("t-1")
    for group in ("judge", "human"):
        for record in entry[group].values():
            del record["n"]
    h.joiner.store.put("t-1", entry, None)
    h.joiner.state.forget()
    before = len(h.topic("observations"))
    h.feed(judged(seconds=40, verdicts=[verdict("bias", "pass")]))
    h.feed(labelled(seconds=3700, verdicts=[verdict("bias", "pass")]))
    assert [e.value["kind"] for e in h.topic("observations")[before:]] == ["pair"]  # the new judge/human pair


def test_a_later_annotators_label_publishes_the_item_again_with_the_version_it_replaces() -> None:
    # an item was published once, at its second label: a third annotator's label was never counted
    h = Harness()
    h.feed(turn(), judged(verdicts=[verdict("safety", "pass")]))
    h.feed(labelled(annotator_id="ann-1", vendor_id="v1", verdicts=[verdict("safety", "pass")]))
    h.feed(labelled(annotator_id="ann-2", vendor_id="v2", seconds=3700, verdicts=[verdict("safety", "fail")]))
    h.feed(judged(seconds=3750, judge_id="judge-b", verdicts=[verdict("safety", "fail")]))  # between versions
    third = [verdict("safety", "fail"), verdict("relevance", "pass")]
    h.feed(labelled(annotator_id="ann-3", vendor_id="v1", seconds=3800, verdicts=third))
    h.feed(labelled(annotator_id="ann-3", vendor_id="v1", seconds=3800, verdicts=third))  # redelivered
    h.feed(labelled(annotator_id="ann-1", seconds=3900, verdicts=[verdict("relevance", "fail")]))
    t0 = T0.timestamp()
    first = {
        "labels": {"ann-1": "pass", "ann-2": "fail"},
        "vendors": {"ann-1": "v1", "ann-2": "v2"},
        "label_ts": t0 + 3700,
        "judges": {"judge-a": "pass"},
    }
    items = [
        {k: v[k] for k in ("dimension", "labels", "vendors", "label_ts", "judges", "replaces") if k in v}
        for v in _observed(h, "raters")
    ]
    judged_again = first | {"judges": {"judge-a": "pass", "judge-b": "fail"}}
    assert items == [
        {"dimension": "safety", **first},
        {"dimension": "safety", **judged_again, "replaces": first},  # judge-b, between the labels
        {
            "dimension": "safety",
            "labels": {"ann-1": "pass", "ann-2": "fail", "ann-3": "fail"},
            "vendors": {"ann-1": "v1", "ann-2": "v2", "ann-3": "v1"},
            "label_ts": t0 + 3800,
            "judges": {"judge-a": "pass", "judge-b": "fail"},
            "replaces": judged_again,
        },
        # relevance: its second label (ann-1's later one) makes a first item, replacing none, at that label
        {
            "dimension": "relevance",
            "labels": {"ann-1": "fail", "ann-3": "pass"},
            "vendors": {"ann-1": "v1", "ann-3": "v1"},
            "label_ts": t0 + 3900,
            "judges": {},
        },
    ]


def test_a_judge_after_the_last_label_publishes_the_item_again_with_it() -> None:
    # the item went out with the judges known at its last label: a later judge was never compared with
    # the consensus
    h = Harness()
    h.feed(turn(), judged(verdicts=[verdict("safety", "pass")]))
    h.feed(labelled(annotator_id="ann-1", verdicts=[verdict("safety", "fail")]))
    h.feed(labelled(annotator_id="ann-2", seconds=3700, verdicts=[verdict("safety", "fail")]))
    h.feed(judged(seconds=3800, judge_id="judge-b", verdicts=[verdict("safety", "fail")]))
    h.feed(judged(seconds=3800, judge_id="judge-b", verdicts=[verdict("safety", "fail")]))  # redelivered
    h.feed(judged(seconds=3900, judge_id="judge-c", verdicts=[verdict("relevance", "pass")]))  # not safety
    items = _observed(h, "raters")
    assert [(v["judges"], v.get("replaces", {}).get("judges")) for v in items] == [
        ({"judge-a": "pass"}, None),
        ({"judge-a": "pass", "judge-b": "fail"}, {"judge-a": "pass"}),
    ]
    assert items[1]["labels"] == items[1]["replaces"]["labels"] == {"ann-1": "fail", "ann-2": "fail"}


def test_an_item_completed_by_an_annotators_later_label_is_timed_at_that_label() -> None:
    # the item is complete at its latest label: a label that came in an annotator's later record was
    # timed at the annotator's first record, so a 24 h window dropped the item as too late (ann-2's safety
    # label, 28 h after its first record) or counted it in an older bucket
    h = Harness()
    h.feed(turn())
    both = [verdict("relevance", "pass"), verdict("safety", "pass")]
    h.feed(labelled(annotator_id="ann-1", seconds=3600, verdicts=both))
    h.feed(labelled(annotator_id="ann-2", seconds=7200, verdicts=[verdict("relevance", "pass")]))
    h.feed(labelled(annotator_id="ann-2", seconds=30 * 3600, verdicts=[verdict("safety", "fail")]))
    h.feed(labelled(annotator_id="ann-3", seconds=32 * 3600, verdicts=[verdict("safety", "pass")]))
    # a judge adds nothing to the annotators' labels: the version it makes keeps their time
    h.feed(judged(seconds=40 * 3600, judge_id="judge-b", verdicts=[verdict("safety", "fail")]))
    t0 = T0.timestamp()
    rows = [
        (
            v["dimension"],
            len(v["labels"]),
            (v["label_ts"] - t0) / 3600,
            (v["replaces"]["label_ts"] - t0) / 3600 if "replaces" in v else None,
        )
        for v in _observed(h, "raters")
    ]
    assert rows == [
        ("relevance", 2, 2, None),
        ("safety", 2, 30, None),
        ("safety", 3, 32, 30),  # the version replaced, at the time it was published
        ("safety", 3, 32, 32),
    ]


def test_an_entry_from_before_label_times_replaces_its_item_at_the_time_it_was_published() -> None:
    # an entry of the previous version has no ``dts``: its item went out at the annotators' first labels'
    # time, and a window takes the version replaced out of the bucket at that time
    h = Harness()
    h.feed(turn())
    both = [verdict("relevance", "pass"), verdict("safety", "pass")]
    h.feed(labelled(annotator_id="ann-1", seconds=3600, verdicts=both))
    h.feed(labelled(annotator_id="ann-2", seconds=7200, verdicts=[verdict("relevance", "pass")]))
    h.feed(labelled(annotator_id="ann-2", seconds=30 * 3600, verdicts=[verdict("safety", "fail")]))
    h.joiner.flush()
    entry = h.joiner.store.get("t-1")
    del entry["human"]["ann-2"]["dts"]  # as the previous version wrote it: published at 2 h
    h.joiner.store.put("t-1", entry, None)
    h.joiner.state.forget()
    h.feed(labelled(annotator_id="ann-3", seconds=32 * 3600, verdicts=[verdict("safety", "pass")]))
    last = _observed(h, "raters")[-1]
    t0 = T0.timestamp()
    assert (last["label_ts"] - t0, last["replaces"]["label_ts"] - t0) == (32 * 3600, 7200)


def test_an_item_counts_its_first_annotators_up_to_the_cap() -> None:
    # a honeypot served to every annotator: each label published all the item's labels again, with the
    # version replaced, the aggregation's cost growing with the cube of the annotators
    from streams.join_observations import MAX_ITEM_RATERS

    h = Harness()
    h.feed(turn())
    for n in range(MAX_ITEM_RATERS + 3):
        h.feed(labelled(annotator_id=f"ann-{n:02d}", seconds=3600 + n, verdicts=[verdict("safety", "pass")]))
    items = _observed(h, "raters")
    assert [len(v["labels"]) for v in items] == list(range(2, MAX_ITEM_RATERS + 1))
    assert sorted(items[-1]["labels"]) == [f"ann-{n:02d}" for n in range(MAX_ITEM_RATERS)]


def test_an_item_at_the_cap_keeps_its_annotators_when_an_earlier_one_labels_its_dimension_later() -> None:
    # the item took the first annotators in the order they came to the turn: one that came first but
    # labelled the dimension later took the place of one the item had, and the version rebuilt for the next
    # judge looked up that annotator's label among the new ones (a KeyError: the worker exited on the
    # record at every restart)
    from streams.join_observations import MAX_ITEM_RATERS

    h = Harness()
    h.feed(turn(), labelled(annotator_id="ann-00", verdicts=[verdict("relevance", "pass")]))
    for n in range(1, MAX_ITEM_RATERS + 1):
        h.feed(labelled(annotator_id=f"ann-{n:02d}", seconds=3600 + n, verdicts=[verdict("safety", "pass")]))
    h.feed(labelled(annotator_id="ann-00", seconds=4000, verdicts=[verdict("safety", "fail")]))
    h.feed(judged(seconds=5000, judge_id="judge-b", verdicts=[verdict("safety", "fail")]))
    last = _observed(h, "raters")[-1]
    assert last["judges"] == {"judge-b": "fail"}
    assert list(last["labels"]) == list(last["replaces"]["labels"]) == [f"ann-{n:02d}" for n in range(1, 11)]


def test_an_entry_that_published_its_item_before_versions_were_kept_publishes_it_once() -> None:
    # an entry of the previous version marks the dimension observed without its annotators: its item's
    # labels then are unknown, so a later annotator's label cannot replace it (nor count it twice)
    h = Harness()
    h.feed(turn(), labelled(annotator_id="ann-1"), labelled(annotator_id="ann-2", seconds=3700))
    h.joiner.flush()
    entry = h.joiner.store.get("t-1")
    del entry["rt"]
    h.joiner.store.put("t-1", entry, None)
    h.joiner.state.forget()
    h.feed(labelled(annotator_id="ann-3", seconds=3800))
    assert [len(v["labels"]) for v in _observed(h, "raters")] == [2]


def test_labels_that_never_meet_their_turn_are_counted_when_evicted() -> None:
    # a label after its turn was evicted (or for a turn never sent) was lost to agreement and calibration
    # without a trace in any metric
    h = Harness(ttl_seconds=3600, evict_every=1)
    h.feed(turn(turn_id="kept", seconds=0), judged(turn_id="kept", seconds=5))
    h.feed(labelled(turn_id="gone", seconds=10), judged(turn_id="gone", seconds=20))
    h.feed(turn(turn_id="later", seconds=3 * 3600))  # moves event time past the TTL of both
    assert h.value("convowatch_join_unmatched_total", stream="human_labels") == 1
    assert h.value("convowatch_join_unmatched_total", stream="judge_verdicts") == 1


def test_a_turn_keeps_one_changelog_partition_whatever_partition_its_later_records_came_from() -> None:
    # a mis-keyed verdict (read from another partition) wrote the entry to that partition's changelog too,
    # and its deletion went to the first one only: the copy came back at every recovery
    from streams.state import DictStore

    writes: list[tuple[str, str, int | None]] = []

    class Recording(DictStore):
        def put(self, key: str, value: Any, partition: int | None) -> None:
            writes.append(("put", key, partition))
            super().put(key, value, partition)

        def delete(self, key: str, partition: int | None) -> None:
            writes.append(("delete", key, partition))
            super().delete(key, partition)

    joiner = TurnJoiner(
        TAXONOMY, Metrics(CollectorRegistry()), store=Recording(), ttl_seconds=3600, evict_every=1
    )
    joiner.handle(ChatTurn.model_validate(chat_turn(turn_id="t1")), partition=0)
    joiner.handle(JudgeVerdict.model_validate(judge_verdict(turn_id="t1")), partition=1)  # mis-keyed
    later = chat_turn(turn_id="t2", ts="2026-11-02T12:00:00Z")  # hours later: t1 leaves by its TTL
    joiner.handle(ChatTurn.model_validate(later), partition=0)
    assert [w for w in writes if w[1] == "t1"] == [("put", "t1", 0), ("put", "t1", 0), ("delete", "t1", 0)]


def test_pending_turns_give_the_garbage_collector_nothing_to_scan() -> None:
    # held as dicts and lists, a pending turn was about nine containers the collector scans: with a million
    # of them (the default cap) one collection stopped the worker for seconds (bench/gc_pauses.py)
    import gc

    joiner = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()))

    def hold(first: int, count: int) -> None:
        for i in range(first, first + count):
            joiner.handle(turn(turn_id=f"t-{i}", seconds=i))
            joiner.handle(judged(turn_id=f"t-{i}", seconds=i + 1, verdicts=[verdict("safety", "fail")]))

    hold(0, 500)  # label children, caches
    gc.collect()
    before = len(gc.get_objects())
    hold(500, 2_000)
    gc.collect()
    assert len(joiner.state) == 2_500
    assert (len(gc.get_objects()) - before) / 2_000 < 0.5


def test_a_turn_touched_again_within_its_expiry_bucket_expires_by_its_latest_event() -> None:
    # the expiry index keeps each turn's last event time; a later event in the same bucket must move it
    h = Harness(ttl_seconds=3600, evict_every=1)  # buckets of 56.25 s
    h.feed(turn(turn_id="a", seconds=0), judged(turn_id="a", seconds=30))
    h.feed(turn(turn_id="z", seconds=3600 + 10))  # horizon 10 s: between the turn's two events
    assert h.holds("a")
    h.feed(turn(turn_id="y", seconds=3600 + 31))  # horizon 31 s: past both
    assert not h.holds("a")
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 1


def test_an_expiry_index_older_than_the_entry_evicts_nothing_and_is_rebuilt() -> None:
    # an event that failed midway (dead-lettered as internal_error) can leave the index ahead of or behind
    # the entry, whose copy was dropped: the entry's own time decides, and the index is rebuilt from it
    h = Harness(ttl_seconds=3600, evict_every=10**9)
    h.feed(turn(turn_id="a", seconds=1000), turn(turn_id="z", seconds=3600 + 500))
    t0 = T0.timestamp()
    h.joiner.expiry.rebuild([("a", t0), ("z", t0 + 3600 + 500)])  # says "a" was last seen at 0 s
    h.joiner.evict()  # horizon 500 s
    assert h.holds("a") and h.joiner.expiry.holds("a", t0 + 1000)  # kept, and indexed at its own time again
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 0


def test_an_event_failing_midway_leaves_the_turn_expiring_by_its_stored_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the failed event is dead-lettered and its changes to the entry are not kept: the expiry index must not
    # keep its later time either, or the turn outlived its TTL
    h = Harness(ttl_seconds=3600, evict_every=10**9)
    h.feed(turn(turn_id="a", seconds=0))

    def fail(*_: Any) -> list[Emit]:
        raise RuntimeError("a bug in an output")

    with monkeypatch.context() as patch:
        patch.setattr(h.joiner.outputs, "outputs", fail)
        with pytest.raises(RuntimeError):
            h.feed(judged(turn_id="a", seconds=3000, verdicts=[verdict("safety", "fail")]))
    h.feed(turn(turn_id="z", seconds=3600 + 500))
    h.joiner.evict()  # horizon 500 s: the turn's stored last event is at 0 s
    assert not h.holds("a")
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 1


def test_the_first_human_label_of_a_dimension_is_the_first_to_come_whoever_labelled_before() -> None:
    """Annotator A labels relevance, B then fails safety, A passes safety later: B's is the turn's first
    safety label, for every judge paired before A's label or after it (A came first to the turn)."""
    h = Harness()
    h.feed(
        turn(),
        labelled(seconds=100, annotator_id="A", verdicts=[verdict("relevance", "pass")]),
        labelled(seconds=200, annotator_id="B", verdicts=[verdict("safety", "fail")]),
        judged(seconds=300, judge_id="j1", verdicts=[verdict("safety", "pass")]),
        labelled(seconds=400, annotator_id="A", verdicts=[verdict("safety", "pass")]),
        judged(seconds=500, judge_id="j2", verdicts=[verdict("safety", "pass")]),
    )
    safety = {p["judge_id"]: p["human_label"] for p in h.pairs() if p["dimension"] == "safety"}
    assert safety == {"j1": "fail", "j2": "fail"}
    assert sorted(e.key for e in h.topic("divergences")) == ["t-1/j1/safety", "t-1/j2/safety"]


def test_a_defect_published_under_its_unescaped_id_before_the_upgrade_is_not_published_again() -> None:
    h = Harness()
    h.feed(turn("order/42"), judged("order/42", verdicts=[verdict("relevance", "fail")]))
    (first,) = h.topic("defects")
    assert first.key == "irrelevant/order%2F42/relevance/judge/judge-a"
    # the entry as code before the escaping left it: the defect marked under its unescaped id
    entry = h.joiner.state.get("order/42")
    entry["defects"] = ["irrelevant/order/42/relevance/judge/judge-a"]
    h.joiner.state.replace("order/42", entry)
    h.emits.clear()
    h.feed(labelled("order/42", verdicts=[verdict("safety", "pass")]))
    assert h.topic("defects") == []
