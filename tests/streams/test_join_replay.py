"""A crash between the join's state and its outputs: the replay publishes what the first run would have.

The Kafka transport writes the join's state before the batch's outputs (streams/join_agent.py). These tests
play that crash on the pure joiner: state flushed to a store, outputs never published, a new joiner
recovering the store's JSON (as from the changelog) and re-reading the records in another interleaving of
the three input topics.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.join import Emit, TurnJoiner
from streams.metrics import Metrics
from streams.state import DictStore
from streams.taxonomy import load_taxonomy
from tests.factories import verdict
from tests.streams.test_join import judged, labelled, turn

TAXONOMY = load_taxonomy()
Record = tuple[str, int, Any]  # (source: input topic/partition, offset, event)


@pytest.fixture(autouse=True, params=[True, False], ids=["json-values", "live-values"])
def store_values(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test twice: stores holding JSON bytes (what the join keeps, on Kafka and embedded) and live
    objects. ``DictStore()`` in these tests, and in their store subclasses, takes the parameter."""
    monkeypatch.setattr(DictStore.__init__, "__defaults__", (request.param,))
    return bool(request.param)


def joiner(store: DictStore) -> TurnJoiner:
    return TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()), store, autoflush=False, keep_outputs=True)


def records(turns: int = 12) -> dict[str, list[Record]]:
    """Per input source, its records in offset order: turns, verdicts (some failing) and labels."""
    by_source: dict[str, list[Record]] = {"turns:0": [], "verdicts:0": [], "labels:0": []}
    for i in range(turns):
        turn_id = f"t-{i}"
        label = "fail" if i % 3 == 0 else "pass"
        events = {
            "turns:0": turn(turn_id, seconds=i, risk_topics=["earnings"] if i % 4 == 0 else []),
            "verdicts:0": judged(turn_id, seconds=i + 1, verdicts=[verdict("relevance", label)]),
            "labels:0": labelled(turn_id, seconds=i + 2, verdicts=[verdict("relevance", "pass")]),
        }
        for source, event in events.items():
            by_source[source].append((source, 100 + len(by_source[source]), event))
    return by_source


def interleaving(by_source: dict[str, list[Record]], seed: int) -> list[Record]:
    """The records in a random order that keeps each source's offset order (as a consumer reads them)."""
    rng = random.Random(seed)
    queues = {source: list(recs) for source, recs in by_source.items()}
    order = []
    while queues:
        source = rng.choice(sorted(queues))
        order.append(queues[source].pop(0))
        if not queues[source]:
            del queues[source]
    return order


def read(j: TurnJoiner, order: list[Record]) -> list[Emit]:
    emits = []
    for source, offset, event in order:
        emits.extend(j.handle(event, 0, (source, offset)))
    return emits


def recovered(store: DictStore) -> DictStore:
    """The store as a restarted worker recovers it: every value through JSON, as in the changelog."""
    copy = DictStore()
    for key, value in store.items():
        copy.put(key, orjson.loads(orjson.dumps(value)), 0)
    return copy


def canonical(emits: list[Emit]) -> list[bytes]:
    return sorted(orjson.dumps([e.topic, e.key, e.value], option=orjson.OPT_SORT_KEYS) for e in emits)


def newest(emits: list[Emit]) -> dict[str, dict[str, Any]]:
    """Each escalation's last record, as a consumer of the topic keeps it."""
    return {e.key: e.value for e in emits if e.topic == "escalations"}


def test_a_replay_in_another_interleaving_publishes_the_outputs_the_crash_lost_unchanged():
    by_source = records()
    for seed in range(8):
        store = DictStore()
        first = joiner(store)
        lost = read(first, interleaving(by_source, seed))
        first.flush()  # the state reached the changelog; the outputs never did
        assert any(e.value.get("kind") == "pair" for e in lost)
        replay = read(joiner(recovered(store)), interleaving(by_source, seed + 100))
        others = [e for e in lost if e.topic != "escalations"]
        assert canonical([e for e in replay if e.topic != "escalations"]) == canonical(others)
        assert newest(replay) == newest(lost)


def test_a_replay_publishes_the_same_raters_items_and_replacements():
    """A turn's item published again with each later annotator's label: after the crash, the replay
    publishes the same items, each replacing the same version, at the same source positions."""
    by_source = records(6)
    for i in range(6):
        for k, annotator in enumerate(("ann-2", "ann-3")):
            label = labelled(
                f"t-{i}", seconds=i + 3 + k, annotator_id=annotator, verdicts=[verdict("relevance", "fail")]
            )
            by_source["labels:0"].append(("labels:0", 100 + len(by_source["labels:0"]), label))
    for seed in range(4):
        store = DictStore()
        first = joiner(store)
        lost = read(first, interleaving(by_source, seed))
        first.flush()
        assert any("replaces" in e.value for e in lost if e.value.get("kind") == "raters")
        replay = read(joiner(recovered(store)), interleaving(by_source, seed + 100))
        assert canonical([e for e in replay if e.topic != "escalations"]) == canonical(
            [e for e in lost if e.topic != "escalations"]
        )


def test_a_replay_ends_each_escalation_on_its_newest_revision():
    """A judge's and a human's safety failure make two revisions of one escalation; a replay reading the
    label first must not end the topic on the judge's older revision."""
    events = [
        ("turns:0", 7, turn("t-1")),
        ("verdicts:0", 8, judged("t-1", verdicts=[verdict("safety", "fail")])),
        ("labels:0", 9, labelled("t-1", verdicts=[verdict("safety", "fail"), verdict("bias", "fail")])),
    ]
    store = DictStore()
    first = joiner(store)
    lost = read(first, events)
    first.flush()
    revisions = [e.value["revision"] for e in lost if e.topic == "escalations"]
    assert len(revisions) >= 2 and revisions == sorted(revisions)
    replay = read(joiner(recovered(store)), [events[2], events[0], events[1]])
    assert [e.key for e in replay if e.topic == "escalations"]
    assert newest(replay) == newest(lost)


def test_without_kept_outputs_the_replay_would_give_observations_other_source_positions():
    """The failure the kept outputs prevent: recomputed from the old state in another order, some
    observation needing two records gets the other record's position."""
    by_source = records()
    moved = 0
    for seed in range(8):
        first = read(joiner(DictStore()), interleaving(by_source, seed))
        again = read(joiner(DictStore()), interleaving(by_source, seed + 100))
        moved += canonical(first) != canonical(again)
    assert moved > 0


def test_published_drops_the_kept_outputs_of_records_read():
    by_source = records(3)
    store = DictStore()
    j = joiner(store)
    read(j, interleaving(by_source, 0))
    j.flush()
    assert any("out" in entry for _, entry in store.items())
    j.published()
    assert not any("out" in entry for _, entry in store.items())
    # a record read again now publishes nothing: its outputs are out, and its state has it
    source, offset, event = by_source["verdicts:0"][0]
    assert j.handle(event, 0, (source, offset)) == []


def test_recovered_outputs_stay_until_their_record_is_read_again():
    by_source = records(3)
    store = DictStore()
    first = joiner(store)
    read(first, by_source["turns:0"] + by_source["verdicts:0"] + by_source["labels:0"])
    first.flush()
    second = joiner(recovered(store))
    # only the turns are read again before the batch completes: the verdicts' and labels' outputs stay
    turns_out = read(second, by_source["turns:0"])
    second.flush()
    second.published()
    kept = [item for _, entry in second.store.items() for item in entry.get("out", [])]
    assert kept and {source for source, _, _ in kept} <= {"verdicts:0", "labels:0"}
    rest = read(second, by_source["verdicts:0"] + by_source["labels:0"])
    assert canonical(turns_out + rest) == canonical(
        read(joiner(recovered(store)), interleaving(by_source, 2))
    )
    second.published()
    assert not any("out" in entry for _, entry in second.state.items())  # as the batch sees them
    second.flush()
    assert not any("out" in entry for _, entry in second.store.items())


def test_records_without_a_position_keep_nothing():
    store = DictStore()
    j = joiner(store)
    emits = j.handle(turn("t-1"), 0, ("turns", None)) + j.handle(judged("t-1"), 0, ("verdicts", None))
    assert emits
    j.flush()
    assert not any("out" in entry for _, entry in store.items())


def test_a_replay_never_publishes_an_escalation_revision_older_than_the_turns():
    """The verdict's revision was published; the turn's newer one was lost with its batch's state. On the
    replay the turn comes first and makes the newer revision again; the verdict, read after it, must not
    publish its older one again (that would leave the escalation without its segment)."""
    verdict_record = ("verdicts:0", 8, judged("t-1", verdicts=[verdict("safety", "fail")]))
    turn_record = ("turns:0", 7, turn("t-1"))
    store = DictStore()
    first = joiner(store)
    published = read(first, [verdict_record])
    first.flush()
    changelog = recovered(store)  # the second batch's state never reached it
    first.published()
    published += read(first, [turn_record])
    assert [e.value["revision"] for e in published if e.topic == "escalations"] == [1, 2]

    replay = joiner(changelog)
    again = read(replay, [turn_record])
    replay.flush()
    replay.published()
    again += read(replay, [verdict_record])
    assert [e.value["revision"] for e in again if e.topic == "escalations"] == [2]
    assert newest(again) == newest(published)


def test_kept_defects_hold_no_second_copy_of_the_chat_text_yet_replay_with_it():
    text = "my payout is wrong " * 400  # kept in full by text_redaction="keep"
    store = DictStore()
    j = keeping_text(store)
    events = [
        ("turns:0", 1, turn("t-1", user_text=text)),
        ("verdicts:0", 2, judged("t-1", verdicts=[verdict("relevance", "fail"), verdict("safety", "fail")])),
    ]
    lost = read(j, events)
    j.flush()
    defects = [e for e in lost if e.topic.startswith("defects")]
    assert len(defects) == 4 and all(e.value["turn"]["user_text"] == text for e in defects)
    assert orjson.dumps(store.get("t-1")).count(text.encode()) == 1  # the turn's own context only
    again = [e for e in read(keeping_text(recovered(store)), events) if e.topic.startswith("defects")]
    assert canonical(again) == canonical(defects)


def keeping_text(store: DictStore) -> TurnJoiner:
    return TurnJoiner(
        TAXONOMY,
        Metrics(CollectorRegistry()),
        store,
        autoflush=False,
        keep_outputs=True,
        text_redaction="keep",
    )


class Changelog(DictStore):
    """A store that also keeps what each write sent to the changelog (JSON), which a restart recovers."""

    def __init__(self) -> None:
        super().__init__()
        self.changelog: dict[str, Any] = {}

    def put(self, key: str, value: Any, partition: int | None) -> None:
        super().put(key, value, partition)
        self.changelog[key] = orjson.loads(orjson.dumps(value))

    def delete(self, key: str, partition: int | None) -> None:
        super().delete(key, partition)
        self.changelog.pop(key, None)

    def recover(self) -> DictStore:
        store = DictStore()
        for key, value in self.changelog.items():
            store.put(key, orjson.loads(orjson.dumps(value)), 0)
        return store


def test_published_marks_are_the_newest_offsets_whose_outputs_were_acknowledged():
    by_source = records(6)
    j = joiner(DictStore())
    order = interleaving(by_source, 1)
    read(j, order[:9])
    j.flush()
    assert j.published_marks() == {}  # nothing acknowledged yet
    j.published()
    expected = {
        source: max(o for s, o, _ in order[:9] if s == source) for source in {s for s, _, _ in order[:9]}
    }
    assert j.published_marks() == expected
    assert j.published_marks() == {}  # each advance is handed over once
    j.published()  # nothing new read
    assert j.published_marks() == {}


def test_a_replay_publishes_again_only_what_came_after_the_published_marks():
    """Batch 1 is published and its marks written; batch 2's state is written, its outputs are lost. Entries
    of batch 1 that batch 2 did not touch still keep their outputs in the changelog: without the marks the
    replay (from offsets never committed) publishes them a second time."""
    by_source = records()
    for seed in range(6):
        order = interleaving(by_source, seed)
        store = Changelog()
        first = joiner(store)
        batch1 = read(first, order[:18])
        first.flush()
        first.published()
        marks = first.published_marks()
        batch2 = read(first, order[18:])
        first.flush()  # the crash: batch 2's outputs never reach the broker

        replay = joiner(store.recover())
        replay.rebalanced(marks)
        again = read(replay, interleaving(by_source, seed + 100))
        lost = [e for e in batch2 if e.topic != "escalations"]
        assert canonical([e for e in again if e.topic != "escalations"]) == canonical(lost)
        assert newest(batch1 + again) == newest(batch1 + batch2)

        unmarked = joiner(store.recover())
        unmarked.rebalanced()
        twice = read(unmarked, interleaving(by_source, seed + 100))
        assert len(canonical(twice)) > len(canonical(again))  # batch 1's outputs, published again


def test_recovered_outputs_before_the_marks_are_dropped_at_the_rebalance():
    by_source = records()
    order = interleaving(by_source, 3)
    store = Changelog()
    first = joiner(store)
    read(first, order[:18])
    first.flush()
    first.published()
    marks = first.published_marks()
    read(first, order[18:])
    first.flush()  # the crash: batch 2's kept outputs are all that was not published

    def kept(j: TurnJoiner) -> list[tuple[str, int]]:
        return sorted((s, o) for _, entry in j.store.items() for s, o, _ in entry.get("out", []))

    replay = joiner(store.recover())
    assert any(o <= marks.get(s, -1) for s, o in kept(replay))  # batch 1's, left in the changelog
    replay.rebalanced(marks)
    assert kept(replay) and all(o > marks.get(s, -1) for s, o in kept(replay))


def test_records_before_the_marks_publish_nothing_when_read_again():
    by_source = records(3)
    store = Changelog()
    first = joiner(store)
    order = interleaving(by_source, 0)
    read(first, order)
    first.flush()
    first.published()
    marks = first.published_marks()
    replay = joiner(store.recover())
    replay.rebalanced(marks)
    assert read(replay, order) == []
    replay.published()
    assert not any("out" in entry for _, entry in replay.store.items())


def test_entries_recovered_at_a_rebalance_expire_even_when_as_many_left_as_arrived() -> None:
    # partition 0's three entries move away and partition 1's three are recovered: the counts match, so
    # only the rebalance itself says the expiry index is stale
    store = DictStore()
    j = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()), store, ttl_seconds=3600, evict_every=10**9)
    for i in range(3):
        j.handle(turn(turn_id=f"a{i}", seconds=i), partition=0)
    j.evict()  # indexes a0..a2
    for i in range(3):
        value = store.get(f"a{i}")
        del store.data[f"a{i}"]
        store.put(f"b{i}", {**value, "p": 1}, 1)
    j.state.forget()
    j.rebalanced({})
    j.handle(turn(turn_id="late", seconds=10 * 86400), partition=1)
    j.evict()
    assert [key for key, _ in store.items()] == ["late"]
