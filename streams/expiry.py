"""Which pending turns are oldest: an event-time bucket index, so expiry costs O(1) per event, not a scan."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator


class ExpiryIndex:
    """Keys grouped by bucket of their last event time (``width`` seconds per bucket).

    Derived state, never persisted: :meth:`rebuild` recreates it from the store (after a restart or a
    rebalance brought in entries it has not seen).

    >>> index = ExpiryIndex(width=10.0)
    >>> for key, last in [("a", 1.0), ("b", 15.0), ("c", 31.0)]:
    ...     index.move(key, None, last)
    >>> index.move("a", 1.0, 32.0)  # "a" was touched again
    >>> list(index.older_than(25.0))
    ['b']
    >>> list(index.oldest_first())
    ['b', 'c', 'a']
    >>> list(index.expired(31.5))  # exactly: "c" (31.0) shares the bucket of 31.5 with "a" (32.0)
    ['b', 'c']
    """

    def __init__(self, width: float) -> None:
        if not width > 0:
            raise ValueError("width must be positive")
        self.width = width
        self._buckets: dict[int, dict[str, float]] = {}  # key -> last; dicts, not sets: a deterministic order
        self._size = 0

    def _bucket(self, last: float) -> int:
        return math.floor(last / self.width)

    def move(self, key: str, old_last: float | None, new_last: float) -> None:
        """``key``'s last event time went from ``old_last`` (None: new key) to ``new_last``."""
        new = self._bucket(new_last)
        if old_last is not None:
            old = self._bucket(old_last)
            if old == new:
                keys = self._buckets.get(new)
                if keys is not None and key in keys:
                    keys[key] = new_last
                return
            self._discard(key, old)
        else:
            self._size += 1
        self._buckets.setdefault(new, {})[key] = new_last

    def holds(self, key: str, last: float) -> bool:
        """Whether ``key`` is indexed under ``last``."""
        return key in self._buckets.get(self._bucket(last), {})

    def remove(self, key: str, last: float) -> bool:
        """Unindex ``key``, indexed under ``last``; whether it was."""
        if self._discard(key, self._bucket(last)):
            self._size -= 1
            return True
        return False

    def _discard(self, key: str, bucket: int) -> bool:
        keys = self._buckets.get(bucket)
        if keys is None or key not in keys:
            return False
        del keys[key]
        if not keys:
            del self._buckets[bucket]
        return True

    def older_than(self, horizon: float) -> Iterator[str]:
        """Keys whose bucket lies entirely before ``horizon``, plus those of the bucket holding it
        (callers check the exact time)."""
        if math.isinf(horizon):
            yield from self.oldest_first() if horizon > 0 else ()
            return
        limit = self._bucket(horizon)
        for bucket in sorted(b for b in self._buckets if b <= limit):
            yield from list(self._buckets[bucket])

    def expired(self, horizon: float) -> Iterator[str]:
        """Keys whose last event time is before ``horizon``, oldest bucket first."""
        if math.isinf(horizon):
            yield from self.oldest_first() if horizon > 0 else ()
            return
        limit = self._bucket(horizon)
        for bucket in sorted(b for b in self._buckets if b <= limit):
            yield from [key for key, last in self._buckets[bucket].items() if last < horizon]

    def oldest_first(self) -> Iterator[str]:
        for bucket in sorted(self._buckets):
            yield from list(self._buckets[bucket])

    def rebuild(self, entries: Iterable[tuple[str, float]]) -> None:
        self._buckets.clear()
        self._size = 0
        for key, last in entries:
            self.move(key, None, last)

    def __len__(self) -> int:
        return self._size
