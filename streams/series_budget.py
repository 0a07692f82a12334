"""Series budgets: a bound on the label combinations of a metric family, whatever values its guards admit.

A :class:`~streams.labels.LabelGuard` bounds each label's values (``CONVOWATCH_LABEL_MAX_VALUES``), but a
family's series are the product of its labels': 1,200 valid records made ``convowatch_perceptual_score``
240,000 series (judge x modality x model version x score name, each within its guard; 24 series per histogram
child). A capped family admits the first ``combinations`` distinct combinations of its labels in the process;
a later one goes to the family's folded series, whose labels are ``other`` (counters and histograms, so that
sums over the family stay right; the 0/1 flags of :class:`~streams.labels.OpenFlags`, 1 while any detector
folded there is open), or, for a gauge of a figure, is not exported (the last of several figures written to
one series would be meaningless, as for the guards' ``other``). Labels named in ``per_combination``
(``bound``, ``arm``, ``source``...: small fixed sets) take all their values within each combination and are
kept when it folds. Labels named in ``kept_on_fold`` count in the combination but keep their values in
the folded series too (``journey``, which the alert rules sum by: a journey's traffic in a folded combination
must still count for that journey), and so does a value ``*`` (a spike slice's "not part of the slice"): a
family then has a folded series per kept value, at most :data:`KEPT_FOLDS` of them (past that, the kept
labels fold to ``other`` too, whatever ``CONVOWATCH_LABEL_MAX_VALUES`` admits). Each update past the budget
is counted in ``convowatch_series_folded_total{metric}`` (:class:`FoldedUpdates`).

A family exports at most ``combinations + 1`` times the product of its ``per_combination`` labels' values
children, and with ``kept_on_fold`` ``combinations + KEPT_FOLDS + 4`` times it (``*`` kept in two labels).
The hot path is one dict lookup: a child that exists is found before anything else (cheaper than
prometheus_client's own ``labels()``, which converts the values and takes a lock).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from streams.labels import OTHER

#: a label value that stands for every value (a spike slice's field outside the slice): kept when folding
ALL = "*"

# Budgets: label combinations per family (per process), by what a combination is. Families written together
# (a comparison's lift, bounds and turns; the outcome counters of a segment) have the same budget, so they
# admit the same combinations. Past the guards' 20 values a label is ``other`` anyway, so a one-label family
# has at most 42 values (dimensions); its budget only states that bound.
#: dimension x category x journey x model version x channel x modality of convowatch_defects_total
DEFECT_COMBINATIONS = 1_000
#: judge (or vendor) x dimension of the agreement, calibration and gold accuracy figures
JUDGE_DIMENSIONS = 200
#: judge x dimension x segment x segment value of the agreement figures by segment
SEGMENT_AGREEMENT = 1_000
#: judge x (dimension x) journey: calibrated defect rates, turns judged and labelled
JUDGE_JOURNEYS = 500
#: judge x model version of the guardrail figures
JUDGE_VERSIONS = 200
#: category x journey x model version x intent x source of open defect spikes
SPIKE_SLICES = 500
#: judge x journey (x dimension) x control x treatment of the model-version comparisons
VERSION_COMPARISONS = 500
#: journey x control x treatment of the outcome version comparisons
OUTCOME_COMPARISONS = 50
#: judge x modality x model version x score name of the perceptual scores (histogram: 24 series each)
PERCEPTUAL_SCORES = 200
#: journey x model version x channel of the business outcome counters and handle time
OUTCOME_SEGMENTS = 200
#: families of one guarded label (a vendor, a dimension, a model version, a journey)
ONE_LABEL = 50
#: folded series of distinct kept values (journeys; categories and journeys) a family with kept_on_fold has
KEPT_FOLDS = 100


class CappedFamily(MetricWrapperBase):
    """A labelled metric family with a series budget (mixed into :class:`CappedCounter`,
    :class:`CappedGauge` and :class:`CappedHistogram`; see the module docstring).

    >>> from prometheus_client import CollectorRegistry
    >>> requests = CappedCounter("requests", "", ["journey", "outcome"], registry=CollectorRegistry(),
    ...                          combinations=1, per_combination=["outcome"])
    >>> requests.labels("shopper", "ok").inc()
    >>> requests.labels("driver", "ok").inc(2)  # a second journey: past the budget, folded
    >>> requests.labels("shopper", "failed").inc()  # another outcome of an admitted combination
    >>> sorted((s.labels["journey"], s.labels["outcome"], s.value)
    ...        for s in requests.collect()[0].samples if s.name == "requests_total")
    [('other', 'ok', 2.0), ('shopper', 'failed', 1.0), ('shopper', 'ok', 1.0)]
    >>> requests.folded
    1
    """

    #: what a combination past the budget becomes: "fold" (the folded series) or "drop" (no series)
    overflow = "fold"

    def __init__(
        self,
        *args: Any,
        combinations: int | None = None,
        per_combination: Iterable[str] = (),
        kept_on_fold: Iterable[str] = (),
        overflow: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not self._is_parent():  # a child (prometheus_client builds them with the parent's class)
            return
        if combinations is None or combinations < 1:
            raise ValueError(f"{self._name}: combinations must be at least 1")
        per = tuple(per_combination)
        if not set(per) <= set(self._labelnames) or len(per) == len(self._labelnames):
            raise ValueError(f"{self._name}: per_combination must name some of its labels, not all")
        kept = tuple(kept_on_fold)
        if not set(kept) <= set(self._labelnames) - set(per):
            raise ValueError(f"{self._name}: kept_on_fold must name labels not in per_combination")
        if overflow is not None:
            if overflow not in ("fold", "drop"):
                raise ValueError(f"{self._name}: overflow must be 'fold' or 'drop'")
            self.overflow = overflow
        self.combinations = combinations
        self.per_combination = per
        self.kept_on_fold = kept
        self._combining = tuple(i for i, name in enumerate(self._labelnames) if name not in per)
        self._folding = tuple(i for i in self._combining if self._labelnames[i] not in kept)
        self._children_of: dict[tuple[str, ...], int] = {}  # admitted combination -> its children
        self._kept_folds: set[tuple[str, ...]] = set()  # folded combinations of kept values (kept_on_fold)
        self._overflows: dict[tuple[str, ...] | None, Overflow] = {}  # by folded series (None: dropped)
        #: updates of combinations past the budget, folded or dropped
        self.folded = 0

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Any:
        """The child of these label values; past the budget, an :class:`Overflow` in its place."""
        child = self._metrics.get(labelvalues)  # the hot path: a child that exists, values as strings
        if child is not None:
            return child
        return self._new_child(labelvalues, labelkwargs)

    def series(self, *labelvalues: str) -> tuple[str, ...] | None:
        """The label values the combination is exported under: its own, its family's folded series, or
        None (dropped), counting a fold (for callers that set the child themselves: OpenFlags)."""
        kept = self._place(labelvalues)
        if kept != labelvalues:
            self.folded += 1
        return kept

    def remove(self, *labelvalues: Any) -> None:
        values = tuple(str(value) for value in labelvalues)
        existed = values in self._metrics
        super().remove(*labelvalues)
        if existed:
            self._forget(values)
        self._overflows.clear()  # their folded series may be gone

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        super().remove_by_labels(labels)
        self._children_of.clear()
        for values in list(self._metrics):
            self._count(tuple(values))
        self._overflows.clear()

    def clear(self) -> None:
        super().clear()
        self._children_of.clear()
        self._kept_folds.clear()
        self._overflows.clear()

    def _new_child(self, labelvalues: tuple[Any, ...], labelkwargs: dict[str, Any]) -> Any:
        if labelkwargs and not labelvalues and sorted(labelkwargs) == sorted(self._labelnames):
            labelvalues = tuple(labelkwargs[name] for name in self._labelnames)
        elif labelkwargs or len(labelvalues) != len(self._labelnames):
            return super().labels(*labelvalues, **labelkwargs)  # prometheus_client's error
        values = tuple(str(value) for value in labelvalues)
        kept = self._place(values)
        if kept == values:
            new = values not in self._metrics
            child = super().labels(*values)
            if new:
                self._count(values)
            return child
        overflow = self._overflows.get(kept)
        if overflow is None:
            target = self._detached(values) if kept is None else self.labels(*kept)
            overflow = self._overflows[kept] = Overflow(target, self)
        return overflow

    def _place(self, values: tuple[str, ...]) -> tuple[str, ...] | None:
        combination = tuple(values[i] for i in self._combining)
        if combination in self._children_of:
            return values
        folded = self._fold(values, self._folding)
        if folded == values:  # a folded series itself (the guards' "other" too): outside the budget
            return self._room_for(values)
        if len(self._children_of) < self.combinations:
            return values
        return None if self.overflow == "drop" else self._room_for(folded)

    def _room_for(self, folded: tuple[str, ...]) -> tuple[str, ...]:
        """``folded``; past :data:`KEPT_FOLDS` folded series of kept values, with those ``other`` too."""
        if not self.kept_on_fold:
            return folded
        combination = tuple(folded[i] for i in self._combining)
        if combination in self._kept_folds:
            return folded
        if len(self._kept_folds) < KEPT_FOLDS:
            self._kept_folds.add(combination)
            return folded
        return self._fold(folded, self._combining)

    @staticmethod
    def _fold(values: tuple[str, ...], labels: tuple[int, ...]) -> tuple[str, ...]:
        """``values`` with those of ``labels`` ``other``, but for ``*`` values."""
        folded = list(values)
        for i in labels:
            if folded[i] != ALL:
                folded[i] = OTHER
        return tuple(folded)

    def _count(self, values: tuple[str, ...]) -> None:
        combination = tuple(values[i] for i in self._combining)
        if self._fold(values, self._folding) != values:
            self._children_of[combination] = self._children_of.get(combination, 0) + 1

    def _forget(self, values: tuple[str, ...]) -> None:
        combination = tuple(values[i] for i in self._combining)
        left = self._children_of.get(combination, 0) - 1
        if left > 0:
            self._children_of[combination] = left
        else:
            self._children_of.pop(combination, None)

    def _detached(self, values: tuple[str, ...]) -> Any:
        """A child that no scrape sees, for the updates of dropped combinations."""
        return type(self)(
            self._original_name,
            documentation=self._documentation,
            labelnames=self._labelnames,
            namespace=self._namespace,
            subsystem=self._subsystem,
            unit=self._unit,
            registry=None,
            _labelvalues=values,
            **self._kwargs,
        )


class CappedCounter(CappedFamily, Counter):
    """A :class:`~prometheus_client.Counter` with a series budget (:class:`CappedFamily`)."""


class CappedHistogram(CappedFamily, Histogram):
    """A :class:`~prometheus_client.Histogram` with a series budget (:class:`CappedFamily`)."""


class CappedGauge(CappedFamily, Gauge):
    """A :class:`~prometheus_client.Gauge` with a series budget (:class:`CappedFamily`): past it, a
    combination is not exported, unless ``overflow="fold"`` (flags set through OpenFlags)."""

    overflow = "drop"


class Overflow:
    """What ``labels()`` returns for a combination past its family's budget: updates go to ``target`` (the
    folded series, or a child no scrape sees) and are counted in the family's ``folded``."""

    __slots__ = ("family", "target")

    def __init__(self, target: Any, family: CappedFamily) -> None:
        self.target = target
        self.family = family

    def inc(self, amount: float = 1) -> None:
        self.target.inc(amount)
        self.family.folded += 1

    def dec(self, amount: float = 1) -> None:
        self.target.dec(amount)
        self.family.folded += 1

    def set(self, value: float) -> None:
        self.target.set(value)
        self.family.folded += 1

    def observe(self, amount: float) -> None:
        self.target.observe(amount)
        self.family.folded += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class FoldedUpdates:
    """``convowatch_series_folded_total{metric}``: the updates of combinations past each family's budget
    (a collector reading the families' counts; a family shows once it has folded something)."""

    NAME = "convowatch_series_folded"
    HELP = (
        "Updates of label combinations past the metric's series budget: counted in its series whose labels "
        "are other (counters, histograms, open flags), or not exported (gauges of a figure), by metric."
    )

    def __init__(self, families: Iterable[CappedFamily]) -> None:
        self.families = list(families)

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.NAME, self.HELP, labels=["metric"])]

    def collect(self) -> Iterator[Metric]:
        metric = CounterMetricFamily(self.NAME, self.HELP, labels=["metric"])
        for family in self.families:
            if family.folded:
                suffix = "_total" if family._type == "counter" else ""
                metric.add_metric([family._name + suffix], family.folded)
        yield metric
