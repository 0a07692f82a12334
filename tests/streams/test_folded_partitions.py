"""Journeys folded into ``other`` by the views sharded by journey (volume and latency watches, outcome version
tests), with several observation partitions: what the changelog keeps, what a restart or a takeover
recovers, and who sends an open alarm again.

With one guard per worker, every worker kept its folded journeys at the one key ``traffic/other``, written
to the changelog partition of whichever observation came last: a restart recovered whichever partition's
copy was read last (one 37 minutes old, in the first test), and a worker taking a partition over recovered
one worker's ``other`` and lost the other's, open alarm included, which only the owner of the shard named
``other`` sent again after a restart. And its guard, with room for 100 journeys, folded half of the 200
watched journeys of the two workers after a takeover: their watches (in alarm, perhaps) never updated again.

The changelog here is compacted per partition and recovered as Faust's in-memory store does
(``faust/stores/memory.py``: records applied in the order read, the last one winning; keys whose last
record is of a partition not owned dropped); shard keys map to partitions by Kafka's default partitioner,
as the worker's producer maps them.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.emit import SEP
from streams.labels import shard_partition
from streams.metrics import Metrics
from streams.state import DictStore
from streams.views.traffic import MAX_JOURNEYS, TrafficView
from streams.views.version_outcomes import VersionOutcomeView

PARTITIONS = 2
T0 = 1_789_999_980.0  # a minute boundary
_PARTITIONER = DefaultPartitioner()
OFFSETS = itertools.count(1)  # input positions, increasing across workers (a restart goes on from them)


def key_partition(shard_key: str) -> int:
    """The partition Kafka's default partitioner gives ``shard_key`` among :data:`PARTITIONS`."""
    every = list(range(PARTITIONS))
    return int(_PARTITIONER(shard_key.encode(), every, every))


def partition_of(shard_key: str) -> int:
    """As the worker sets ``Aggregator.partition_of``."""
    return shard_partition(shard_key, key_partition)


def journeys_of(partition: int, n: int, prefix: str) -> list[str]:
    """``n`` journey names that the partitioner puts in ``partition``."""
    found: list[str] = []
    i = 0
    while len(found) < n:
        if key_partition(name := f"{prefix}-{i:04d}") == partition:
            found.append(name)
        i += 1
    return found


class Changelog(DictStore):
    """A store whose writes also go to a changelog compacted per partition (``log``, shared by workers)."""

    serialises = True  # as the Faust table's store: aggregates are written as JSON bytes

    def __init__(self, log: dict[int, dict[str, Any]]) -> None:
        super().__init__()
        self.log = log

    def put(self, key: str, value: Any, partition: int | None) -> None:
        super().put(key, value, partition)
        assert partition is not None
        self.log.setdefault(partition, {})[key] = value

    def delete(self, key: str, partition: int | None) -> None:
        super().delete(key, partition)
        self.log.setdefault(key_partition(key) if partition is None else partition, {})[key] = None

    def recovered(self, order: list[int]) -> Changelog:
        """The store of a worker owning the partitions ``order``, recovered in that order."""
        store, last = Changelog(self.log), {}
        for partition in order:
            for key, value in self.log.get(partition, {}).items():
                last[key] = partition
                if value is None:
                    store.data.pop(key, None)
                else:
                    store.data[key] = value
        for key, partition in last.items():
            if partition not in order:
                store.data.pop(key, None)
        return store

    def partitions(self, prefix: str) -> dict[str, list[int]]:
        """Per key starting with ``prefix``, the changelog partitions holding a record of it."""
        found: dict[str, list[int]] = {}
        for partition, records in sorted(self.log.items()):
            for key, value in records.items():
                if key.startswith(prefix) and value is not None:
                    found.setdefault(key, []).append(partition)
        return found


class Worker:
    """A worker's aggregation stage owning ``owned`` observation partitions, on ``store``."""

    def __init__(self, view: Any, store: Changelog, owned: set[int], recovered: bool = False) -> None:
        self.view, self.store, self.owned = view, store, owned
        self.aggregator = Aggregator(Metrics(CollectorRegistry()), store, views=[view])
        self.aggregator.partition_of = partition_of
        if recovered:
            self.aggregator.rebalanced()
        self.escalations: list[dict[str, Any]] = []

    def observe(self, observation: dict[str, Any]) -> None:
        partition = key_partition(observation["segment"]["journey"])  # the join's shard key: the journey
        assert partition in self.owned
        observation = {**observation, "src": [f"chats:{partition}", next(OFFSETS), 0]}
        self.escalations += [e.value for e in self.aggregator.apply(observation, partition)]

    def folded(self, prefix: str) -> dict[str, Any]:
        """Every folded aggregate of ``prefix`` this worker holds, as stored."""
        self.aggregator.flush()
        return {k: v for k, v in self.store.items() if k.startswith(f"{prefix}{SEP}other")}

    def open_again(self) -> list[tuple[int, str]]:
        """(partition of its shard, escalation id) of what ``resend_open_alerts`` would send again."""
        keys = [k for k, _ in self.store.items()]
        owns = lambda shard_key: partition_of(shard_key) in self.owned  # noqa: E731
        found = self.view.open_escalations(self.aggregator, keys, owns, 0.0)
        return [(partition_of(shard_key), value["escalation_id"]) for shard_key, value in found]


def traffic(worker: Worker, journeys: list[str], minutes: range, per_minute: int) -> None:
    for minute in minutes:
        for i in range(per_minute):
            turn = {
                "kind": "turn",
                "turn_id": f"t{minute}-{i}",
                "ts": T0 + minute * 60 + i * 60 / per_minute,
                "segment": {"journey": journeys[i % len(journeys)]},
                "latency_ms": None,
            }
            worker.observe(turn)


def traffic_worker(log: dict[int, dict[str, Any]], owned: set[int], order: list[int] | None = None) -> Worker:
    if order is None:
        return Worker(TrafficView(Metrics(CollectorRegistry())), Changelog(log), owned)
    store = Changelog(log).recovered(order)
    return Worker(TrafficView(Metrics(CollectorRegistry())), store, owned, recovered=True)


def watched(worker: Worker, partition: int, prefix: str) -> tuple[list[str], list[str]]:
    """:data:`MAX_JOURNEYS` journeys of ``partition`` with watches of their own, and five folded ones."""
    named = journeys_of(partition, MAX_JOURNEYS, prefix)
    traffic(worker, named, range(1), len(named))
    return named, journeys_of(partition, 5, f"{prefix}-folded")


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_a_restart_recovers_each_folded_watch_as_it_was_whatever_order_it_reads_the_partitions_in(
    order: list[int],
) -> None:
    log: dict[int, dict[str, Any]] = {}
    worker = traffic_worker(log, {0, 1})
    _, folded0 = watched(worker, 0, "a")
    _, folded1 = watched(worker, 1, "b")
    traffic(worker, folded1, range(1, 3), 5)  # partition 1's folded journeys first, briefly
    traffic(worker, folded0, range(3, 40), 20)  # then partition 0's, for 37 minutes
    before = worker.folded("traffic")
    assert len(before) == 2  # one folded watch per partition
    assert all(len(held) == 1 for held in worker.store.partitions(f"traffic{SEP}other").values())
    assert traffic_worker(log, {0, 1}, order).folded("traffic") == before


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_a_takeover_keeps_both_workers_folded_watches_their_open_alarm_and_every_watch_of_a_journey(
    order: list[int],
) -> None:
    log: dict[int, dict[str, Any]] = {}
    a, b = traffic_worker(log, {0}), traffic_worker(log, {1})
    a_named, a_folded = watched(a, 0, "a")
    b_named, b_folded = watched(b, 1, "b")
    traffic(a, a_folded, range(1, 44), 20)
    traffic(b, b_folded, range(1, 40), 20)
    traffic(b, b_folded, range(40, 44), 300)  # a surge of B's folded journeys
    (surge,) = [e for e in b.escalations if e["status"] == "firing"]
    assert (surge["kind"], surge["segment"]["journey"]) == ("volume_anomaly", "other")
    assert "in journey other:" in surge["summary"]
    folded = {**a.folded("traffic"), **b.folded("traffic")}
    assert len(folded) == 2

    # both restart, each with its partition: B sends its surge again, from its partition; A nothing
    assert traffic_worker(log, {0}, [0]).open_again() == []
    assert traffic_worker(log, {1}, [1]).open_again() == [(1, surge["escalation_id"])]

    # B goes; A takes partition 1 over
    took = traffic_worker(log, {0, 1}, order)
    assert took.folded("traffic") == folded
    assert took.open_again() == [(1, surge["escalation_id"])]
    kept = [j for j in a_named + b_named if took.view.journeys.fold(j, key_partition(j)) == j]
    assert len(kept) == 2 * MAX_JOURNEYS  # every recovered watch's journey still maps to it
    # and the surge goes on in B's folded watch until it resolves, under its id
    traffic(took, b_folded, range(44, 80), 20)
    resolved = [e for e in took.escalations if e["status"] == "resolved"]
    assert [e["escalation_id"] for e in resolved] == [surge["escalation_id"]]


def test_a_watch_all_partitions_shared_before_is_dropped_at_a_rebalance_not_sent_again() -> None:
    """Nothing updates it once folding is per partition: in alarm, it would be sent again for good."""
    log: dict[int, dict[str, Any]] = {}
    worker = traffic_worker(log, {0, 1})
    worker.aggregator.partition_of = None  # as before: one guard, one folded watch for the worker
    watched(worker, 1, "b")
    folded = journeys_of(0, 5, "a")  # partition 1's journeys took the room
    traffic(worker, folded, range(1, 40), 20)
    traffic(worker, folded, range(40, 44), 300)
    assert [e["journey"] for e in [x["segment"] for x in worker.escalations]] == ["other"]
    assert list(worker.store.partitions(f"traffic{SEP}other")) == [f"traffic{SEP}other"]
    for _ in range(2):  # each restart that recovers a copy deletes it
        upgraded = traffic_worker(log, {0, 1}, [0, 1])
        assert upgraded.open_again() == []
        assert upgraded.folded("traffic") == {}


def outcome_turn(journey: str, ts: float, version: str, completed: bool) -> dict[str, Any]:
    return {
        "kind": "turn",
        "turn_id": f"{journey}-{ts}",
        "ts": ts,
        "segment": {"journey": journey, "model_version": version},
        "outcome": {"task_completed": completed},
    }


def test_outcome_tests_fold_per_partition_and_two_partitions_regressions_have_ids_of_their_own() -> None:
    log: dict[int, dict[str, Any]] = {}

    def view() -> VersionOutcomeView:
        return VersionOutcomeView(Metrics(CollectorRegistry()), max_journeys=1)

    a, b = Worker(view(), Changelog(log), {0}), Worker(view(), Changelog(log), {1})
    rng = random.Random(5)
    for worker, partition in ((a, 0), (b, 1)):
        named, *folded = journeys_of(partition, 3, f"p{partition}")
        for i in range(1_600):
            canary = i >= 100 and rng.random() < 0.4
            journey = named if i % 4 == 0 else folded[i % 2]
            completed = rng.random() < (0.5 if canary else 0.85)
            worker.observe(outcome_turn(journey, T0 + i, "v2" if canary else "v1", completed))
    folded_ones = {
        partition: e
        for worker, partition in ((a, 0), (b, 1))
        for e in worker.escalations
        if e["kind"] == "version_regression" and e["segment"]["journey"] == "other"
    }
    assert len(folded_ones) == 2 and folded_ones[0]["escalation_id"] != folded_ones[1]["escalation_id"]
    assert all("in journey other on task_completed" in e["summary"] for e in folded_ones.values())
    stored = {**a.store.partitions("version_outcomes"), **b.store.partitions("version_outcomes")}
    assert all(len(held) == 1 for held in stored.values())
    assert {k for k in stored if f"{SEP}other" in k} == {
        f"version_outcomes{SEP}other#0{SEP}task_completed",
        f"version_outcomes{SEP}other#1{SEP}task_completed",
    }
    # a takeover: both open, each sent again from its partition
    took = Worker(view(), Changelog(log).recovered([1, 0]), {0, 1}, recovered=True)
    assert {(p, e["escalation_id"]) for p, e in folded_ones.items()} <= set(took.open_again())
