"""A crash after an eviction's outputs were acknowledged, before its tombstone: a replay counts nothing twice.

On Kafka the join writes a batch's state, then its outputs, then (once the broker has the outputs) the
tombstones of the entries it evicted (streams/app.py, ``TableStore(defer_deletes=True)``). These tests play a
SIGKILL between the outputs and the tombstones on the pure joiner: a store whose changelog takes writes at
once and deletions only when told, a published-marks table, and an aggregator fed the observations as the
aggregation stage is (positioned by their pack when they have no source position), which keeps every
aggregate's applied source positions as on Kafka. The count of judge/human pairs must come out once.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams import join
from streams.aggregate import Aggregator
from streams.aggregate import key as aggregate_key
from streams.join import TurnJoiner
from streams.kept_outputs import set_aside_key
from streams.metrics import Metrics
from streams.observation_packs import positioned
from streams.state import DictStore, WriteBehind
from streams.taxonomy import load_taxonomy
from streams.views.agreement import AgreementView
from tests.factories import verdict
from tests.streams.test_join import judged, labelled, turn

TAXONOMY = load_taxonomy()
HOUR = 3600
Record = tuple[str, int, Any]  # (source: input topic/partition, offset, event)


class DeferredChangelog(DictStore):
    """The join's ``pending`` table on Kafka: a write reaches the changelog with the batch's state, a deletion
    only when :meth:`send_tombstones` is called (after the batch's outputs are acknowledged)."""

    def __init__(self) -> None:
        super().__init__(json_values=True)
        self.changelog: dict[str, bytes] = {}
        self.tombstones: list[str] = []

    def put(self, key: str, value: Any, partition: int | None) -> None:
        super().put(key, value, partition)
        self.changelog[key] = orjson.dumps(value)

    def delete(self, key: str, partition: int | None) -> None:
        super().delete(key, partition)
        self.tombstones.append(key)

    def send_tombstones(self) -> None:
        for key in self.tombstones:
            self.changelog.pop(key, None)
        self.tombstones.clear()

    def recover(self) -> DeferredChangelog:
        """What a restarted worker recovers: the changelog, without the tombstones never sent."""
        store = DeferredChangelog()
        for key, value in self.changelog.items():
            store.put(key, orjson.loads(value), 0)
        return store


class Aggregation:
    """The aggregation stage, which survives the join's crash: each observation without a source position
    gets its pack's (one pack per observation here), and the aggregates drop a position applied already."""

    def __init__(self) -> None:
        metrics = Metrics(CollectorRegistry())
        self.aggregator = Aggregator(metrics, DictStore(), views=[AgreementView(metrics)])
        self.offset = 0

    def publish(self, emits: list[Any]) -> None:
        for emit in emits:
            if emit.topic == "observations":
                (observation,) = positioned(
                    [orjson.loads(orjson.dumps(emit.value))], "observations:0", self.offset
                )
                self.offset += 1
                self.aggregator.apply(observation, 0)

    def pairs(self, judge_id: str = "judge-a", dimension: str = "relevance") -> int:
        tracker = self.aggregator.detector(aggregate_key("agreement", judge_id, dimension))
        return 0 if tracker is None else int(tracker.n)


class Worker:
    """The join agent of one worker: each batch writes the eviction marks and the state, publishes, then
    sends the tombstones and the published marks. ``crash``: where the batch stops, ``"outputs"`` (its
    state written, its outputs not acknowledged) or ``"tombstones"`` (its outputs acknowledged)."""

    def __init__(self, store: DeferredChangelog, marks: dict[str, int], aggregation: Aggregation) -> None:
        self.store, self.marks, self.aggregation = store, marks, aggregation
        self.joiner = TurnJoiner(
            TAXONOMY,
            Metrics(CollectorRegistry()),
            store,
            ttl_seconds=HOUR,
            evict_every=1,
            autoflush=False,
            keep_outputs=True,
        )
        self.joiner.rebalanced(dict(marks))
        self.published: list[Any] = []

    def batch(self, records: list[Record], crash: str | None = None) -> None:
        emits = []
        for source, offset, event in records:
            emits.extend(self.joiner.handle(event, 0, (source, offset)))
        self.marks.update(self.joiner.eviction_marks())  # written with the batch's state
        self.joiner.flush()
        if crash == "outputs":
            return
        self.aggregation.publish(emits)  # acknowledged
        self.published.extend(emits)
        if crash == "tombstones":
            return
        self.store.send_tombstones()
        self.joiner.published()
        self.marks.update(self.joiner.published_marks())

    def restarted(self) -> Worker:
        return Worker(self.store.recover(), self.marks, self.aggregation)


TURN = ("turns:0", 10, turn("t-1", seconds=0))
VERDICT = ("verdicts:0", 20, judged("t-1", seconds=60, verdicts=[verdict("relevance", "fail")]))
LABEL = ("labels:0", 30, labelled("t-1", seconds=120, verdicts=[verdict("relevance", "pass")]))
LATER = ("turns:0", 11, turn("t-2", seconds=3 * HOUR))  # moves the watermark past t-1's TTL


def orphan(turn_id: str, offset: int, seconds: float) -> list[Record]:
    """A failing verdict and a label of a turn that never comes: their pair and defect wait for the entry's
    eviction."""
    return [
        ("verdicts:0", offset, judged(turn_id, seconds=seconds, verdicts=[verdict("relevance", "fail")])),
        ("labels:0", offset, labelled(turn_id, seconds=seconds, verdicts=[verdict("relevance", "pass")])),
    ]


def defects(emits: list[Any]) -> list[str]:
    return [e.key for e in emits if e.topic == "defects"]


def test_a_turn_evicted_in_the_batch_that_paired_it_is_counted_once_after_a_crash_before_its_tombstone():
    """The batch pairs t-1 (the label completes it) and evicts it; the replay reads the label before the
    verdict and, from the state before the batch, would pair it again at the verdict's position."""
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch([TURN])
    first.batch([VERDICT, LABEL, LATER], crash="tombstones")
    assert aggregation.pairs() == 1
    replay = first.restarted()
    replay.batch([LABEL, VERDICT, LATER])
    assert aggregation.pairs() == 1
    assert defects(replay.published) == defects(first.published)  # the same defect, published again
    assert replay.store.get("t-1") is None and "t-1" not in replay.store.changelog


def test_an_orphan_evicted_with_its_pairs_is_counted_once_after_a_crash_before_its_tombstone():
    """A verdict and a label whose turn never came: their pair is published when the entry is evicted, with
    no input record to give it a position. The replay evicts the recovered entry again."""
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch([VERDICT, LABEL])
    assert aggregation.pairs() == 0  # the pair waits for the turn
    first.batch([LATER], crash="tombstones")
    assert aggregation.pairs() == 1
    replay = first.restarted()
    replay.batch([LATER])
    assert aggregation.pairs() == 1
    assert defects(replay.published) == defects(first.published) == ["irrelevant/t-1/relevance/judge/judge-a"]
    assert not replay.store.changelog.keys() - {"t-2"} and not replay.store.tombstones
    assert not any("out" in entry for _, entry in replay.store.items())


def test_an_eviction_whose_outputs_the_crash_lost_publishes_them_on_the_replay():
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch([VERDICT, LABEL])
    first.batch([LATER], crash="outputs")  # the entry's final state is written, its pair is not published
    assert aggregation.pairs() == 0 and not first.published
    replay = first.restarted()
    replay.batch([LATER])
    assert aggregation.pairs() == 1
    assert defects(replay.published) == ["irrelevant/t-1/relevance/judge/judge-a"]


def test_records_of_a_completed_batch_read_again_after_their_turn_was_evicted_publish_nothing():
    """Batch 2 pairs and evicts t-1 and completes (its tombstone and published marks written); the crash
    comes before its offsets were committed. Read again, its records must not make t-1 anew: it would be
    paired again, at its eviction."""
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch([TURN])
    first.batch([VERDICT, LABEL, LATER])
    assert aggregation.pairs() == 1 and "t-1" not in first.store.changelog
    replay = first.restarted()
    replay.batch([LABEL, VERDICT, LATER])
    assert aggregation.pairs() == 1 and not replay.published
    assert replay.store.get("t-1") is None


def test_a_restarted_worker_positions_its_evictions_after_those_published_before():
    """Two orphans of one judge and dimension, evicted before and after a restart: both pairs count. Without
    the eviction marks, the second would take the first one's position, and the aggregate a replay."""
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch(orphan("t-a", 40, 0))
    first.batch([("turns:0", 12, turn("t-b", seconds=2 * HOUR))])  # evicts t-a
    assert aggregation.pairs() == 1 and first.marks["(evictions):0"] == 1
    for marks in (dict(first.marks), {s: n for s, n in first.marks.items() if not s.startswith("(")}):
        counted = Aggregation()
        counted.aggregator = copy_of(aggregation.aggregator)
        second = Worker(first.store.recover(), marks, counted)
        second.batch(orphan("t-c", 41, 2 * HOUR))
        second.batch([("turns:0", 13, turn("t-d", seconds=4 * HOUR))])  # evicts t-c
        assert counted.pairs() == (2 if "(evictions):0" in marks else 1)


def restarted_without_its_eviction_mark(aggregation: Aggregation) -> Worker:
    """A worker restarted after a crash while a batch's state was written: the final state of orphan t-a,
    which keeps its pair at eviction position 1, reached the changelog, the eviction mark did not."""
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch(orphan("t-a", 40, 0))
    first.batch([("turns:0", 12, turn("t-b", seconds=2 * HOUR))], crash="outputs")
    first.marks.pop("(evictions):0")  # lost with the crash
    return first.restarted()


def test_positions_an_eviction_kept_are_given_to_no_other_after_a_restart():
    """The crash came while the batch's state was written: the entry's final state, which keeps its pair at
    eviction position 1, reached the changelog, the eviction mark did not. The restarted worker evicts
    another orphan of the same judge and dimension first: it must not take position 1."""
    aggregation = Aggregation()
    second = restarted_without_its_eviction_mark(aggregation)
    second.joiner.ttl_seconds = 12 * HOUR  # t-a waits; t-c, a day older than the rest, goes at once
    second.batch([*orphan("t-c", 41, -24 * HOUR), ("turns:0", 12, turn("t-b", seconds=2 * HOUR))])
    assert second.marks["(evictions):0"] == 2
    second.joiner.ttl_seconds = HOUR
    second.batch([("turns:0", 13, turn("t-d", seconds=4 * HOUR))])  # evicts t-a again
    assert aggregation.pairs() == 2
    assert defects(second.published) == [  # t-a's, kept, before t-c's
        "irrelevant/t-a/relevance/judge/judge-a",
        "irrelevant/t-c/relevance/judge/judge-a",
    ]


def copy_of(aggregator: Aggregator) -> Aggregator:
    """``aggregator`` with a copy of its state (flushed), for two runs from one point."""
    aggregator.flush()
    copy = Aggregation().aggregator
    for key, value in aggregator.store.items():
        copy.store.put(key, value, 0)
    return copy


def test_retire_writes_the_state_an_entry_ends_in_before_deleting_it() -> None:
    store = DeferredChangelog()
    state = WriteBehind(store)
    state.touch("held", {"v": 1}, 0, new=True)
    state.flush()
    state.touch("held", {"v": 2}, 0)
    state.retire("held", {"v": 3}, 0)
    state.touch("new", {"v": 1}, 0, new=True)
    state.retire("new", {"v": 2}, 0)
    assert len(state) == 0 and state.get("held") is None and state.get("new") is None
    state.flush()
    assert {k: orjson.loads(v) for k, v in store.changelog.items()} == {"held": {"v": 3}, "new": {"v": 2}}
    assert store.tombstones == ["held", "new"] and len(store) == 0
    state.retire("gone", {"v": 1}, 0)
    state.touch("gone", {"v": 2}, 0, new=True)  # made anew in the same batch: written, not deleted
    state.flush()
    assert store.get("gone") == {"v": 2} and store.tombstones == ["held", "new"]


def test_a_kept_position_past_the_recovered_mark_is_written_and_given_to_no_other_later() -> None:
    """The entry's final state (its pair at eviction position 1) reached the changelog, its mark did not. The
    restarted worker publishes the kept pair again and evicts the entry again, which publishes nothing new:
    unless it writes position 1 as its mark then, a worker restarted after it gives position 1 again, and
    the aggregate takes that orphan's pair for a replay."""
    aggregation = Aggregation()
    second = restarted_without_its_eviction_mark(aggregation)
    second.batch([("turns:0", 13, turn("t-c", seconds=4 * HOUR))])  # t-a's kept pair; t-a evicted again
    assert aggregation.pairs() == 1 and second.marks["(evictions):0"] == 1
    third = second.restarted()
    third.batch(orphan("t-d", 41, 4 * HOUR))
    third.batch([("turns:0", 14, turn("t-e", seconds=6 * HOUR))])  # evicts t-d
    assert aggregation.pairs() == 2


def test_eviction_outputs_due_after_a_restart_survive_a_refused_first_record() -> None:
    """After a restart the join publishes what recovered entries kept of their eviction with the first record
    it handles. That record refused (a dead letter: here a judge past the turn's limit), they go out with the
    next one; they were dropped, and the orphan's defect and pair were lost."""
    from schemas.exceptions import InvalidRecord
    from streams.join_caps import MAX_RATERS_PER_TURN

    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    crowd = [
        ("verdicts:0", 100 + i, judged("t-x", seconds=0, judge_id=f"j{i}"))
        for i in range(MAX_RATERS_PER_TURN)
    ]
    first.batch([("turns:0", 9, turn("t-x", seconds=0)), *crowd])
    first.batch(orphan("t-a", 300, 0))
    first.batch([("turns:0", 12, turn("t-b", seconds=2 * HOUR))], crash="outputs")  # t-a's outputs lost
    second = first.restarted()
    emits = []
    try:
        emits += second.joiner.handle(
            judged("t-x", seconds=2 * HOUR, judge_id="j-extra"), 0, ("verdicts:0", 500)
        )
    except InvalidRecord as exc:
        assert exc.reason == "too_many_raters"
    else:
        raise AssertionError("the extra judge was not refused")
    emits += second.joiner.handle(turn("t-b", seconds=2 * HOUR), 0, ("turns:0", 12))
    aggregation.publish(emits)
    assert defects(emits) == ["irrelevant/t-a/relevance/judge/judge-a"]
    assert aggregation.pairs() == 1


def test_an_orphan_too_large_for_a_record_is_evicted_without_its_final_state() -> None:
    """An orphan publishing hundreds of defects at its eviction (100 annotators failing every dimension of
    one turn id) would end in a state over a record's size: written, the table refuses it and alerts on an
    oversized state. It is deleted without it, as before final states were written."""
    from schemas.common import QUALITY_DIMENSIONS
    from streams.join_caps import MAX_RATERS_PER_TURN
    from streams.state import MAX_WRITE_BYTES

    store = DeferredChangelog()
    worker = Worker(store, {}, Aggregation())
    dims = sorted(QUALITY_DIMENSIONS)
    worker.batch(
        [
            (
                "labels:0",
                i,
                labelled(
                    "undefined",
                    seconds=0,
                    annotator_id=f"a{i:03d}",
                    verdicts=[verdict(d, "fail") for d in dims],
                ),
            )
            for i in range(MAX_RATERS_PER_TURN)
        ]
    )
    before = store.changelog["undefined"]
    worker.batch([("turns:0", 1, turn("later", seconds=2 * HOUR))], crash="tombstones")  # evicts it
    assert len(defects(worker.published)) == MAX_RATERS_PER_TURN * len(dims)
    assert store.changelog["undefined"] == before  # no final state written over it
    assert len(before) < MAX_WRITE_BYTES and "undefined" in store.tombstones


def eviction_outputs(emits: list[Any]) -> list[bytes]:
    """What evictions published (``src`` at an eviction position), canonical, in order."""
    return [
        orjson.dumps([e.topic, e.key, e.value], option=orjson.OPT_SORT_KEYS)
        for e in emits
        if e.topic.startswith("defects")
        or (e.topic == "observations" and str(e.value.get("src", [""])[0]).startswith("(evictions)"))
    ]


#: t-a's eviction in batch 2, then a record of t-a in that batch: by the TTL (t-b moves the watermark two
#: hours on, then a label of t-a, two hours after its other records) or by the size cap (t-b and t-c fill it,
#: t-a the oldest; then a second judge's verdict on t-a). Each entry's last event ten minutes from the others:
#: the cap evicts by the expiry index's buckets (a 64th of the TTL), in any order within one.
MADE_ANEW = {
    "ttl": (
        None,
        [
            ("turns:0", 12, turn("t-b", seconds=2 * HOUR)),
            (
                "labels:0",
                41,
                labelled("t-a", seconds=2 * HOUR, annotator_id="ann-2", verdicts=[verdict("bias", "fail")]),
            ),
        ],
    ),
    "capacity": (
        2,
        [
            ("turns:0", 12, turn("t-b", seconds=600)),
            ("turns:0", 13, turn("t-c", seconds=1200)),
            (
                "verdicts:0",
                41,
                judged("t-a", seconds=1800, judge_id="judge-b", verdicts=[verdict("bias", "fail")]),
            ),
        ],
    ),
}


@pytest.mark.parametrize("crash", ["outputs", "tombstones"])
@pytest.mark.parametrize("reason", sorted(MADE_ANEW))
def test_an_orphan_made_anew_in_the_batch_that_evicted_it_publishes_its_eviction_after_a_crash(
    reason: str, crash: str
):
    """Orphan t-a is evicted in batch 2, then a record of t-a in the same batch makes its entry anew. The
    crash comes before batch 2's outputs are acknowledged, or before its tombstones: the replay must publish
    what the eviction published (t-a's defect and pair) again, at the same eviction positions, counted once,
    and the new entry must be what an uninterrupted run leaves. Before, the new entry's state was written in
    place of the evicted one's final state and kept nothing of the eviction: its defect and pair were lost."""
    cap, batch2 = MADE_ANEW[reason]

    def worker(store: DeferredChangelog, marks: dict[str, int], aggregation: Aggregation) -> Worker:
        w = Worker(store, marks, aggregation)
        if cap is not None:
            w.joiner.max_entries = cap
        return w

    uninterrupted = Aggregation()
    clean = worker(DeferredChangelog(), {}, uninterrupted)
    clean.batch(orphan("t-a", 40, 0))
    clean.batch(batch2)
    assert uninterrupted.pairs() == 1
    evicted = eviction_outputs(clean.published)
    assert b"irrelevant/t-a/relevance/judge/judge-a" in b"".join(evicted)
    assert clean.joiner.metrics.join_evictions.labels(reason)._value.get() >= 1

    aggregation = Aggregation()
    first = worker(DeferredChangelog(), {}, aggregation)
    first.batch(orphan("t-a", 40, 0))
    first.batch(batch2, crash=crash)
    assert aggregation.pairs() == (crash == "tombstones")
    assert set_aside_key("t-a", 0) in first.store.changelog
    replay = worker(first.store.recover(), first.marks, aggregation)
    replay.batch(batch2)
    assert aggregation.pairs() == 1
    assert eviction_outputs(replay.published) == evicted  # once, at the same positions
    # the new entry as an uninterrupted run leaves it, and nothing else held or left in the changelog
    assert replay.store.get("t-a") == clean.store.get("t-a") is not None
    assert sorted(replay.store.data) == sorted(clean.store.data)
    assert sorted(replay.store.changelog) == sorted(clean.store.changelog)
    assert len(replay.joiner.state) == len(clean.joiner.state)
    # and it goes on as a fresh entry: evicted later, it publishes its own defect, at the next position
    before = len(replay.published), len(clean.published)
    later = [("turns:0", 20, turn("t-z", seconds=5 * HOUR))]
    replay.batch(later)
    clean.batch(later)
    fresh = eviction_outputs(clean.published[before[1] :])
    assert b"t-a/bias" in b"".join(fresh)
    assert eviction_outputs(replay.published[before[0] :]) == fresh
    assert aggregation.pairs() == uninterrupted.pairs()


def test_a_set_aside_final_state_is_deleted_with_the_first_batch_that_publishes_what_it_kept() -> None:
    """Recovered, the final state set aside is no entry (not counted, not found by its turn id). Its tombstone
    waits for a batch that publishes its eviction's outputs again: the first batch after the restart refuses
    its only record (a dead letter), and a tombstone sent with it would leave nothing to publish them after
    another crash."""
    from schemas.exceptions import InvalidRecord
    from streams.join_caps import MAX_RATERS_PER_TURN

    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    crowd = [
        ("verdicts:0", 100 + i, judged("t-x", seconds=HOUR - 60, judge_id=f"j{i}"))
        for i in range(MAX_RATERS_PER_TURN)
    ]
    first.batch(orphan("t-a", 40, 0))
    first.batch([("turns:0", 9, turn("t-x", seconds=HOUR - 60)), *crowd])
    late = labelled("t-a", seconds=HOUR + 30, annotator_id="ann-2", verdicts=[verdict("bias", "fail")])
    batch2 = [("turns:0", 12, turn("t-b", seconds=HOUR + 30)), ("labels:0", 401, late)]
    first.batch(batch2, crash="outputs")  # evicts t-a (not t-x), which the label makes anew
    aside = set_aside_key("t-a", 0)
    second = first.restarted()
    assert len(second.joiner.state) == 3 and second.joiner.state.get(aside) is None  # t-x, t-a, t-b
    refused = judged("t-x", seconds=HOUR, judge_id="j-extra")
    try:
        second.joiner.handle(refused, 0, ("verdicts:0", 500))
    except InvalidRecord:
        pass
    else:
        raise AssertionError("the extra judge was not refused")
    second.joiner.flush()
    second.store.send_tombstones()  # the batch completes: its dead letter acknowledged
    assert aside in second.store.changelog and len(second.joiner.state) == 3
    second.batch(batch2)
    assert aggregation.pairs() == 1 and defects(second.published) == [
        "irrelevant/t-a/relevance/judge/judge-a"
    ]
    assert aside not in second.store.changelog and aside not in second.store.data
    assert len(second.joiner.state) == 3


def late_traffic(rng: random.Random, turns: int = 10) -> list[Record]:
    """A failing verdict and a label of each of ``turns`` turns over about five hours of event time, three in
    ten with the turn itself (the others orphans), six in ten followed by a second label more than the TTL
    after the entry's last record, with a time of its own: it comes after an orphan's eviction, often in the
    batch that evicted it. Three in ten have a second judge's verdict that comes about as late but with a
    time near the others' (a straggler): it joins the entry, often in the batch that evicts it."""
    events: list[tuple[float, str, Any]] = []
    for i in range(turns):
        turn_id, start = f"t-{i}", rng.uniform(0, 4 * HOUR)
        if rng.random() < 0.3:
            events.append((start, "turns:0", turn(turn_id, seconds=start)))
        events.append(
            (
                start + 1,
                "verdicts:0",
                judged(turn_id, seconds=start + 1, verdicts=[verdict("relevance", "fail")]),
            )
        )
        events.append(
            (
                start + 2,
                "labels:0",
                labelled(turn_id, seconds=start + 2, verdicts=[verdict("relevance", "pass")]),
            )
        )
        if rng.random() < 0.6:
            late = start + HOUR + rng.uniform(60, 600)
            label = labelled(
                turn_id, seconds=late, annotator_id="ann-2", verdicts=[verdict("relevance", "fail")]
            )
            events.append((late, "labels:0", label))
        if rng.random() < 0.3:
            straggler = judged(
                turn_id, seconds=start + 3, judge_id="judge-b", verdicts=[verdict("relevance", "fail")]
            )
            events.append((start + HOUR + rng.uniform(0, 600), "verdicts:0", straggler))
    events.sort(key=lambda e: e[0])
    offsets: dict[str, int] = {}
    records = []
    for _, source, event in events:
        offsets[source] = offsets.get(source, -1) + 1
        records.append((source, offsets[source], event))
    return records


def batched(rng: random.Random, records: list[Record]) -> list[list[Record]]:
    batches, i = [], 0
    while i < len(records):
        n = rng.randint(1, 6)
        batches.append(records[i : i + n])
        i += n
    return batches


def crash_run(seed: int) -> bool:
    """One seeded run crashed in one batch (before its outputs are acknowledged, or before its tombstones),
    restarted and replayed from that batch: whether it came out as the same batches uninterrupted (every
    judge/human pair counted once, every defect published)."""
    rng = random.Random(seed)
    batches = batched(rng, late_traffic(rng))
    uninterrupted = Aggregation()
    clean = Worker(DeferredChangelog(), {}, uninterrupted)
    for batch in batches:
        clean.batch(batch)
    crashed_in, crash = rng.randrange(len(batches)), rng.choice(["outputs", "tombstones"])
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    for batch in batches[:crashed_in]:
        first.batch(batch)
    first.batch(batches[crashed_in], crash=crash)
    replay = first.restarted()
    for batch in batches[crashed_in:]:
        replay.batch(batch)
    judges = ("judge-a", "judge-b")
    return [aggregation.pairs(judge) for judge in judges] == [
        uninterrupted.pairs(judge) for judge in judges
    ] and set(defects(first.published + replay.published)) == set(defects(clean.published))


def test_a_crash_in_any_batch_counts_every_pair_once_and_loses_no_defect():
    """Randomised: orphans evicted by the TTL, some made anew by a late label in the batch that evicted them,
    stragglers joining entries in the batch that evicts them, and a crash in a random batch. Before final
    states were set aside, 15 of these 300 runs (42 of 1,000) lost an orphan's pair and defect or counted a
    straggler's pair twice; with final states set aside but without ``anew``, 5 (12 of 1,000), all five
    counting a straggler's pair twice; none does now (0 of 1,000)."""
    failed = [seed for seed in range(300) if not crash_run(seed)]
    assert not failed, f"{len(failed)} of 300 runs differ: seeds {failed[:10]}"


@pytest.mark.parametrize("crash", ["outputs", "tombstones"])
def test_records_the_evicted_entry_took_in_its_last_batch_do_not_join_the_new_one_on_a_replay(crash: str):
    """Batch 2: a verdict of orphan t-a (judge-a), more than the TTL late, joins its entry; t-b evicts it (the
    verdict pairs with the label at the eviction); a label of t-a from ann-2 makes the entry anew. Read again
    after the crash, the verdict must not join the new entry: it would pair with ann-2's label there too."""
    first_label = ("labels:0", 40, labelled("t-a", seconds=0, verdicts=[verdict("relevance", "pass")]))
    batch2 = [
        ("verdicts:0", 41, judged("t-a", seconds=10, verdicts=[verdict("relevance", "fail")])),
        ("turns:0", 12, turn("t-b", seconds=2 * HOUR)),
        (
            "labels:0",
            42,
            labelled("t-a", seconds=2 * HOUR, annotator_id="ann-2", verdicts=[verdict("relevance", "pass")]),
        ),
    ]
    end = [("turns:0", 13, turn("t-z", seconds=6 * HOUR))]  # evicts the new entry
    uninterrupted = Aggregation()
    clean = Worker(DeferredChangelog(), {}, uninterrupted)
    for batch in ([first_label], batch2, end):
        clean.batch(batch)
    assert uninterrupted.pairs() == 1
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch([first_label])
    first.batch(batch2, crash=crash)
    replay = first.restarted()
    replay.batch(batch2)
    replay.batch(end)
    assert aggregation.pairs() == 1
    assert set(defects(first.published + replay.published)) == set(defects(clean.published))


def test_what_the_evicted_entry_published_for_a_record_of_its_last_batch_is_published_again_for_it():
    """As above, but t-a has its turn: the verdict pairs and makes a defect (with the turn's segment) at once,
    kept by the entry, which its eviction then publishes nothing more of. Read again after the crash, the
    verdict publishes them again, at its own position, from the final state set aside."""
    before = [
        ("turns:0", 10, turn("t-a", seconds=0)),
        ("labels:0", 40, labelled("t-a", seconds=5, verdicts=[verdict("relevance", "pass")])),
    ]
    batch2 = [
        ("verdicts:0", 41, judged("t-a", seconds=10, verdicts=[verdict("relevance", "fail")])),
        ("turns:0", 12, turn("t-b", seconds=2 * HOUR)),
        (
            "labels:0",
            42,
            labelled("t-a", seconds=2 * HOUR, annotator_id="ann-2", verdicts=[verdict("relevance", "pass")]),
        ),
    ]
    uninterrupted = Aggregation()
    clean = Worker(DeferredChangelog(), {}, uninterrupted)
    clean.batch(before)
    clean.batch(batch2)
    assert uninterrupted.pairs() == 1
    aggregation = Aggregation()
    first = Worker(DeferredChangelog(), {}, aggregation)
    first.batch(before)
    first.batch(batch2, crash="outputs")
    replay = first.restarted()
    replay.batch(batch2)
    assert aggregation.pairs() == 1

    def published_defects(emits: list[Any]) -> list[Any]:
        return [e.value for e in emits if e.topic == "defects"]

    assert published_defects(replay.published) == published_defects(clean.published)
    assert published_defects(clean.published)[0]["segment"]["journey"] != "unknown"


@pytest.mark.parametrize("crash", ["outputs", "tombstones"])
def test_a_record_that_fails_midway_on_a_turn_evicted_in_its_batch_leaves_one_final_state(
    crash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the final state was set aside before the record was applied: failing midway (an internal error, which
    # the pipeline dead-letters and goes on), the record left the turn's own key with its state of an earlier
    # batch, tombstone deferred; a crash recovered both, and the stale one, evicted again, paired again
    added = join.add_human

    def failing(entry: Any, label: Any, metrics: Any) -> bool:
        if label.annotator_id == "ann-2":
            raise RuntimeError("a bug midway")
        return added(entry, label, metrics)

    class Refusing(Worker):
        def batch(self, records: list[Record], crash: str | None = None) -> None:
            handle = self.joiner.handle
            try:
                self.joiner.handle = lambda event, p, source: _or_nothing(handle, event, p, source)  # type: ignore[method-assign]
                super().batch(records, crash)
            finally:
                self.joiner.handle = handle  # type: ignore[method-assign]

        def restarted(self) -> Worker:
            return Refusing(self.store.recover(), self.marks, self.aggregation)

    aggregation = Aggregation()
    worker: Worker = Refusing(DeferredChangelog(), {}, aggregation)
    worker.batch([VERDICT, LABEL])  # an orphan: its pair goes out when it is evicted
    late = (
        "labels:0",
        31,
        labelled("t-1", seconds=3 * HOUR, annotator_id="ann-2", verdicts=[verdict("bias", "fail")]),
    )
    monkeypatch.setattr(join, "add_human", failing)
    worker.batch([LATER, late], crash=crash)  # evicts t-1, then its late label fails midway
    monkeypatch.setattr(join, "add_human", added)
    worker = worker.restarted()
    worker.batch([LATER, late])
    worker.batch([("turns:0", 12, turn("t-3", seconds=6 * HOUR))])  # evicts what is left
    assert aggregation.pairs() == 1


def _or_nothing(handle: Any, event: Any, partition: int, source: tuple[str, int]) -> list[Any]:
    try:
        return list(handle(event, partition, source))
    except RuntimeError:  # Pipeline.ingest: an internal_error dead letter, and the worker goes on
        return []
