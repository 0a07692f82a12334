"""Turns sent for human review outlive the join's size cap, so labels that come hours later meet them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.config import Settings
from streams.join import TurnJoiner
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore
from streams.taxonomy import SEVERITIES
from tests.factories import chat_turn, human_label, judge_verdict, verdict
from tests.streams.test_join import TAXONOMY, Harness, at, judged, labelled, turn


def fill(h: Harness, start: int, count: int) -> None:
    """``count`` judged turns after ``start`` seconds: traffic that pushes older turns past the cap."""
    for i in range(count):
        h.feed(
            turn(turn_id=f"filler-{start + i}", seconds=start + i), judged(f"filler-{start + i}", start + i)
        )


def test_a_turn_kept_for_review_survives_the_cap_and_its_late_label_meets_the_judge():
    h = Harness(max_entries=20)
    h.feed(turn("sent", 0), judged("sent", 1), turn("not-sent", 0), judged("not-sent", 1))
    assert h.joiner.keep_for_review("sent")
    fill(h, 10, 200)
    assert h.holds("sent")
    assert not h.holds("not-sent")
    assert len(h.joiner.store) <= 20
    h.feed(labelled("sent", 3600), labelled("not-sent", 3600))
    assert [p["turn_id"] for p in h.pairs()] == ["sent"]
    assert h.value("convowatch_join_review_keeps_total", result="kept") == 1
    assert h.value("convowatch_join_kept_for_review_turns") == 1


def test_a_request_for_an_evicted_turn_is_counted_as_gone():
    h = Harness(max_entries=20)
    h.feed(turn("early", 0), judged("early", 1))
    fill(h, 10, 100)
    assert not h.joiner.keep_for_review("early")
    assert not h.holds("early")
    assert h.value("convowatch_join_review_keeps_total", result="gone") == 1
    assert h.value("convowatch_join_kept_for_review_turns") == 0


def test_the_ttl_still_applies_to_turns_kept_for_review():
    h = Harness(ttl_seconds=3600, evict_every=1)
    h.feed(turn("sent", 0), judged("sent", 1))
    h.joiner.keep_for_review("sent")
    h.feed(turn("much-later", 7200))
    assert not h.holds("sent")
    assert h.value("convowatch_join_evictions_total", reason="ttl") == 1
    assert h.value("convowatch_join_kept_for_review_turns") == 0


def test_beyond_half_of_the_cap_the_newest_half_cap_of_kept_turns_stay():
    h = Harness(max_entries=20)
    for i in range(15):
        h.feed(turn(f"sent-{i:02d}", i), judged(f"sent-{i:02d}", i))
        h.joiner.keep_for_review(f"sent-{i:02d}")
    fill(h, 100, 100)
    assert len(h.joiner.store) <= 20  # the cap holds whatever is kept
    held = [i for i in range(15) if h.holds(f"sent-{i:02d}")]
    assert held == list(range(5, 15))  # the newest half-cap of them
    assert h.value("convowatch_join_kept_for_review_turns") == len(held)


def test_a_request_for_a_turn_held_only_by_its_later_label_is_gone():
    """The turn was evicted, then its label made an entry of its own: nothing there for the label to meet."""
    h = Harness(max_entries=20)
    h.feed(labelled("orphan", 10))
    assert not h.joiner.keep_for_review("orphan")
    assert h.value("convowatch_join_review_keeps_total", result="gone") == 1
    fill(h, 20, 100)
    assert not h.holds("orphan")


def test_a_rater_named_keep_does_not_mark_a_turn():
    """A judge, annotator or dimension called "keep" puts ``"keep":`` in the entry's JSON too."""
    h = Harness(max_entries=20)
    h.feed(turn("x", 0), judged("x", 1, judge_id="keep"), labelled("x", 2, annotator_id="keep"))
    h.joiner.rebalanced()
    fill(h, 10, 100)
    assert h.joiner.kept_for_review == set()
    assert not h.holds("x")


def test_after_a_rebalance_dropped_their_partitions_kept_turns_are_forgotten():
    h = Harness()
    for turn_id in ("stays", "moves"):
        h.feed(turn(turn_id, 0), judged(turn_id, 1))
        h.joiner.keep_for_review(turn_id)
    h.joiner.store.delete("moves", None)  # as TableStore.drop_unowned does
    h.joiner.forget_unheld()
    assert h.joiner.kept_for_review == {"stays"}
    assert h.value("convowatch_join_kept_for_review_turns") == 1


def test_a_second_request_for_the_same_turn_changes_nothing():
    h = Harness()
    h.feed(turn("sent", 0), judged("sent", 1))
    h.joiner.keep_for_review("sent")
    before = h.joiner.store.data["sent"]
    h.joiner.keep_for_review("sent")
    assert h.joiner.store.data["sent"] == before
    assert h.value("convowatch_join_kept_for_review_turns") == 1


@pytest.mark.parametrize("json_values", [True, False])
def test_a_recovered_store_still_knows_which_turns_are_kept(json_values: bool):
    """A restarted worker recovers the mark with the entry (the changelog), and the cap spares it again."""
    store = DictStore(json_values=json_values)
    first = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()), store, max_entries=20)
    first.handle(turn("sent", 0))
    first.handle(judged("sent", 1))
    first.keep_for_review("sent")
    recovered = DictStore(json_values=json_values)
    for key, value in store.items():
        recovered.put(key, orjson.loads(orjson.dumps(value)), None)
    h = Harness(store=recovered, max_entries=20)
    h.joiner.rebalanced()
    fill(h, 10, 100)
    assert h.holds("sent")
    assert h.joiner.kept_for_review == {"sent"}


def test_a_text_that_mentions_keep_does_not_mark_a_turn():
    store = DictStore(json_values=True)
    h = Harness(store=store, max_entries=20, text_redaction="keep")
    h.feed(turn("chatty", 0, user_text='say "keep": 1 please'), judged("chatty", 1))
    h.joiner.rebalanced()
    fill(h, 10, 100)
    assert not h.holds("chatty")


# -- the pipeline: embedded, the review view's requests reach the join in process; on Kafka, as records ------


def _records(turn_id: str, seconds: float, fails: bool) -> list[tuple[Stream, bytes]]:
    label = "fail" if fails else "pass"
    return [
        (Stream.CHAT_TURNS, orjson.dumps(chat_turn(turn_id=turn_id, ts=at(seconds)))),
        (
            Stream.JUDGE_VERDICTS,
            orjson.dumps(
                judge_verdict(turn_id=turn_id, ts=at(seconds + 1), verdicts=[verdict("safety", label)])
            ),
        ),
    ]


def _label(turn_id: str, seconds: float) -> tuple[Stream, bytes]:
    record = human_label(turn_id=turn_id, ts=at(seconds), verdicts=[verdict("safety", "fail")])
    return Stream.HUMAN_LABELS, orjson.dumps(record)


def _process(pipeline: Pipeline, records: list[tuple[Stream, bytes]]) -> list[Any]:
    out = []
    for offset, (stream, raw) in enumerate(records):
        out.extend(pipeline.process(stream, raw, source_topic=stream.value, offset=offset))
    return out


def test_embedded_a_turn_sent_for_review_meets_its_label_after_the_cap_turned_over():
    settings = Settings(join_max_entries=50, review_budget_per_hour=1, review_min_probability=0.001)
    pipeline = Pipeline(settings, Metrics(CollectorRegistry()))
    records = _records("unsafe", 0, fails=True)  # a high-risk failure: always sent for review
    for i in range(400):
        records += _records(f"fine-{i}", 10 + i, fails=False)
    out = _process(pipeline, records)
    requested = {e.value["turn_id"] for e in out if e.topic == "review_requests"}
    assert "unsafe" in requested
    assert not [e for e in out if e.topic == "review_keep"]  # routed to the join, not published
    assert pipeline.joiner.state.get("unsafe") is not None
    assert pipeline.joiner.state.get("fine-0") is None
    late = _process(pipeline, [_label("unsafe", 86_400)])
    defects = [e.value for e in late if e.topic == "defects" and e.value["source"] == "human"]
    assert [d["segment"]["journey"] for d in defects] == ["billing"]  # the turn's segment: they met


def test_a_review_keep_record_that_is_not_one_is_dead_lettered():
    pipeline = Pipeline(Settings(), Metrics(CollectorRegistry()))
    for raw in (b"{not json", b"[]", b'{"turn_id": 7}', b'{"turn_id": ""}'):
        (dead,) = pipeline.keep_for_review(raw, source_topic="keep", partition=0, offset=3)
        assert dead.topic == "deadletter"
        assert dead.value["stream"] == "review_keep"
        assert dead.value["reason"] in ("invalid_json", "validation_error")
    assert pipeline.keep_for_review(b'{"turn_id": "nowhere"}', source_topic="keep", partition=0) == []
    assert (
        pipeline.metrics.registry.get_sample_value("convowatch_join_review_keeps_total", {"result": "gone"})
        == 1
    )


@pytest.mark.parametrize("later", ["judge", "human"])
def test_an_escalated_turn_outlives_the_cap_so_a_later_record_updates_its_escalation(later: str) -> None:
    """Evicted, a high-risk turn's escalation state went with it: a later failing record started the
    escalation again at revision 1, with only its own trigger and an unknown segment (Alertmanager's sink
    refuses an older revision, and the topic's key ended on stale content)."""
    h = Harness(max_entries=20, evict_every=1)
    h.feed(turn("risky", 0, risk_topics=["earnings"]), judged("risky", 1, [verdict("relevance", "fail")]))
    h.feed(judged("risky", 2, [verdict("bias", "fail")], judge_id="judge-b"))
    fill(h, 10, 200)
    assert h.holds("risky")
    assert h.joiner.kept_for_review == {"risky"}
    record = (
        judged("risky", 3600, [verdict("safety", "fail")], judge_id="judge-c")
        if later == "judge"
        else labelled("risky", 3600, [verdict("safety", "fail")])
    )
    h.feed(record)
    escalations = [e.value for e in h.topic("escalations")]
    assert [e["revision"] for e in escalations] == [1, 2, 3]
    assert len({e["escalation_id"] for e in escalations}) == 1
    newest = escalations[-1]
    assert len(newest["evidence"]["triggers"]) == 3
    assert newest["segment"]["journey"] is not None
    assert newest["evidence"]["risk_topics"] == ["earnings"]
    counted = [
        h.value("convowatch_escalations_total", kind="high_risk_failure", severity=s) for s in SEVERITIES
    ]
    assert sum(counted) == 1  # one escalation, counted at its first revision


def test_an_escalated_entry_without_its_turn_is_not_kept_so_the_cap_publishes_its_defects() -> None:
    h = Harness(max_entries=20, evict_every=1)
    h.feed(labelled("orphan", 0, [verdict("safety", "fail")]))  # its turn was evicted, or never sent
    assert [e.value["revision"] for e in h.topic("escalations")] == [1]
    fill(h, 10, 200)
    assert not h.holds("orphan")
    assert [e.value["turn_id"] for e in h.topic("defects")] == ["orphan"]
    assert h.value("convowatch_join_unmatched_total", stream="human_labels") == 1


def test_a_turn_without_a_high_risk_failure_is_not_kept() -> None:
    h = Harness(max_entries=20, evict_every=1)
    h.feed(turn("plain", 0), judged("plain", 1, [verdict("relevance", "fail")]))
    fill(h, 10, 200)
    assert not h.holds("plain")
    assert h.joiner.kept_for_review == set()


@pytest.mark.parametrize("json_values", [True, False], ids=["json-values", "live-values"])
def test_open_escalations_are_the_latest_revisions_of_recent_escalated_entries(json_values: bool) -> None:
    """What a restarted worker's Alertmanager sink is given: each escalated turn's latest revision, if its
    last event is within the sink's expiry of the newest event; nothing for the other turns."""
    joiner = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()), DictStore(json_values=json_values))
    published = {}
    events = [
        turn("old", 0),
        judged("old", 1, [verdict("safety", "fail")]),
        turn("recent", 7_000),
        judged("recent", 7_001, [verdict("safety", "fail")]),
        judged("recent", 7_002, [verdict("bias", "fail")], judge_id="judge-b"),
        turn("fine", 7_200),
        judged("fine", 7_201, [verdict("relevance", "fail")]),
    ]
    for event in events:
        for emit in joiner.handle(event, 0):
            if emit.topic == "escalations":
                published[emit.value["turn_ids"][0]] = emit.value
    assert sorted(published) == ["old", "recent"]
    resent = {turn_id: value for turn_id, _, value in joiner.open_escalations(3_600)}
    assert resent == {"recent": published["recent"]}
    assert resent["recent"]["revision"] == 2
    everything = {turn_id for turn_id, _, _ in joiner.open_escalations(10_000)}
    assert everything == {"old", "recent"}
