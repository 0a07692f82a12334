"""A view over an aggregator whose state is stored as a Faust table stores it, so that a test restarts it."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson
from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.metrics import Metrics
from streams.state import DictStore, encode_json

V = TypeVar("V", bound="RestartableView")


class JsonStore(DictStore):
    """A store that keeps each aggregate as its JSON bytes, as the Faust table's does."""

    serialises = True


class RestartableView:
    """One view over an aggregator on a :class:`JsonStore` (or ``store``). :meth:`restart` does what a
    restarted worker does: flush, build a new view and aggregator over the same store, and recover
    (``rebalanced``). Subclasses make the view (:meth:`make_view`) from attributes set before
    ``super().__init__``; ``rng`` (seeded) and ``offset`` are theirs to use for the traffic they feed."""

    def __init__(self, store: DictStore | None = None, seed: int = 0) -> None:
        self.store = store if store is not None else JsonStore()
        self.offset = 0
        self.rng = random.Random(seed)
        self._start()

    def make_view(self, metrics: Metrics) -> Any:
        raise NotImplementedError

    def _start(self) -> None:
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        self.view = self.make_view(metrics)
        self.aggregator = Aggregator(metrics, self.store, views=[self.view])

    def restart(self) -> None:
        self.aggregator.flush()
        self._start()
        self.aggregator.rebalanced()

    def state(self, prefix: str = "") -> dict[str, Any]:
        """The aggregates stored now whose keys start with ``prefix``, decoded."""
        self.aggregator.flush()
        return {
            k: orjson.loads(v) if isinstance(v, bytes) else v
            for k, v in self.store.items()
            if k.startswith(prefix)
        }

    def without_last_seen(self, keys: Iterable[str] | None = None) -> None:
        """Store the aggregates at ``keys`` (all) without their detectors' ``_last_seen``, as code before
        2026-11-26 wrote them, and restart on them."""
        self.aggregator.flush()
        for key in [k for k, _ in self.store.items()] if keys is None else list(keys):
            value = orjson.loads(self.store.get(key))
            value["detector"]["state"].pop("_last_seen")
            self.store.put(key, encode_json(value), None)
        self.restart()

    def without_created(self, last_seen: bool = False) -> None:
        """Store every aggregate without its detectors' ``_created`` (those nested in it too), as code until
        2026-11-26 wrote them; with ``last_seen`` without their ``_last_seen`` too, as code before
        2026-11-26 did (:meth:`without_last_seen`); and restart on them."""
        self.aggregator.flush()
        for key, stored in list(self.store.items()):
            value = _without(orjson.loads(stored), "_created")
            if last_seen:
                value["detector"]["state"].pop("_last_seen")
            self.store.put(key, encode_json(value), None)
        self.restart()


def _without(value: Any, field: str) -> Any:
    """``value`` (JSON-native) without ``field`` in any dict of it."""
    if isinstance(value, dict):
        return {k: _without(v, field) for k, v in value.items() if k != field}
    if isinstance(value, list):
        return [_without(v, field) for v in value]
    return value


def with_and_without_a_restart(
    make: Callable[[], V],
    events: Iterable[tuple[float, str]],
    feed: Callable[[V, float, str], None],
    at: float,
) -> tuple[V, V]:
    """Two views made by ``make`` fed the same ``events`` ((event time, value), in order) by ``feed``; the
    second restarted before its first event at or after ``at``, which must come."""
    once, restarted, pending = make(), make(), True
    for ts, value in events:
        feed(once, ts, value)
        if pending and ts >= at:
            restarted.restart()
            pending = False
        feed(restarted, ts, value)
    assert not pending, "no event at or after the restart time"
    return once, restarted
