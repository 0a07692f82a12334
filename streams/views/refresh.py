"""When a view recomputes an aggregate's gauges that cost too much to set on every observation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Refresh:
    """When to recompute an aggregate's gauges: on its first observation, then after ``every``
    observations or once its event time has moved ``seconds`` past the last refresh (process-local).
    :meth:`pending` gives the keys with observations since their last refresh, for a wall-clock export of
    the tail a quiet flow never refreshes (``Aggregator.export_pending``).

    >>> refresh = Refresh(every=3)
    >>> [refresh("a", 0.0), refresh("a", 1.0), refresh("b", 1.0)]
    [True, False, True]
    >>> list(refresh.pending()), list(refresh.pending())
    (['a'], [])
    """

    def __init__(self, every: int = 200, seconds: float = 60.0) -> None:
        self.every = every
        self.seconds = seconds
        self._seen: dict[Any, list[float]] = {}  # key -> [observations since refresh, event time then]

    def __call__(self, name: Any, ts: float | None) -> bool:
        ts = 0.0 if ts is None else ts
        state = self._seen.get(name)
        if state is None:
            self._seen[name] = [0, ts]
            return True
        state[0] += 1
        if state[0] >= self.every or ts - state[1] >= self.seconds:
            state[0], state[1] = 0, max(ts, state[1])
            return True
        return False

    def pending(self) -> Iterator[Any]:
        """Each key with observations since its last refresh, counted as refreshed (the caller exports it);
        its event time stays that of its last refresh."""
        for name, state in self._seen.items():
            if state[0]:
                state[0] = 0
                yield name

    def forget(self) -> None:
        """Start afresh (after a rebalance: what was pending of a shard that moved is not this worker's to
        export, and the owned shards' gauges are exported from the recovered state)."""
        self._seen.clear()
