"""State gauges right after a rebalance, before any traffic: a quiet worker shows what it holds.

Two workers in process, each with a store of its own: a partition moves from the first to the second (its
entries copied into the second's store, as Faust's recovery does, and deleted from the first's, as
``TableStore.drop_unowned`` does), then the second takes every partition over. The gauges must equal what
each store holds, counted from the store itself. Until 2026-11-26 the second showed 0 for both, and the first
its count from before the split, for as long as no event came."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from streams.emit import SEP
from streams.join import TurnJoiner
from streams.metrics import Metrics
from streams.state import DictStore
from streams.views.outcomes import CONVERSATION, WATERMARK
from tests.streams.test_join import TAXONOMY, judged, turn
from tests.streams.test_view_outcomes import Run
from tests.streams.test_view_outcomes import turn as chat_turn


def move(source: DictStore, target: DictStore, partition: int) -> None:
    """Partition ``partition``'s entries leave ``source`` for ``target`` (a copy, not shared objects)."""
    for key, value in list(source.data.items()):
        entry = orjson.loads(value) if isinstance(value, bytes) else value
        if isinstance(entry, dict) and entry.get("p") == partition:
            target.data[key] = value if isinstance(value, bytes) else orjson.loads(orjson.dumps(value))
            source.delete(key, partition)


# -- convowatch_conversations_tracked (streams/views/outcomes.py) ----------------------------------------


def conversations(store: DictStore) -> int:
    return sum(key.startswith(CONVERSATION + SEP) for key in store.data)


def tracked(run: Run) -> float | None:
    return run.registry.get_sample_value("convowatch_conversations_tracked")


def test_conversations_tracked_follows_the_partitions_a_quiet_worker_holds() -> None:
    stores = DictStore(), DictStore()
    first, second = Run(stores[0], conversations_max=1000), Run(stores[1], conversations_max=1000)
    offset = 0
    for i in range(40):  # partition 1 gets fewer conversations: the split is uneven
        for partition in (0, 1) if i % 4 else (0,):
            offset += 1
            stream, raw = chat_turn(f"p{partition}-{i}", f"p{partition}-{i}-t", i)
            for emit in first.pipeline.ingest(stream, raw, source_topic="in", offset=offset):
                if emit.topic == "observations":
                    first.pipeline.aggregate(emit.value, partition)
    first.pipeline.flush()
    assert tracked(first) == conversations(stores[0]) == 70

    move(stores[0], stores[1], partition=1)  # a second worker joins and takes partition 1
    first.pipeline.aggregator.rebalanced()
    second.pipeline.aggregator.rebalanced()
    assert (conversations(stores[0]), conversations(stores[1])) == (40, 30)
    assert tracked(first) == 40
    assert tracked(second) == 30

    move(stores[0], stores[1], partition=0)  # the first stops: the second takes everything over
    second.pipeline.aggregator.rebalanced()
    assert conversations(stores[1]) == 70
    assert tracked(second) == 70
    assert second.pipeline.report()["outcomes"]["tracked"] == 70


def test_a_gained_partition_counts_against_the_cap_before_its_next_observation() -> None:
    """The cap is enforced with the partitions gained counted: here the one kept gets the traffic."""
    stores = DictStore(), DictStore()
    first, second = Run(stores[0]), Run(stores[1], conversations_max=50)
    for partition in (0, 1):
        for i in range(40):
            stream, raw = chat_turn(f"p{partition}-{i}", f"p{partition}-{i}-t", i)
            for emit in first.pipeline.ingest(stream, raw, source_topic="in", offset=80 * partition + i):
                if emit.topic == "observations":
                    first.pipeline.aggregate(emit.value, partition)
    first.pipeline.flush()
    for partition in (0, 1):
        move(stores[0], stores[1], partition)
    second.pipeline.aggregator.rebalanced()
    assert any(k.startswith(WATERMARK + SEP) for k in stores[1].data)
    stream, raw = chat_turn("p0-new", "p0-new-t", 41)
    for emit in second.pipeline.ingest(stream, raw, source_topic="in", offset=1000):
        if emit.topic == "observations":
            second.pipeline.aggregate(emit.value, 0)
    second.pipeline.flush()
    # 81 held over a cap of 50, partition 1's counted: evicted down to 45 (the cap less a tenth)
    assert conversations(stores[1]) == tracked(second) == 45
    assert second.registry.get_sample_value("convowatch_conversation_evictions_total") == 36


# -- convowatch_join_kept_for_review_turns (streams/join.py) -------------------------------------------------


def kept(store: DictStore) -> int:
    return sum(bool(orjson.loads(value).get("keep")) for value in store.data.values())


class Worker:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.store = DictStore(json_values=True)  # as on Kafka: entries are JSON bytes
        self.joiner = TurnJoiner(TAXONOMY, Metrics(self.registry), self.store)

    def rebalanced(self) -> None:
        """What the Kafka transport calls, in its order (streams/app.py), the dropped entries gone already."""
        self.joiner.rebalanced({})
        self.joiner.forget_unheld()

    def gauge(self, name: str) -> float | None:
        return self.registry.get_sample_value(name)


def test_kept_for_review_follows_the_partitions_a_quiet_worker_holds() -> None:
    first, second = Worker(), Worker()
    for i in range(60):
        partition = i % 2
        first.joiner.handle(turn(f"t{i}", i), partition)
        first.joiner.handle(judged(f"t{i}", i + 1), partition)
        if i % 3 == 0 or (partition == 1 and i % 5 == 0):  # uneven: partition 1 has more
            first.joiner.keep_for_review(f"t{i}")
    assert first.gauge("convowatch_join_kept_for_review_turns") == kept(first.store) == 24

    move(first.store, second.store, partition=1)
    first.rebalanced()
    second.rebalanced()
    assert (kept(first.store), kept(second.store)) == (10, 14)
    assert first.gauge("convowatch_join_kept_for_review_turns") == 10
    assert second.gauge("convowatch_join_kept_for_review_turns") == 14

    move(first.store, second.store, partition=0)
    second.rebalanced()
    assert kept(second.store) == 24
    assert second.gauge("convowatch_join_kept_for_review_turns") == 24
    assert second.joiner.kept_for_review == {k for k, v in second.store.data.items() if b'"keep":1' in v}
