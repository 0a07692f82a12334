"""``convowatch_aggregates{kind}``: the detector count, kept by the aggregate store on every insert and
delete (streams.state.KindCounts), including the entries Faust recovers into a table or drops from it."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.emit import SEP
from streams.generator import TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore, KindCounts
from streams.tables import TableStore


def scanned(entries: Any) -> dict[str, int]:
    """What the counts must be: a scan of every entry, kinds in the order they first appear."""
    return dict(Counter(key.split(SEP, 1)[0] for key in entries))


def feed(pipeline: Pipeline, records: Any, start: int = 0) -> None:
    for offset, record in enumerate(records, start=start):
        pipeline.process(record[2], record[3], source_topic="t", offset=offset)


def test_aggregate_counts_match_the_store_by_kind() -> None:
    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(Settings(), metrics)
    records = to_records(TrafficGenerator(seed=5, rate=20.0).records(1800))
    feed(pipeline, itertools.islice(records, 5000))
    pipeline.aggregator.export_counts()

    expected = Counter(key.split(SEP, 1)[0] for key, _ in pipeline.aggregator.store.items())
    assert {"agreement", "spike", "traffic", "conversation"} <= set(expected)  # the views' own key prefixes
    value = metrics.registry.get_sample_value
    for kind, n in expected.items():
        assert value("convowatch_aggregates", {"kind": kind}) == n
    assert value("convowatch_aggregates", {"kind": "nonexistent"}) is None


def test_counts_follow_inserts_deletes_forget_and_a_restart() -> None:
    # short conversations: they close and settle (their records are deleted) within the traffic
    settings = Settings(conversation_idle_seconds=30.0, recontact_window_seconds=60.0)
    store = DictStore()
    pipeline = Pipeline(settings, Metrics(CollectorRegistry()), aggregate_store=store, batched=True)
    records = list(itertools.islice(to_records(TrafficGenerator(seed=7, rate=20.0).records(3600)), 12_000))
    counts = store.data.counts  # type: ignore[attr-defined]
    settled = 0
    for start in range(0, 6000, 1000):
        feed(pipeline, records[start : start + 1000], start)
        pipeline.flush()
        assert counts == scanned(store.data)
        settled = int(pipeline.report()["outcomes"].get("settled", 0))
    assert settled == 275  # conversation records were deleted, not only inserted

    # a rebalance: the table's entries change behind the aggregator (recovered, dropped), which forgets
    # its decoded values; the counts follow the table itself
    kept = next(k for k in store.data if k.startswith("spike" + SEP))
    store.data.pop(kept)
    store.data["spike" + SEP + "recovered"] = {}
    del store.data[next(k for k in store.data if k.startswith("traffic" + SEP))]
    pipeline.aggregator.state.forget()
    assert counts == scanned(store.data)
    feed(pipeline, records[6000:8000], 6000)
    pipeline.flush()
    assert counts == scanned(store.data)

    # a restart over the same store: the new aggregator counts what is there and goes on counting
    restarted = Pipeline(settings, Metrics(CollectorRegistry()), aggregate_store=store, batched=True)
    restarted.aggregator.export_counts()
    value = restarted.metrics.registry.get_sample_value
    assert {kind: value("convowatch_aggregates", {"kind": kind}) for kind in counts} == scanned(store.data)
    feed(restarted, records[8000:12_000], 8000)
    restarted.flush()
    assert restarted.aggregator._kind_counts is counts == scanned(store.data)


def test_kind_counts_follow_every_way_a_dict_changes() -> None:
    entries = KindCounts({f"a{SEP}1": 1, f"b{SEP}1": 2, "plain": 3})
    entries[f"a{SEP}2"] = 4
    entries[f"a{SEP}2"] = 5  # overwritten: still one
    entries.setdefault(f"c{SEP}1", 6)
    entries.setdefault(f"c{SEP}1", 7)
    entries.update([(f"b{SEP}2", 8), (f"b{SEP}2", 9)], **{f"d{SEP}1": 10})
    entries |= {f"e{SEP}1": 11}
    del entries[f"a{SEP}1"]
    assert entries.pop(f"b{SEP}1") == 2
    assert entries.pop("missing", None) is None
    with pytest.raises(KeyError):
        entries.pop("missing")
    entries.popitem()  # the last inserted: e
    assert entries.counts == scanned(entries) == {"b": 1, "plain": 1, "a": 1, "c": 1, "d": 1}
    entries.clear()
    assert entries.counts == {}


def test_table_counts_follow_faust_recovery_and_its_drop_of_revoked_partitions() -> None:
    app = faust.App("counts-test", broker="kafka://localhost:1", store="memory://", autodiscover=False)
    schema = faust.Schema(key_type=str, value_type=None, key_serializer="json", value_serializer="json")
    table = app.Table("aggregates", schema=schema)
    store = TableStore(table, keyed_partitions=True)  # as the worker's (streams/app.py)
    counts = store.count_kinds()
    store.put(f"spike{SEP}own", b"{}", 0)
    store.put(f"traffic{SEP}own", {"p": 0}, 0)

    def record(key: str, value: Any, partition: int) -> Any:
        raw = None if value is None else orjson.dumps(value)
        return SimpleNamespace(key=key, value=value, message=SimpleNamespace(value=raw, partition=partition))

    # recovery: Faust applies changelog records to the table's store itself (tombstones included)
    batch = [
        record(f"spike{SEP}a", {"x": 1}, 0),
        record(f"spike{SEP}b", {"x": 2}, 1),
        record(f"conversation{SEP}c", {"p": 1}, 1),
        record(f"spike{SEP}a", None, 0),  # deleted later in the changelog
        record(f"agreement{SEP}d", {"x": 3}, 2),
    ]
    table.data.apply_changelog_batch(batch, to_key=lambda k: k, to_value=lambda v: v)
    assert counts == scanned(table.data.data) == {"spike": 2, "traffic": 1, "conversation": 1, "agreement": 1}

    # recovery completed: entries of partitions this worker was not assigned are dropped, those it wrote
    # included (until 2026-11-26 Faust knew the partitions of recovered entries only, and they stayed)
    asyncio.run(table.data.on_recovery_completed({TP("changelog", 1)}, set()))
    assert counts == scanned(table.data.data) == {"spike": 1, "conversation": 1}

    store.delete(f"conversation{SEP}c", 1)
    assert counts == scanned(table.data.data) == {"spike": 1}
