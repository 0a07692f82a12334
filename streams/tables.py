"""Faust tables as the pipeline's :class:`~streams.state.StateStore`, with their changelog sent explicitly."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import faust
import orjson

from streams.emit import entry_head
from streams.state import MAX_WRITE_BYTES, KindCounts, decoded, encode_json

log = logging.getLogger("convowatch.tables")


class TableStore:
    """A Faust table as a :class:`~streams.state.StateStore`: every write names its changelog partition.

    Writes go to the table's memory at once and to its changelog through :meth:`send`, which the transport
    awaits (acknowledged by the broker) before the batch's offsets may be committed. Values are JSON-native
    objects or JSON bytes already encoded (aggregates); the changelog records are what Faust's ``json``
    codec reads back on recovery (Faust's codec, like ours, is orjson).

    ``owned`` gives the partitions this worker holds now; iteration skips entries of other partitions
    (their tombstones would go to another worker's changelog partition), and :meth:`drop_unowned` forgets
    them. An entry's partition is its value's ``p`` (a join entry), or with ``keyed_partitions`` (values that
    do not carry it: aggregates) the changelog partition noted for its key: the one Faust's memory store
    recovered it from, else the first this worker wrote it to. Faust notes only the former, and drops, when
    recovery completes, only those of partitions not assigned: an aggregate a worker created itself stayed
    in its memory after its partition moved to another worker, counted, and came back into use, stale, if
    the partition came back after the other worker had deleted it and compaction had removed the tombstone.

    With ``defer_deletes``, a deletion reaches the changelog through :meth:`send_deferred`, which the
    transport calls once the batch's outputs are acknowledged: for a store written before its batch's
    outputs (the join), whose deleted entries published their last outputs in that batch. A crash before
    those outputs were acknowledged then recovers the entry, instead of losing both. Held until a later
    batch instead, the tombstone was lost when none came (a stop, a rebalance, a quiet input), and the
    recovered entry published its pairs again at other positions, counted twice.

    With ``json_values`` the table keeps each value in memory as the JSON bytes of its changelog record, and
    :meth:`get` decodes it (the table must read its changelog raw: ``value_type=bytes``). A million pending
    turns of the join are then a million bytes objects, which Python's garbage collector does not scan,
    instead of about nine million dicts and lists, which it does: while they accumulated, a collection of
    the middle generation stopped the process for 1.9 s, and a full one took 7.4 s (``bench/gc_pauses.py``).
    """

    serialises = True

    def __init__(
        self,
        table: Any,
        owned: Callable[[], set[int]] | None = None,
        *,
        defer_deletes: bool = False,
        oversized: Callable[[str], None] | None = None,
        json_values: bool = False,
        keyed_partitions: bool = False,
    ) -> None:
        self.table = table
        self.json_values = json_values
        self.owned = owned
        self.keyed_partitions = keyed_partitions
        self.defer_deletes = defer_deletes
        #: called with the table's name for each value too large to write (after logging it)
        self.oversized = oversized
        self._outbox: list[tuple[bytes, bytes | None, int | None]] = []
        #: tombstones held back until the batch's outputs are acknowledged (defer_deletes)
        self._deferred: list[tuple[bytes, bytes | None, int | None]] = []

    def get(self, key: str) -> Any:
        value = self.table.data.get(key)
        return orjson.loads(value) if self.json_values and value is not None else value

    def count_kinds(self) -> dict[str, int]:
        """Start counting entries by kind; the counts, kept up to date from now on. The table's in-memory
        store (``memory://``) gets a :class:`~streams.state.KindCounts` as its dict, so every change to it is
        counted: the entries Faust recovers from the changelog, those it drops when recovery completes (of
        partitions not assigned, if it knows their partition: see ``keyed_partitions``), and those
        :meth:`drop_unowned` drops."""
        store = self.table.data  # faust.stores.memory.Store: its entries are the dict ``store.data``
        if not isinstance(store.data, KindCounts):
            store.data = KindCounts(store.data)
        return store.data.counts

    def put(self, key: str, value: Any, partition: int | None) -> None:
        raw = value if isinstance(value, bytes) else encode_json(value)
        self.table.data[key] = raw if self.json_values else value
        if self.keyed_partitions and partition is not None:
            # as Faust notes the partition of a key it recovers; one it recovered from another partition
            # keeps that one (where a copy lies, which delete() removes too)
            self.table.data._key_partition.setdefault(key, partition)
        if len(raw) > MAX_WRITE_BYTES:  # a state that grew without bound: keep going, say so loudly
            log.error(
                "%s: %r is %d bytes, over the %d a changelog record may hold: kept in memory, not written",
                self.table.name,
                key[:200],
                len(raw),
                MAX_WRITE_BYTES,
            )
            if self.oversized is not None:
                self.oversized(self.table.name)
            return
        self._outbox.append((orjson.dumps(key), raw, partition))

    def replace(self, key: str, value: Any) -> None:
        """Give ``key`` a new value in memory only: the changelog keeps the previous one until the next
        :meth:`put`."""
        self.table.data[key] = encode_json(value) if self.json_values else value

    def delete(self, key: str, partition: int | None) -> None:
        self.table.data.pop(key, None)
        tombstones = self._deferred if self.defer_deletes else self._outbox
        tombstones.append((orjson.dumps(key), None, partition))
        # recovered from another changelog partition: a copy a mis-keyed record left there (before entries
        # stayed in their first partition) would come back at every recovery unless deleted there too
        recovered = getattr(self.table.data, "_key_partition", {}).pop(key, None)  # Faust's memory store
        if isinstance(recovered, int) and recovered != partition:
            tombstones.append((orjson.dumps(key), None, recovered))

    async def send(self, producer: Any) -> list[Any]:
        """Send the changelog records written since the last call (deferred deletions aside); their delivery
        futures."""
        records, self._outbox = self._outbox, []
        return await self._send(producer, records)

    async def send_deferred(self, producer: Any) -> list[Any]:
        """Send the deletions held back (``defer_deletes``) since the last call; their delivery futures."""
        records, self._deferred = self._deferred, []
        return await self._send(producer, records)

    async def _send(self, producer: Any, records: list[tuple[bytes, bytes | None, int | None]]) -> list[Any]:
        topic = self.table.changelog_topic.get_topic_name()
        return [await producer.send(topic, k, v, partition, None, None) for k, v, partition in records]

    def items(self, raw: bool = False) -> Iterator[tuple[str, Any]]:
        """The entries now (a snapshot), of the partitions owned. With ``json_values``, decoded one at a time
        as iterated, unless ``raw`` (their partitions are read from the bytes)."""
        entries = list(self.table.data.items())
        if self.owned is not None:
            owned, partition = self.owned(), self._partition()
            entries = [(k, v) for k, v in entries if partition(k, v) in owned]
        return decoded(entries) if self.json_values and not raw else iter(entries)

    def _partition(self) -> Callable[[str, Any], int | None]:
        """The changelog partition of an entry (key, value): see ``keyed_partitions``."""
        if self.keyed_partitions:
            noted = self.table.data._key_partition.get
            return lambda key, _: noted(key)
        return lambda _, value: entry_head(value)[0]

    def drop_unowned(self) -> int:
        """Forget entries of partitions this worker no longer holds (after a rebalance); how many."""
        if self.owned is None:
            return 0
        owned, partition = self.owned(), self._partition()
        stale = [k for k, v in self.table.data.items() if partition(k, v) not in owned]
        noted = self.table.data._key_partition
        for key in stale:
            self.table.data.pop(key, None)
            noted.pop(key, None)
        # a deferred tombstone of a partition another worker owns now would delete that worker's entry
        self._deferred = [record for record in self._deferred if record[2] in owned]
        return len(stale)

    def __len__(self) -> int:
        return len(self.table.data)


class NamedChangelogTable(faust.Table):  # type: ignore[misc]  # faust is untyped
    """A Faust table whose changelog topic is named explicitly (Faust names it ``<app id>-<table>-changelog``;
    the aggregation role runs under an app id of its own but keeps the changelog of the combined role)."""

    def __init__(self, *args: Any, changelog_name: str, **kwargs: Any) -> None:
        self.changelog_name = changelog_name
        super().__init__(*args, **kwargs)

    def _changelog_topic_name(self) -> str:
        return self.changelog_name
