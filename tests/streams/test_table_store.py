"""TableStore's changelog records: what each send carries, and deletions sent after the batch's outputs."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from faust.types import TP

from streams.tables import TableStore


class Recorder:
    """Collects what a send would give the producer: (key, value, partition) per changelog record."""

    def __init__(self) -> None:
        self.sends: list[list[tuple[Any, Any, int | None]]] = []

    def sent(self, store: TableStore, deferred: bool = False) -> list[tuple[Any, Any, int | None]]:
        batch: list[tuple[Any, Any, int | None]] = []

        class Producer:
            async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None, *_: Any):
                batch.append((orjson.loads(key), None if value is None else orjson.loads(value), partition))
                return None

        asyncio.run(store.send_deferred(Producer()) if deferred else store.send(Producer()))
        self.sends.append(batch)
        return batch


def table_store(**kwargs: Any) -> TableStore:
    app = faust.App("table-store-test", broker="kafka://localhost:1", store="memory://", autodiscover=False)
    schema = faust.Schema(key_type=str, value_type=None, key_serializer="json", value_serializer="json")
    return TableStore(app.Table("pending", schema=schema), **kwargs)


def test_a_send_carries_the_writes_and_deletions_since_the_last_one() -> None:
    store, recorder = table_store(), Recorder()
    store.put("a", {"p": 0}, 0)
    store.put("b", {"p": 1}, 1)
    store.delete("a", 0)
    assert recorder.sent(store) == [("a", {"p": 0}, 0), ("b", {"p": 1}, 1), ("a", None, 0)]
    assert recorder.sent(store) == []
    assert store.get("a") is None and store.get("b") == {"p": 1}


def test_deferred_deletions_are_sent_apart_from_the_writes() -> None:
    store, recorder = table_store(defer_deletes=True), Recorder()
    store.put("a", {"p": 0}, 0)
    assert recorder.sent(store) == [("a", {"p": 0}, 0)]
    store.delete("a", 0)  # evicted: gone from memory at once
    store.put("b", {"p": 0}, 0)
    assert store.get("a") is None
    assert recorder.sent(store) == [("b", {"p": 0}, 0)]  # the batch's state: no tombstone yet
    assert recorder.sent(store, deferred=True) == [("a", None, 0)]  # once its outputs are in
    assert recorder.sent(store, deferred=True) == [] and recorder.sent(store) == []


def test_deferred_deletions_of_partitions_now_owned_elsewhere_are_dropped() -> None:
    owned = {0, 1}
    store, recorder = table_store(defer_deletes=True, owned=lambda: owned), Recorder()
    store.put("a", {"p": 0}, 0)
    store.put("b", {"p": 1}, 1)
    recorder.sent(store)
    store.delete("a", 0)
    store.delete("b", 1)
    owned.discard(1)  # a rebalance moved partition 1 to another worker
    store.drop_unowned()
    assert recorder.sent(store, deferred=True) == [("a", None, 0)]


def test_the_join_sends_the_tombstones_of_its_evictions_within_the_batch_after_its_outputs() -> None:
    # held for the next batch, a tombstone was lost when none came (a stop, a rebalance, a quiet input):
    # the recovered entry was evicted again and its judge/human pairs counted twice
    from prometheus_client import CollectorRegistry

    from streams.app import KafkaTransport
    from streams.config import Settings
    from streams.emit import Emit
    from streams.metrics import Metrics

    transport = KafkaTransport(Settings(broker="127.0.0.1:1"), Metrics(CollectorRegistry()))
    sent: list[tuple[str, Any, Any]] = []

    class Producer:
        async def send(self, topic: str, key: bytes, value: bytes | None, *_: Any) -> asyncio.Future[None]:
            sent.append((topic, key, None if value is None else orjson.loads(value)))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    transport.app.producer = Producer()
    store = table_store(defer_deletes=True)
    store.put("old", {"p": 0}, 0)
    store.delete("old", 0)  # evicted in this batch, which publishes its defect
    store.put("new", {"p": 0}, 0)
    emits = [Emit("defects", "d-old", {"turn_id": "old"})]
    asyncio.run(transport.publisher.publish(emits, lambda: None, store, {}, state_first=True))
    changelog = store.table.changelog_topic.get_topic_name()
    assert sent == [
        (changelog, b'"old"', {"p": 0}),  # the batch's state first
        (changelog, b'"new"', {"p": 0}),
        ("convowatch.defects", b"d-old", {"turn_id": "old"}),  # then its outputs
        (changelog, b'"old"', None),  # then the deletion, in the same batch
    ]


def test_a_value_too_large_for_a_changelog_record_is_kept_in_memory_not_written(caplog: Any) -> None:
    # written, it would fail the batch at every restart (the producer refuses requests over 1,000,000 bytes)
    from streams.state import MAX_WRITE_BYTES

    oversized: list[str] = []
    store, recorder = table_store(oversized=oversized.append), Recorder()
    huge = {"p": 0, "labels": ["x" * 1000] * (MAX_WRITE_BYTES // 1000)}
    store.put("big", huge, 0)
    store.put("small", {"p": 0}, 0)
    assert recorder.sent(store) == [("small", {"p": 0}, 0)]
    assert store.get("big") == huge  # the worker goes on with it
    assert oversized == ["pending"]
    assert "'big' is" in caplog.text and "not written" in caplog.text


def test_a_key_recovered_from_another_partition_is_deleted_there_too() -> None:
    # mis-keyed records once wrote a turn's entry to a second changelog partition; its deletion went to the
    # first only, and the copy came back at every recovery
    store, recorder = table_store(defer_deletes=True), Recorder()
    store.table.data["t1"] = {"p": 0}
    store.table.data._key_partition["t1"] = 3  # what Faust's memory store noted when it recovered the copy
    store.delete("t1", 0)
    assert recorder.sent(store, deferred=True) == [("t1", None, 0), ("t1", None, 3)]
    store.table.data["t2"] = {"p": 1}
    store.table.data._key_partition["t2"] = 1  # recovered from its own partition: one tombstone
    store.delete("t2", 1)
    assert recorder.sent(store, deferred=True) == [("t2", None, 1)]


def test_with_json_values_memory_holds_the_changelog_bytes_and_get_decodes_them() -> None:
    owned = {0}
    store, recorder = table_store(json_values=True, owned=lambda: owned), Recorder()
    entry = {"p": 0, "judge": {"j": {"labels": {"safety": "fail"}}}, "out": [["t/0", 7, []]]}
    store.put("a", entry, 0)
    held = store.table.data["a"]
    assert isinstance(held, bytes) and orjson.loads(held) == entry  # no dict for the collector to scan
    assert store.get("a") == entry and store.get("a") is not store.get("a")  # a fresh copy each time
    assert recorder.sent(store) == [("a", entry, 0)]  # the changelog record is the same bytes

    trimmed = {k: v for k, v in entry.items() if k != "out"}
    store.replace("a", trimmed)  # memory only: nothing for the changelog
    assert store.get("a") == trimmed and recorder.sent(store) == []

    store.table.data["b"] = orjson.dumps({"p": 1})  # recovered raw from another partition's changelog
    assert dict(store.items()) == {"a": trimmed}  # decoded, and only the partitions owned
    assert store.drop_unowned() == 1 and len(store) == 1


def test_the_join_table_reads_its_changelog_raw() -> None:
    # Faust sets a table's changelog serializer from its value_type, whatever its schema says: with the
    # default (json), recovered entries were dicts and the worker crashed on its first rebalance
    from prometheus_client import CollectorRegistry

    from streams.app import KafkaTransport
    from streams.config import Settings
    from streams.metrics import Metrics

    transport = KafkaTransport(Settings(broker="127.0.0.1:1"), Metrics(CollectorRegistry()))
    assert transport.pending is not None and transport.pending.json_values
    assert transport.pending.table.changelog_topic.schema.value_serializer == "raw"
    assert transport.pending.table.changelog_topic.schema.key_serializer == "json"  # keys as before


def test_stored_json_is_as_long_as_its_text() -> None:
    # orjson hands back its write buffer uncut: kept as it is, a 900-byte entry held 4 KB
    import tracemalloc

    from streams.state import encode_json

    value = {"p": 0, "text": "x" * 900}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [encode_json(value) for _ in range(100)]
        grown = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert len(kept[0]) < grown < len(kept[0]) + 100


def test_raw_items_are_the_bytes_of_the_partitions_owned() -> None:
    owned = {0}
    store = table_store(json_values=True, owned=lambda: owned)
    store.put("a", {"p": 0, "last": 1.5}, 0)
    store.put("elsewhere", {"p": 1, "last": 2.5}, 1)
    store.put("unplaced", {"p": None, "last": 3.5}, None)
    store.table.data["other-layout"] = orjson.dumps({"last": 1.0, "p": 0})  # "p" not first: decoded
    assert [(k, orjson.loads(v)) for k, v in store.items(raw=True)] == [
        ("a", {"p": 0, "last": 1.5}),
        ("other-layout", {"last": 1.0, "p": 0}),
    ]
    assert all(isinstance(v, bytes) for _, v in store.items(raw=True))
    assert [k for k, _ in store.items()] == ["a", "other-layout"]
    assert store.drop_unowned() == 2 and sorted(store.table.data) == ["a", "other-layout"]


def test_with_keyed_partitions_entries_are_owned_by_the_partition_noted_for_their_key() -> None:
    # aggregates do not carry their partition: the store notes it, as Faust's memory store does for the keys
    # it recovers, and Faust's own drop at the end of recovery takes the entries the worker wrote too
    owned = {0, 1}
    store, recorder = table_store(owned=lambda: owned, keyed_partitions=True), Recorder()
    store.put("written-0", {"n": 1}, 0)
    store.put("written-1", {"n": 1}, 1)
    store.table.data["copy"] = {"n": 1}
    store.table.data._key_partition["copy"] = 3  # recovered from partition 3 (a copy a mis-keyed record left)
    store.put("copy", {"n": 2}, 1)  # where it lies stays noted: its deletion goes there too
    store.delete("copy", 1)
    assert [(k, p) for k, _, p in recorder.sent(store)] == [
        ("written-0", 0),
        ("written-1", 1),
        ("copy", 1),
        ("copy", 1),
        ("copy", 3),
    ]
    store.put("copy", {"n": 3}, 1)  # made anew after its deletion: in its own partition
    owned = {1}
    assert [k for k, _ in store.items()] == ["written-1", "copy"]
    asyncio.run(store.table.data.on_recovery_completed({TP("changelog", 1)}, set()))
    assert sorted(store.table.data) == ["copy", "written-1"]
    owned = {0}
    assert store.drop_unowned() == 2 and len(store) == 0 and not store.table.data._key_partition
