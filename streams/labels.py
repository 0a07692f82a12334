"""Bounded metric label values: an allow-list, or the first K distinct values; the rest become ``other``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, Metric

OTHER = "other"
UNKNOWN = "unknown"


#: (label, value) -> label value: ``Metrics.label``, ``recovered_label`` or ``admitted_label``.
LabelOf = Callable[[str, str | None], str]
#: (label, value) -> label value, or None where the value is left unexported: ``Metrics.settled_label``
SettledOf = Callable[[str, str | None], str | None]


class LabelGuard:
    """Maps raw values (journeys, model versions, judge ids...) to a bounded set of label values.

    With an ``allow`` list, only those values pass. Without one, the first ``max_values`` distinct values
    seen pass; every later new value becomes ``other``. ``reserved`` values always pass and take no room
    (the quality dimensions: custom dimensions seen first must not fold ``safety`` into ``other``). Either
    way a metric gets at most ``max_values + len(reserved) + 2`` values for this label (``other`` and
    ``unknown`` included).

    >>> guard = LabelGuard(max_values=2, reserved=["safety"])
    >>> [guard("a"), guard("b"), guard("c"), guard("a"), guard(None), guard("safety")]
    ['a', 'b', 'other', 'a', 'unknown', 'safety']
    >>> guard.folded
    1
    """

    def __init__(
        self, max_values: int = 20, allow: Iterable[str] | None = None, reserved: Iterable[str] = ()
    ) -> None:
        if max_values < 1:
            raise ValueError("max_values must be at least 1")
        self.max_values = max_values
        self.allow = frozenset(allow) if allow is not None else None
        self.reserved = frozenset(reserved)
        self._admitted: set[str] = set(self.reserved)
        self._counted = 0  # admitted values that take room (not reserved)
        self.folded = 0

    def admit(self, values: Iterable[str]) -> None:
        """Admit ``values`` (in sorted order, while there is room) as if they had been seen first: a process
        restoring state keyed by label values it admitted before restores the same mapping.

        >>> guard = LabelGuard(max_values=2)
        >>> guard.admit(["refund", "other", "payout", "returns"])
        >>> [guard("returns"), guard("payout"), guard("refund")]
        ['other', 'payout', 'refund']
        """
        for value in sorted(set(values) - {OTHER, UNKNOWN} - self._admitted):
            if self.allow is None and self._counted < self.max_values:
                self._admitted.add(value)
                self._counted += 1

    def retain(self, values: Iterable[str]) -> bool:
        """Give up the room of every admitted value not among ``values`` (reserved ones stay): a later new
        value may take it, and one seen again is admitted anew if there is room. Whether any was given up.

        >>> guard = LabelGuard(max_values=1)
        >>> guard("v1"), guard("v2")
        ('v1', 'other')
        >>> guard.retain([])
        True
        >>> guard("v2"), guard("v1")
        ('v2', 'other')
        """
        unused = self._admitted - set(values) - self.reserved
        self._admitted -= unused
        self._counted -= len(unused)
        return bool(unused)

    def __call__(self, value: str | None) -> str:
        if value in self._admitted:
            return value  # type: ignore[return-value]  # None is never admitted
        label = self.unless_folded(value)
        if label is None:
            self.folded += 1
            return OTHER
        return label

    def admitted(self, value: str | None) -> str | None:
        """``self(value)`` for a value the guard passes already, else None; admits nothing and counts no
        fold: for figures recovered from state after a rebalance, whose values (up to 30 days old) would
        otherwise take the room in the state's order, and the newest show as ``other`` after a restart.

        >>> guard = LabelGuard(max_values=1)
        >>> [guard.admitted("a"), guard("a"), guard.admitted("a"), guard.admitted(None), guard.folded]
        [None, 'a', 'a', 'unknown', 0]
        """
        if value is None or value == "":
            return UNKNOWN
        if value in self._admitted or value in (OTHER, UNKNOWN):
            return value
        if self.allow is not None:
            return value if value in self.allow else None
        return None

    def settled(self, value: str | None) -> str | None:
        """:meth:`admitted`, or ``other`` where the guard would fold ``value`` (no room left, or not in its
        allow list), as ``self(value)`` would, without counting it; None for a value it has not passed and
        still has room for (admitting it is left to live traffic).

        >>> guard = LabelGuard(max_values=1)
        >>> [guard.settled("a"), guard("b"), guard.settled("a"), guard.settled("b"), guard.folded]
        [None, 'b', 'other', 'b', 0]
        """
        label = self.admitted(value)
        if label is None and (self.allow is not None or self._counted >= self.max_values):
            return OTHER
        return label

    def unless_folded(self, value: str | None) -> str | None:
        """``self(value)``, or None where that would fold ``value`` into ``other`` (not counted in
        ``folded``): for labelling figures recovered from state, which would rather go unexported than fold.

        >>> guard = LabelGuard(max_values=1)
        >>> [guard.unless_folded("a"), guard.unless_folded("b"), guard("a"), guard.folded]
        ['a', None, 'a', 0]
        """
        if value is None or value == "":
            return UNKNOWN
        if value in self._admitted:
            return value
        if value in (OTHER, UNKNOWN):  # as admit() reads them: no room taken, so a restart maps alike
            return value
        if self.allow is not None:
            return value if value in self.allow else None
        if self._counted < self.max_values and len(value) <= 64:
            self._admitted.add(value)
            self._counted += 1
            return value
        return None


class FoldedLabelValues:
    """``convowatch_label_value_folds_total{label}``: the lookups whose value of ``label`` its guard folded
    into ``other`` (a collector reading the guards' counts; a label shows once its guard has folded): about
    one per update of a metric with that value, fewer where a view caches the value's label.

    >>> from prometheus_client import CollectorRegistry
    >>> registry, guard = CollectorRegistry(), LabelGuard(max_values=1)
    >>> registry.register(FoldedLabelValues({"model_version": guard}))
    >>> [guard(v) for v in ("v41", "v42", "v43")]
    ['v41', 'other', 'other']
    >>> registry.get_sample_value("convowatch_label_value_folds_total", {"label": "model_version"})
    2.0
    """

    NAME = "convowatch_label_value_folds"
    HELP = (
        "Lookups of a guarded label whose value was past the label's first CONVOWATCH_LABEL_MAX_VALUES "
        "distinct values (or outside its allow-list), so shown as other, by label: about one per metric "
        "update with such a value, fewer where a view caches the value's label."
    )

    def __init__(self, guards: Mapping[str, LabelGuard]) -> None:
        self.guards = guards

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.NAME, self.HELP, labels=["label"])]

    def collect(self) -> Iterator[Metric]:
        metric = CounterMetricFamily(self.NAME, self.HELP, labels=["label"])
        for name, guard in self.guards.items():
            if guard.folded:
                metric.add_metric([name], float(guard.folded))
        yield metric


class SourceGuards:
    """A :class:`LabelGuard` per source and label name, for values that go into aggregate keys.

    A source is an observation's shard key (a judge id, ``humans``): on Kafka one worker holds all of a
    source's aggregates, and a failover moves them together. With one guard per worker, a worker that took
    over a source folded its values past its own sources' room into ``other``, and the source's detectors
    (in alarm, perhaps) stopped; with a guard per source, a source's values map as they did on the worker
    before, and another source's cannot move them. Each source keeps at most ``max_values`` values per name.

    >>> guards = SourceGuards(max_values=1)
    >>> [guards("judge-a", "journey")("shopper"), guards("judge-b", "journey")("driver")]
    ['shopper', 'driver']
    >>> guards("judge-a", "journey")("driver")
    'other'
    """

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._guards: dict[tuple[str, str], LabelGuard] = {}

    def __call__(self, source: str, name: str) -> LabelGuard:
        guard = self._guards.get((source, name))
        if guard is None:
            guard = self._guards[source, name] = LabelGuard(self.max_values)
        return guard


#: Joins ``other`` and an observation partition (``other#3``): the key part of the aggregate that values
#: folded in that partition share, in views sharded by the folded value itself (a journey). No journey is
#: spelled so: ``#`` is in no ShortCode.
FOLDED_MARK = "#"


def folded(partition: int | None) -> str:
    """The key part of the aggregate that values folded in observation ``partition`` share: ``other``
    (embedded: no partitions), else ``other#<partition>``.

    >>> folded(None), folded(3)
    ('other', 'other#3')
    """
    return OTHER if partition is None else f"{OTHER}{FOLDED_MARK}{partition}"


def folded_partition(part: str) -> int | None:
    """The observation partition of a key part made by :func:`folded` with one, else None.

    >>> folded_partition("other#3"), folded_partition("other"), folded_partition("shopper")
    (3, None, None)
    """
    head, mark, partition = part.partition(FOLDED_MARK)
    return int(partition) if mark and head == OTHER and partition.isascii() and partition.isdigit() else None


def shown(part: str) -> str:
    """A key part as escalations and gauges show it: ``other`` for any :func:`folded` one.

    >>> shown("other#3"), shown("shopper")
    ('other', 'shopper')
    """
    return OTHER if folded_partition(part) is not None else part


def shard_partition(shard_key: str, key_partition: Callable[[str], int]) -> int:
    """The observation partition of an aggregate whose shard key (its key's first part) is ``shard_key``:
    a :func:`folded` aggregate's own, else ``key_partition(shard_key)`` (the producer's partitioner)."""
    partition = folded_partition(shard_key)
    return key_partition(shard_key) if partition is None else partition


class PartitionGuards:
    """A :class:`LabelGuard` per observation partition, for views sharded by the guarded value itself (the
    journey: volume and latency watches, outcome version tests), whose values past the room of their
    partition share that partition's aggregate (:func:`folded`).

    A partition is what a rebalance moves between workers. With one guard per worker, every worker kept an
    aggregate of its own at the one key ``other``: written to the changelog partition of whichever
    observation came last, so a restart could recover an older copy from another partition, and a worker
    taking over a partition recovered one worker's ``other`` and lost the other's (its open alarm never
    resolved, nor sent again); and a guard with room for one worker's journeys folded half of them after a
    takeover, their watches (in alarm, perhaps) never updated again. Per partition, a folded aggregate is
    written to one changelog partition and recovered with it, and :meth:`admit` restores each partition's
    mapping as it was. Without partitions (embedded: ``None``) one guard serves all.

    >>> guards, parity = PartitionGuards(max_values=1), lambda journey: len(journey) % 2
    >>> [guards.fold("ab", 0), guards.fold("abc", 1), guards.fold("cd", 0)]
    ['ab', 'abc', 'other#0']
    >>> restarted = PartitionGuards(max_values=1)
    >>> restarted.admit(["cd", "ab", "abc", "other#0"], parity)  # "cd", another worker's, takes no room
    >>> [restarted.fold("ab", 0), restarted.fold("abc", 1), restarted.fold("cd", 0)]
    ['ab', 'abc', 'other#0']
    """

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._guards: dict[int | None, LabelGuard] = {}

    def __call__(self, partition: int | None) -> LabelGuard:
        """The guard of observation ``partition`` (None: the one guard without partitions)."""
        guard = self._guards.get(partition)
        if guard is None:
            guard = self._guards[partition] = LabelGuard(self.max_values)
        return guard

    def fold(self, value: str | None, partition: int | None) -> str:
        """The key part ``value`` is kept under in observation ``partition``: itself, ``unknown``, or the
        partition's :func:`folded` part."""
        kept = self(partition)(value)
        return folded(partition) if kept == OTHER else kept

    def admit(self, parts: Iterable[str], partition_of: Callable[[str], int] | None) -> None:
        """Admit recovered key ``parts`` to the guards of their partitions (``partition_of``, None without
        partitions) as :meth:`LabelGuard.admit` does; folded parts admit nothing."""
        by_partition: dict[int | None, list[str]] = {}
        for part in parts:
            if shown(part) != OTHER:
                partition = None if partition_of is None else partition_of(part)
                by_partition.setdefault(partition, []).append(part)
        for partition, values in by_partition.items():
            self(partition).admit(values)


class OpenFlags:
    """A 0/1 gauge of open detectors whose series can each stand for several of them: past a guard's
    limit, detectors of different values share the ``other`` series, and past the gauge's series budget
    (a :class:`~streams.series_budget.CappedGauge` that folds) combinations share its folded series. A
    series reads 1 while any of its detectors (``member``: a tuple that names one) is open, where the last
    detector to write would win.

    >>> from prometheus_client import CollectorRegistry
    >>> from streams.series_budget import CappedGauge
    >>> gauge = CappedGauge("spike_open", "", ["intent"], registry=CollectorRegistry(), combinations=2,
    ...                     overflow="fold")
    >>> flags = OpenFlags(gauge)
    >>> flags.set(("other",), ("refund",), True)
    >>> flags.set(("other",), ("payout",), False)  # another detector of the series: still one open
    >>> flags.gauge.labels("other")._value.get()
    1.0
    >>> flags.set(("other",), ("refund",), False)
    >>> flags.gauge.labels("other")._value.get()
    0.0
    >>> flags.set(("a",), ("a",), False)
    >>> flags.set(("b",), ("b",), True)
    >>> flags.set(("c",), ("c",), True)  # a third value, past the budget of 2: folded, open
    >>> flags.set(("d",), ("d",), False)  # folded too: "other" stays open while "c" is
    >>> [flags.gauge.labels(value)._value.get() for value in ("a", "b", "other")], gauge.folded
    ([0.0, 1.0, 1.0], 2)
    """

    def __init__(self, gauge: Any) -> None:
        self.gauge = gauge
        self._open: dict[tuple[str, ...], set[tuple[Any, ...]]] = {}

    def set(self, labels: tuple[str, ...], member: tuple[Any, ...], is_open: bool) -> None:
        kept = self.gauge.series(*labels)
        if kept is None:  # a gauge that drops combinations past its budget
            return
        labels = kept
        members = self._open.get(labels)
        if is_open:
            if members is None:
                members = self._open[labels] = set()
            members.add(member)
        elif members is not None:
            members.discard(member)
            if not members:
                del self._open[labels]
        self.gauge.labels(*labels).set(1.0 if labels in self._open else 0.0)

    def retain(self, keep: Callable[[tuple[Any, ...]], bool]) -> None:
        """Forget the open members ``keep`` rejects (their shard moved to another worker), and set the
        series they were in again where it is still exported."""
        for labels in list(self._open):
            members = self._open[labels]
            kept = {member for member in members if keep(member)}
            if kept == members:
                continue
            if kept:
                self._open[labels] = kept
            else:
                del self._open[labels]
            if labels in self.gauge._metrics:  # prometheus_client's children; a removed one stays removed
                self.gauge.labels(*labels).set(1.0 if kept else 0.0)

    def clear(self) -> None:
        """Forget every member and remove every series."""
        self._open.clear()
        self.gauge.clear()
