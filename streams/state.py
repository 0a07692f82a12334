"""Keyed state for the pipeline's stateful stages, with the partition of every write made explicit.

Embedded, state is a :class:`DictStore`. On Kafka it is a Faust table (``streams.tables.TableStore``) whose
changelog partition must be the partition of the input the state belongs to; stages pass it on every write.
Stages write behind: they mutate live objects during a batch and :meth:`WriteBehind.flush` writes each
touched key once, after the batch's outputs were acknowledged (see README, "Delivery guarantee").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import orjson

from streams.emit import SEP

#: Largest record convowatch writes (an output, a dead letter, a changelog value): the producer refuses a
#: request over 1,000,000 bytes, and a batch that cannot be written fails and is replayed at every restart.
MAX_WRITE_BYTES = 900_000


class StateStore(Protocol):
    """Keyed state. A store may also offer ``count_kinds()`` (see :class:`KindCounts`); the aggregation
    stage then reads its entry counts by kind from it instead of scanning every entry."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any, partition: int | None) -> None: ...

    def delete(self, key: str, partition: int | None) -> None: ...

    def replace(self, key: str, value: Any) -> None:
        """Give ``key`` a new value in memory only (a Kafka store's changelog keeps the previous one until the
        next :meth:`put`)."""

    def items(self, raw: bool = False) -> Iterator[tuple[str, Any]]:
        """Every entry; with ``raw`` the values as held (a store with JSON values: their bytes, undecoded)."""
        ...

    def __len__(self) -> int: ...


def encode_json(value: Any) -> bytes:
    """A JSON-native value as the bytes a store keeps (and its changelog record holds). A copy of orjson's
    output, which is orjson's write buffer uncut (4 KB for a pending turn of 900 bytes, by tracemalloc)."""
    return bytes(memoryview(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)))


_MISSING = object()


class KindCounts(dict[str, Any]):
    """A dict of store entries that keeps how many it holds of each kind, the part of the key before the
    first :data:`~streams.emit.SEP` (``counts``, in the order kinds first appeared), up to date on every
    insert and delete, whoever makes them: a stage's writes, or Faust recovering and dropping a table's
    entries. Reading the counts costs O(kinds) instead of a scan of every entry."""

    def __init__(self, entries: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.update(entries)

    def _added(self, key: str) -> None:
        kind = key.partition(SEP)[0]
        counts = self.counts
        counts[kind] = counts.get(kind, 0) + 1

    def _removed(self, key: str) -> None:
        kind = key.partition(SEP)[0]
        counts = self.counts
        n = counts[kind] - 1
        if n:
            counts[kind] = n
        else:
            del counts[kind]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self:
            self._added(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._removed(key)

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, _MISSING)
        if value is _MISSING:
            if default:
                return default[0]
            raise KeyError(key)
        self._removed(key)
        return value

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._removed(key)
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        pairs = ((key, other[key]) for key in other) if hasattr(other, "keys") else other
        for key, value in pairs:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    # dict's own |= (and update, setdefault, pop...) would change entries without counting them
    def __ior__(self, other: Any) -> KindCounts:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self.counts.clear()


def decoded(entries: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, Any]]:
    """``entries`` with their JSON values decoded one at a time: a scan of a million never holds them all."""
    for key, value in entries:
        yield key, orjson.loads(value)


class DictStore:
    """In-process state (embedded transport and tests). Holds live objects, or with ``json_values`` each
    value as its JSON bytes, decoded by every :meth:`get` (as :class:`~streams.tables.TableStore` does)."""

    serialises = False

    def __init__(self, json_values: bool = False) -> None:
        self.data: dict[str, Any] = {}
        self.json_values = json_values

    def count_kinds(self) -> dict[str, int]:
        """Start counting entries by kind (:class:`KindCounts`); the counts, kept up to date from now on."""
        if not isinstance(self.data, KindCounts):
            self.data = KindCounts(self.data)
        return self.data.counts

    def get(self, key: str) -> Any:
        value = self.data.get(key)
        return orjson.loads(value) if self.json_values and value is not None else value

    def put(self, key: str, value: Any, partition: int | None) -> None:
        self.data[key] = encode_json(value) if self.json_values else value

    def replace(self, key: str, value: Any) -> None:
        self.data[key] = encode_json(value) if self.json_values else value

    def delete(self, key: str, partition: int | None) -> None:
        self.data.pop(key, None)

    def items(self, raw: bool = False) -> Iterator[tuple[str, Any]]:
        """The entries now (a later write changes nothing in them); with ``json_values`` decoded one at a
        time, unless ``raw``."""
        entries = list(self.data.items())
        return decoded(entries) if self.json_values and not raw else iter(entries)

    def __len__(self) -> int:
        return len(self.data)


class WriteBehind:
    """Live values touched in the current batch, written to the store once each by :meth:`flush`.

    With ``keep_live`` (up to that many values), live values outlive the flush: a store that serialises
    then decodes each value once, not once per batch. Whoever replaces the store's values behind its back
    (a rebalance and table recovery) must call :meth:`forget`.
    """

    def __init__(self, store: StateStore, keep_live: int = 0) -> None:
        self.store = store
        self.keep_live = keep_live
        self.live: dict[str, Any] = {}
        self.dirty: dict[str, int | None] = {}
        self.new: set[str] = set()  # touched keys the store does not hold yet
        self.deleted: dict[str, int | None] = {}  # deletions, applied at flush like writes
        self.retired: dict[str, tuple[Any, int | None]] = {}  # deletions written first (retire)

    def get(self, key: str) -> Any:
        if key in self.deleted:
            return None
        value = self.live.get(key)
        if value is None:
            value = self.store.get(key)
            if value is not None:
                self.live[key] = value
        return value

    def touch(self, key: str, value: Any, partition: int | None, *, new: bool = False) -> None:
        self.live[key] = value
        self.dirty[key] = partition
        if new and key not in self.deleted:  # deleted in this batch: the store still holds it
            self.new.add(key)
        self.deleted.pop(key, None)
        self.retired.pop(key, None)

    def delete(self, key: str, partition: int | None) -> None:
        self.live.pop(key, None)
        self.dirty.pop(key, None)
        if key in self.new:
            self.new.discard(key)
        else:
            self.deleted[key] = partition

    def retire(self, key: str, value: Any, partition: int | None) -> None:
        """Delete ``key``, writing ``value`` first (the state it ends in): a store whose changelog takes the
        deletion later than the writes (the join's, once the batch's outputs are acknowledged) holds that
        state until then, not an older one."""
        self.delete(key, partition)
        self.retired[key] = (value, partition)

    def set_aside(self, key: str, other: str) -> bool:
        """``key``, retired in this batch, is made anew in it: write its retired value under ``other``
        instead, and delete that likewise, since the new value's write takes ``key``'s place in the changelog.
        Whether ``key`` was retired."""
        retired = self.retired.pop(key, None)
        if retired is None:
            return False
        self.retired[other] = retired
        return True

    def undelete(self, key: str) -> None:
        """Take back a deletion not flushed yet: the store, which still holds ``key``, keeps it."""
        self.deleted.pop(key, None)

    def flush(self, encode: Any = None) -> int:
        """Write every touched value (through ``encode`` if the store serialises), then the deletions (the
        retired values first); forget live values."""
        if not getattr(self.store, "serialises", True):
            encode = None
        store = self.store
        written = len(self.dirty) + len(self.retired) + len(self.deleted)
        for key, partition in self.dirty.items():
            value = self.live[key]
            store.put(key, encode(value) if encode else value, partition)
        for key, (value, partition) in self.retired.items():
            store.put(key, encode(value) if encode else value, partition)
        for key, partition in self.deleted.items():
            store.delete(key, partition)
        for key, (_, partition) in self.retired.items():
            if key not in self.deleted:  # new in this batch: the store holds it since the write above
                store.delete(key, partition)
                written += 1
        if len(self.live) > self.keep_live:
            self.live.clear()
        self.dirty.clear()
        self.new.clear()
        self.deleted.clear()
        self.retired.clear()
        return written

    def replace(self, key: str, value: Any) -> None:
        """Give ``key`` a new value in the store's memory only (see :meth:`StateStore.replace`); a key touched
        in this batch gets it as its live value instead, which the flush writes."""
        if key in self.dirty:
            self.live[key] = value
            return
        self.live.pop(key, None)
        self.store.replace(key, value)

    def forget(self) -> None:
        """Drop the live values kept across flushes (those touched in a batch still running stay)."""
        self.live = {key: value for key, value in self.live.items() if key in self.dirty}

    def items(self, raw: bool = False) -> Iterator[tuple[str, Any]]:
        """The store's entries as this batch sees them now (live values, no deleted keys), in the store's
        order then the new keys'. Lazily: a store that decodes its values holds one at a time. With ``raw``,
        the store's values as it holds them (live values are objects)."""
        return self._merged(self.store.items(raw), dict(self.live), set(self.dirty), set(self.deleted))

    @staticmethod
    def _merged(
        stored: Iterator[tuple[str, Any]], live: dict[str, Any], dirty: set[str], deleted: set[str]
    ) -> Iterator[tuple[str, Any]]:
        held = set()
        for key, value in stored:
            held.add(key)
            if key not in deleted:
                yield key, live.get(key, value)
        for key, value in live.items():
            if key in dirty and key not in held:
                yield key, value

    def __len__(self) -> int:
        return len(self.store) + len(self.new) - len(self.deleted)
