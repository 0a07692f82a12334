"""The aggregation stage: observations from the join, applied exactly once to keyed aggregates.

On Kafka, observations are repartitioned by a shard key (the judge, for agreement) so one worker holds
each aggregate and the figures are global, not per partition. Each aggregate remembers, per source input
partition, the last (offset, sequence) it applied: a replay after a crash re-delivers observations with
the same source positions, and they are skipped instead of counted twice.

What is aggregated lives in views (``streams/views/``): each view handles some observation kinds and keeps
its detectors under keys of its own, through :meth:`Aggregator.update`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson

from detectors.base import Detector
from streams.emit import SEP, Emit
from streams.labels import OTHER
from streams.metrics import Metrics
from streams.state import DictStore, StateStore, WriteBehind, encode_json

#: Decoded aggregates kept across batches (see WriteBehind): every one a worker holds, in practice.
KEEP_LIVE = 100_000
#: How often (wall clock) flush exports the aggregate counts (kept by the store: O(kinds)).
COUNT_EVERY_SECONDS = 10.0

log = logging.getLogger("convowatch.aggregate")


class Aggregate:
    """A detector plus the source positions already applied to it."""

    __slots__ = ("applied", "detector")

    def __init__(self, detector: Detector, applied: dict[str, list[int]] | None = None) -> None:
        self.detector = detector
        self.applied = applied if applied is not None else {}

    def encode(self) -> dict[str, Any]:
        return {"applied": self.applied, "detector": self.detector.to_dict()}


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
        self.state = WriteBehind(self.store, keep_live=KEEP_LIVE)
        self.autoflush = autoflush
        self.duplicates = 0
        self._counted_at = -math.inf
        # entries by kind, kept up to date by the store on every insert and delete (None: a store that
        # cannot, counted by a scan)
        count_kinds = getattr(self.store, "count_kinds", None)
        self._kind_counts: dict[str, int] | None = count_kinds() if count_kinds is not None else None
        self._types = detector_types()
        self.views: list[View] = list(views or [])
        #: On Kafka, the observation partition of a shard key (the transport sets it; None: no partitions):
        #: views sharded by a value they fold past a bound (a journey) fold per partition with it
        #: (:class:`~streams.labels.PartitionGuards`), and map recovered keys to their partitions.
        self.partition_of: Callable[[str], int] | None = None
        # each kind's views' apply methods, bound once
        self._appliers: dict[str, list[Callable[..., list[Emit]]]] = {}
        for view in self.views:
            for kind in view.kinds:
                self._appliers.setdefault(kind, []).append(view.apply)

    def apply(self, observation: dict[str, Any], partition: int | None = None) -> list[Emit]:
        emits: list[Emit] = []
        for apply in self._appliers.get(observation["kind"], ()):
            try:
                out = apply(self, observation, partition)
            except Exception:  # one view's bug must not keep the observation from the others
                self._view_failed(apply, observation)
                continue
            if out:
                emits.extend(out)
        if self.autoflush:
            self.flush()
        return emits

    def _view_failed(self, apply: Callable[..., list[Emit]], observation: dict[str, Any]) -> None:
        view = type(getattr(apply, "__self__", apply)).__name__
        log.exception(
            "internal error: %s on a %s observation from %s", view, observation["kind"], observation["src"]
        )
        self.metrics.internal_errors.labels("aggregate").inc()

    def rebalanced(self) -> None:
        """The partitions this process owns changed and the store was recovered: forget decoded values, and
        let views that derive anything from the store (``rebalanced(aggregator)``) derive it again: indexes,
        and the label values their keys were built with."""
        self.state.forget()
        for view in self.views:
            rebalanced = getattr(view, "rebalanced", None)
            if rebalanced is not None:
                rebalanced(self)

    def export_pending(self) -> None:
        """Let each view that throttles its gauges (``export_pending(aggregator)``) export those of its
        aggregates with observations since their last refresh, from the detectors: on a wall-clock timer on
        Kafka and at the end of an embedded run, so the tail of a burst reaches the gauges once the flow
        stops (until 2026-11-26 it waited for the next observation of the same aggregate)."""
        self._each_view("export_pending")

    def export_owned(self, keys: list[str], owns: Callable[[str], bool]) -> None:
        """After a rebalance, let each view (``export_owned(aggregator, keys, owns)``) export the gauges of
        the aggregates at ``keys`` (the recovered table's) whose shard key ``owns`` accepts; only those are
        decoded (:meth:`owned_detectors`)."""
        self._each_view("export_owned", keys, owns)

    def _each_view(self, method: str, *args: Any) -> None:
        for view in self.views:
            call = getattr(view, method, None)
            if call is None:
                continue
            try:
                call(self, *args)
            except Exception:  # one view's bug must not keep the others' gauges (nor the caller) back
                log.exception("internal error: %s.%s", type(view).__name__, method)
                self.metrics.internal_errors.labels("aggregate").inc()

    def fold_partition(self, partition: int | None) -> int | None:
        """The partition an observation of ``partition`` folds in: itself, or None without partitions."""
        return None if self.partition_of is None else partition

    def drop_unpartitioned_folds(self, prefix: str, parts: Iterable[str] = ("",)) -> None:
        """With partitions, delete the folded aggregates ``prefix``/``other``/part that all of a worker's
        partitions shared before folding was per partition (2026-11-26; part ``""``: none): nothing updates
        them now, and one in alarm would be sent again after every rebalance. Their tombstones go to the
        changelog partition they were recovered from (and to the key's own)."""
        if self.partition_of is None:
            return
        for part in parts:
            stale = SEP.join([prefix, OTHER, part] if part else [prefix, OTHER])
            if self.state.get(stale) is not None:
                self.delete(stale, None)

    def flush(self) -> int:
        written = self.state.flush(_encode)
        now = time.monotonic()
        if now - self._counted_at >= COUNT_EVERY_SECONDS:
            self._counted_at = now
            self.export_counts()
        return written

    def export_counts(self) -> None:
        """``convowatch_aggregates{kind}``: the aggregates (detectors and view records) this process holds,
        by kind (the first part of their key: a code constant, so the label stays bounded)."""
        counts = self._kind_counts
        if counts is None:
            counts = Counter(key.split(SEP, 1)[0] for key, _ in self.store.items())
        gauge = self.metrics.aggregates
        gauge.clear()
        for kind, n in counts.items():
            gauge.labels(kind).set(n)

    def detector(self, key: str) -> Detector | None:
        """The current detector at ``key`` (read-only use), or None."""
        value = self.state.get(key)
        return None if value is None else self._decode(value).detector

    def owned_detectors(
        self, keys: Iterable[str], kind: str, owns: Callable[[str], bool]
    ) -> Iterator[tuple[list[str], Detector]]:
        """(key parts after ``kind``, detector) of each of ``keys`` of that kind whose shard key, its first
        part (a judge, ``humans``, a journey), ``owns`` accepts, for read-only use: after a rebalance, what a
        worker exports or re-sends of the shards it owns. Only those are decoded."""
        start = kind + SEP
        for key in keys:
            if not key.startswith(start):  # most keys (a scan per kind after a rebalance: 10k keys, ~1 ms)
                continue
            _, *parts = key.split(SEP)
            if owns(parts[0]):
                detector = self.detector(key)
                if detector is not None:
                    yield parts, detector

    def update(
        self,
        key: str,
        observation: dict[str, Any],
        partition: int | None,
        make: Callable[[], Detector],
        apply: Callable[[Any], Any],
    ) -> Any:
        """Apply ``observation`` to the aggregate at ``key`` once; its detector, or None for a replay."""
        state = self.state
        # the hot path (every observation, several aggregates each): WriteBehind.get and touch inlined (a
        # live key is never a deleted one: delete drops it from ``live``). A replay is a source position
        # not after the last one ``applied`` from its source; without an offset there is nothing to replay.
        aggregate = state.live.get(key)
        if aggregate is None:
            value = state.get(key)
            if value is None:
                source, offset, seq = observation["src"]
                aggregate = Aggregate(make(), {} if offset is None else {source: [offset, seq]})
                apply(aggregate.detector)
                state.touch(key, aggregate, partition, new=True)
                return aggregate.detector
            aggregate = self._decode(value)
        elif aggregate.__class__ is not Aggregate:
            aggregate = self._decode(aggregate)
        source, offset, seq = observation["src"]
        if offset is not None:
            applied = aggregate.applied
            last = applied.get(source)
            position = [offset, seq]  # one list: compared, then kept
            if last is not None and position <= last:
                self.duplicates += 1
                state.live[key] = aggregate
                return None
            applied[source] = position
        apply(aggregate.detector)
        state.live[key] = aggregate
        state.dirty[key] = partition
        return aggregate.detector

    def change(self, key: str, partition: int | None, apply: Callable[[Any], Any]) -> Detector | None:
        """Apply ``apply`` to the detector at ``key`` outside any observation, written behind to the changelog
        ``partition`` (its shard's); its detector, or None if there is none. No source position is kept: a
        change made again after a replay must change nothing more (an alarm closed stays closed)."""
        value = self.state.get(key)
        if value is None:
            return None
        aggregate = self._decode(value)
        apply(aggregate.detector)
        self.state.touch(key, aggregate, partition)
        return aggregate.detector

    # -- plain records: JSON dicts a view keeps itself (no detector, no replay bookkeeping by the aggregator)

    def record(self, key: str) -> Any:
        """The plain record at ``key`` (a JSON-native dict, mutable until the next flush), or None."""
        return self.state.get(key)

    def put_record(
        self, key: str, value: dict[str, Any], partition: int | None, *, new: bool = False
    ) -> None:
        """Write ``value`` at ``key`` (behind, at the next flush); ``new`` if the key was not there."""
        self.state.touch(key, value, partition, new=new)

    def delete(self, key: str, partition: int | None) -> None:
        """Remove ``key`` (a tombstone to the changelog ``partition`` at the next flush)."""
        self.state.delete(key, partition)

    def records(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """(key, value) of every entry whose key starts with ``prefix`` and a separator, as this batch
        sees them; a full scan: for rebuilding derived indexes, not for every observation."""
        start = prefix + SEP
        for key, value in self.state.items():
            if key.startswith(start):
                yield key, value

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
        if isinstance(value, bytes):  # written by this worker to a Faust table (recovered values are dicts)
            value = orjson.loads(value)
        detector = self._types[value["detector"]["type"]].from_dict(value["detector"])
        return Aggregate(detector, value["applied"])


def _encode(value: Any) -> Any:
    """What a serialising store keeps: an aggregate as the JSON bytes of :meth:`Aggregate.encode` (compact,
    and a snapshot the live object can keep changing after); plain records as they are (JSON-native)."""
    if isinstance(value, Aggregate):
        return encode_json(value.encode())
    return value


def key(*parts: str) -> str:
    return SEP.join(parts)
