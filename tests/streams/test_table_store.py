"""TableStore's changelog records: what each send carries, and deletions deferred by one send."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson

from streams.tables import TableStore


class Recorder:
    """Collects what a send would give the producer: (key, value, partition) per changelog record."""

    def __init__(self) -> None:
        self.sends: list[list[tuple[Any, Any, int | None]]] = []

    def sent(self, store: TableStore) -> list[tuple[Any, Any, int | None]]:
        batch: list[tuple[Any, Any, int | None]] = []

        class Producer:
            async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None, *_: Any):
                batch.append((orjson.loads(key), None if value is None else orjson.loads(value), partition))
                return None

        asyncio.run(store.send(Producer()))
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


def test_deferred_deletions_reach_the_changelog_one_send_later_before_its_writes() -> None:
    store, recorder = table_store(defer_deletes=True), Recorder()
    store.put("a", {"p": 0}, 0)
    assert recorder.sent(store) == [("a", {"p": 0}, 0)]
    store.delete("a", 0)  # evicted: gone from memory at once
    store.put("b", {"p": 0}, 0)
    assert store.get("a") is None
    assert recorder.sent(store) == [("b", {"p": 0}, 0)]  # the batch that evicted it: no tombstone yet
    store.put("a", {"p": 0, "again": True}, 0)  # the turn comes back in the next batch
    assert recorder.sent(store) == [("a", None, 0), ("a", {"p": 0, "again": True}, 0)]
    assert recorder.sent(store) == []


def test_deferred_deletions_of_partitions_now_owned_elsewhere_are_dropped() -> None:
    owned = {0, 1}
    store, recorder = table_store(defer_deletes=True, owned=lambda: owned), Recorder()
    store.put("a", {"p": 0}, 0)
    store.put("b", {"p": 1}, 1)
    recorder.sent(store)
    store.delete("a", 0)
    store.delete("b", 1)
    recorder.sent(store)
    owned.discard(1)  # a rebalance moved partition 1 to another worker
    store.drop_unowned()
    assert recorder.sent(store) == [("a", None, 0)]


def test_a_value_too_large_for_a_changelog_record_is_kept_in_memory_not_written(caplog: Any) -> None:
    # written, it would fail the batch at every restart (the producer refuses requests over 1,000,000 bytes)
    from streams.kafka_client import MAX_WRITE_BYTES

    oversized: list[str] = []
    store, recorder = table_store(oversized=oversized.append), Recorder()
    huge = {"p": 0, "labels": ["x" * 1000] * (MAX_WRITE_BYTES // 1000)}
    store.put("big", huge, 0)
    store.put("small", {"p": 0}, 0)
    assert recorder.sent(store) == [("small", {"p": 0}, 0)]
    assert store.get("big") == huge  # the worker goes on with it
    assert oversized == ["pending"]
    assert "'big' is" in caplog.text and "not written" in caplog.text
