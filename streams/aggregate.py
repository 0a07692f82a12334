"""The aggregation stage: observations from the join, applied exactly once to keyed aggregates.

On Kafka, observations are repartitioned by a shard key (the judge, for agreement) so one worker holds
each aggregate and the figures are global, not per partition. Each aggregate remembers, per source input
partition, the last (offset, sequence) it applied: a replay after a crash re-delivers observations with
the same source positions, and they are skipped instead of counted twice.

What is aggregated lives in views (``streams/views/``): each view handles some observation kinds and keeps
its detectors under keys of its own, through :meth:`Aggregator.update`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from detectors.base import Detector
from streams.emit import SEP, Emit
from streams.metrics import Metrics
from streams.state import DictStore, StateStore, WriteBehind


class Aggregate:
    """A detector plus the source positions already applied to it."""

    __slots__ = ("applied", "detector")

    def __init__(self, detector: Detector, applied: dict[str, list[int]] | None = None) -> None:
        self.detector = detector
        self.applied = applied if applied is not None else {}

    def encode(self) -> dict[str, Any]:
        return {"applied": self.applied, "detector": self.detector.to_dict()}

    def first_time(self, src: list[Any]) -> bool:
        """Record ``src`` = [source, offset, seq]; False if it was applied already (a replay)."""
        source, offset, seq = src
        if offset is None:  # no position (generated input, end-of-input flushes): nothing to replay
            return True
        last = self.applied.get(source)
        if last is not None and [offset, seq] <= last:
            return False
        self.applied[source] = [offset, seq]
        return True


class View(Protocol):
    """A family of aggregates fed by some observation kinds."""

    kinds: tuple[str, ...]

    def apply(
        self, aggregator: Aggregator, observation: dict[str, Any], partition: int | None
    ) -> list[Emit]: ...


def detector_types() -> dict[str, type[Detector]]:
    """Every Detector subclass by class name, for restoring stored state."""
    found: dict[str, type[Detector]] = {}
    pending: list[type[Detector]] = [Detector]
    while pending:
        for sub in pending.pop().__subclasses__():
            found[sub.__name__] = sub
            pending.append(sub)
    return found


class Aggregator:
    """Dispatches observations to views; values in the store are :meth:`Aggregate.encode` dicts."""

    def __init__(
        self,
        metrics: Metrics,
        store: StateStore | None = None,
        autoflush: bool = True,
        views: list[View] | None = None,
    ) -> None:
        self.metrics = metrics
        self.store: StateStore = store if store is not None else DictStore()
        self.state = WriteBehind(self.store)
        self.autoflush = autoflush
        self.duplicates = 0
        self._types = detector_types()
        self.views: list[View] = list(views or [])
        self._views: dict[str, list[View]] = {}
        for view in self.views:
            for kind in view.kinds:
                self._views.setdefault(kind, []).append(view)

    def apply(self, observation: dict[str, Any], partition: int | None = None) -> list[Emit]:
        emits: list[Emit] = []
        for view in self._views.get(observation["kind"], ()):
            emits.extend(view.apply(self, observation, partition))
        if self.autoflush:
            self.flush()
        return emits

    def flush(self) -> int:
        return self.state.flush(Aggregate.encode)

    def detector(self, key: str) -> Detector | None:
        """The current detector at ``key`` (read-only use), or None."""
        value = self.state.get(key)
        return None if value is None else self._decode(value).detector

    def update(
        self,
        key: str,
        observation: dict[str, Any],
        partition: int | None,
        make: Callable[[], Detector],
        apply: Callable[[Any], Any],
    ) -> Any:
        """Apply ``observation`` to the aggregate at ``key`` once; its detector, or None for a replay."""
        value = self.state.get(key)
        new = value is None
        aggregate = Aggregate(make()) if new else self._decode(value)
        if not aggregate.first_time(observation["src"]):
            self.duplicates += 1
            self.state.live[key] = aggregate
            return None
        apply(aggregate.detector)
        self.state.touch(key, aggregate, partition, new=new)
        return aggregate.detector

    def items(self, prefix: str) -> Iterator[tuple[list[str], Detector]]:
        """(key parts after the prefix, detector) for every aggregate whose key starts with ``prefix``."""
        self.flush()
        for key, value in sorted(self.store.items(), key=lambda item: item[0]):
            kind, *parts = key.split(SEP)
            if kind == prefix:
                yield parts, self._decode(value).detector

    def _decode(self, value: Any) -> Aggregate:
        if isinstance(value, Aggregate):
            return value
        detector = self._types[value["detector"]["type"]].from_dict(value["detector"])
        return Aggregate(detector, value["applied"])


def key(*parts: str) -> str:
    return SEP.join(parts)
