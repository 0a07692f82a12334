"""A worker of the aggregate role that loses an observation partition in a rebalance forgets the partition's
aggregates: those Faust recovered, and those it created itself.

Faust's memory store drops, when recovery completes, only the keys it noted the partition of while
recovering them (``faust/stores/memory.py``: ``_key_partition``). Until 2026-11-26 the aggregates a worker
created itself stayed in its memory after their partition moved to another worker: counted in
``convowatch_aggregates`` (each rebalance added the moved shards to ``sum by (kind)`` once more), in
``report.json``, in the worker's memory for good; and when the partition came back to the worker after the
other had deleted an aggregate (a settled conversation, an idle detector) and compaction had removed its
tombstone, recovery did not touch the stale copy, which was used again as if current.

Two workers of the aggregate role (:class:`streams.app.KafkaTransport`, with their tables, aggregators and
metrics), one rebalance after another as Faust's recovery runs it: the changelog records of the partitions
assigned applied to the table, the signal ``on_rebalance_complete``, then each table's
``on_recovery_completed``. What stands in for the broker: the consumer's assignment, and a producer that
places keys by Kafka's default partitioner and keeps the changelog compacted per partition.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.app import KafkaTransport
from streams.config import Settings
from streams.emit import SEP
from streams.generator import TrafficGenerator, to_records
from streams.labels import OTHER, SourceGuards
from streams.metrics import Metrics
from streams.pipeline import Pipeline

PARTITIONS = 2
_PARTITIONER = DefaultPartitioner()


class Broker:
    """The partitions of keys, and the aggregates changelog compacted per partition: partition -> key ->
    JSON value (None: a tombstone not compacted away yet)."""

    def __init__(self) -> None:
        self.changelog: dict[int, dict[str, bytes | None]] = {}

    def key_partition(self, topic: str, key: bytes) -> Any:
        every = list(range(PARTITIONS))
        return TP(topic, int(_PARTITIONER(key, every, every)))

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int, *_: Any) -> Any:
        self.changelog.setdefault(partition, {})[orjson.loads(key)] = value
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def kinds(self, partitions: set[int]) -> dict[str, int]:
        """Aggregates by kind that the changelog holds for ``partitions``."""
        keys = [k for p in partitions for k, v in self.changelog.get(p, {}).items() if v is not None]
        return dict(Counter(k.split(SEP, 1)[0] for k in keys))


def aggregate_worker(broker: Broker) -> KafkaTransport:
    settings = Settings(broker="127.0.0.1:1", role="aggregate", partitions=PARTITIONS)
    worker = KafkaTransport(settings, Metrics(CollectorRegistry()))
    worker.app.producer = broker
    return worker


def rebalance(worker: KafkaTransport, partitions: set[int], broker: Broker, monkeypatch: Any) -> None:
    """``worker`` is assigned observation ``partitions`` (and their changelog's) and recovers them."""
    assert worker.aggregate_store is not None
    table = worker.aggregate_store.table
    observations = worker.outputs["observations"].get_topic_name()
    changelog = table.changelog_topic.get_topic_name()
    assigned = {TP(observations, p) for p in partitions} | {TP(changelog, p) for p in partitions}
    monkeypatch.setattr(worker.app.consumer, "assignment", lambda: assigned)
    table.apply_changelog_batch(
        SimpleNamespace(
            key=key,
            value=None if value is None else orjson.loads(value),
            message=SimpleNamespace(partition=p, value=value),
        )
        for p in sorted(partitions)
        for key, value in broker.changelog.get(p, {}).items()
    )

    async def recovery_completed() -> None:  # as faust.tables.recovery.Recovery.on_recovery_completed
        await worker.app.on_rebalance_complete.send()
        await table.on_recovery_completed({TP(changelog, p) for p in partitions}, set())

    asyncio.run(recovery_completed())


def aggregate(worker: KafkaTransport, observations: list[Any], broker: Broker) -> None:
    """Apply ``observations`` (the join's emits) in the partitions of their shard keys, as one batch."""
    assert worker.aggregate_store is not None
    for emit in observations:
        partition = broker.key_partition("observations", emit.key.encode()).partition
        assert partition in worker._observation_partitions()
        worker.pipeline.aggregate(emit.value, partition)
    worker.pipeline.aggregator.flush()
    asyncio.run(worker.aggregate_store.send(broker))


def exported(worker: KafkaTransport) -> dict[str, int]:
    return {s.labels["kind"]: int(s.value) for m in worker.metrics.aggregates.collect() for s in m.samples}


def held(worker: KafkaTransport) -> set[str]:
    assert worker.aggregate_store is not None
    return set(worker.aggregate_store.table.data)


def test_a_worker_forgets_the_aggregates_of_the_partitions_it_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    join = Pipeline(Settings(), Metrics(CollectorRegistry()), batched=True)
    records = itertools.islice(to_records(TrafficGenerator(seed=5, rate=20.0).records(1800)), 3000)
    observations = [
        emit
        for offset, record in enumerate(records)
        for emit in join.ingest(record[2], record[3], source_topic="chat_turns:0", offset=offset)
        if emit.topic == "observations"
    ]
    broker = Broker()
    first, second = aggregate_worker(broker), aggregate_worker(broker)
    rebalance(first, {0, 1}, broker, monkeypatch)
    aggregate(first, observations[:4000], broker)
    assert broker.kinds({0}) and broker.kinds({1})  # both partitions hold aggregates
    everything = broker.kinds({0, 1})
    assert exported(first) == everything

    # the second worker joins and takes partition 1
    rebalance(first, {0}, broker, monkeypatch)
    rebalance(second, {1}, broker, monkeypatch)
    live = {p: {k for k, v in broker.changelog[p].items() if v is not None} for p in (0, 1)}
    assert held(first) == live[0] and held(second) == live[1]
    assert exported(first) == broker.kinds({0}) and exported(second) == broker.kinds({1})
    summed = Counter(exported(first)) + Counter(exported(second))  # the dashboard's sum by (kind)
    assert summed == everything

    # the second worker goes on, and deletes an aggregate of partition 1, whose tombstone compaction then
    # removes; the partition comes back to the first worker
    second_only = [e for e in observations[4000:] if broker.key_partition("", e.key.encode()).partition == 1]
    aggregate(second, second_only, broker)
    deleted = next(k for k in sorted(live[1]) if k.startswith("spike" + SEP))
    assert first.pipeline.aggregator.detector(deleted) is None  # on the first worker: not after the loss
    second.pipeline.aggregator.delete(deleted, 1)
    aggregate(second, [], broker)
    assert broker.changelog[1].pop(deleted) is None  # the tombstone, compacted away
    rebalance(second, set(), broker, monkeypatch)
    rebalance(first, {0, 1}, broker, monkeypatch)
    assert deleted not in held(first)
    assert first.pipeline.aggregator.detector(deleted) is None
    assert held(first) == {k for p in (0, 1) for k, v in broker.changelog[p].items() if v is not None}
    assert exported(first) == broker.kinds({0, 1}) and exported(second) == {}


def test_after_a_rebalance_the_views_guard_the_values_of_the_aggregates_held_only() -> None:
    # a source's guard kept from before a rebalance in which the source moved to another worker and back
    # held the room of values that worker may have given up since, and folded those it gave it to
    pipeline = Pipeline(Settings(), Metrics(CollectorRegistry()))
    guarded = {
        (type(view).__name__, name): view
        for view in pipeline.aggregator.views
        for name, value in vars(view).items()
        if isinstance(value, SourceGuards)
    }
    del guarded["VersionOutcomeView", "journeys"]  # unused: its journeys are guarded per partition
    assert len(guarded) == 6
    for (_, name), view in guarded.items():
        guard = getattr(view, name)("judge-a", "journey")
        for i in range(guard.max_values):
            guard(f"journey-{i}")
        assert guard("new") == OTHER
    pipeline.aggregator.rebalanced()  # the store holds none of judge-a's aggregates now
    for (view_name, name), view in guarded.items():
        assert getattr(view, name)("judge-a", "journey")("new") == "new", view_name
