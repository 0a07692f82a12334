"""Keyed state for the pipeline's stateful stages, with the partition of every write made explicit.

Embedded, state is a :class:`DictStore`. On Kafka it is a Faust table (``streams.app.TableStore``) whose
changelog partition must be the partition of the input the state belongs to; stages pass it on every write.
Stages write behind: they mutate live objects during a batch and :meth:`WriteBehind.flush` writes each
touched key once, after the batch's outputs were acknowledged (see README, "Delivery guarantee").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class StateStore(Protocol):
    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any, partition: int | None) -> None: ...

    def delete(self, key: str, partition: int | None) -> None: ...

    def items(self) -> Iterator[tuple[str, Any]]: ...

    def __len__(self) -> int: ...


class DictStore:
    """In-process state (embedded transport and tests). Holds live objects: nothing is serialised."""

    serialises = False

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any, partition: int | None) -> None:
        self.data[key] = value

    def delete(self, key: str, partition: int | None) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.data.items()))

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

    def delete(self, key: str, partition: int | None) -> None:
        self.live.pop(key, None)
        self.dirty.pop(key, None)
        if key in self.new:
            self.new.discard(key)
        else:
            self.deleted[key] = partition

    def flush(self, encode: Any = None) -> int:
        """Write every touched value (through ``encode`` if the store serialises); forget live values."""
        if not getattr(self.store, "serialises", True):
            encode = None
        for key, partition in self.dirty.items():
            value = self.live[key]
            self.store.put(key, encode(value) if encode else value, partition)
        for key, partition in self.deleted.items():
            self.store.delete(key, partition)
        written = len(self.dirty) + len(self.deleted)
        if len(self.live) > self.keep_live:
            self.live.clear()
        self.dirty.clear()
        self.new.clear()
        self.deleted.clear()
        return written

    def forget(self) -> None:
        """Drop the live values kept across flushes (those touched in a batch still running stay)."""
        self.live = {key: value for key, value in self.live.items() if key in self.dirty}

    def items(self) -> Iterator[tuple[str, Any]]:
        """The store's entries as this batch sees them (live values, no deleted keys)."""
        merged = dict(self.store.items())
        merged.update({k: v for k, v in self.live.items() if k in self.dirty or k in merged})
        for key in self.deleted:
            merged.pop(key, None)
        return iter(merged.items())

    def __len__(self) -> int:
        return len(self.store) + len(self.new) - len(self.deleted)
