"""Several humans on the same items of one dimension: consensus, reliability and who departs from it.

One aggregate per dimension holds :class:`~detectors.InterAnnotatorAgreement` (Krippendorff's alpha,
Fleiss' kappa), :class:`~detectors.RaterVsConsensus` (each annotator against the others' plurality, ties
not scored), the items' consensus labels with ties counted (:func:`~detectors.consensus`), each vendor's
agreement (its annotators' leave-one-out comparisons pooled) and each judge's agreement with the
consensus of all annotators (items with a tied consensus are left out).

A vendor's agreement interval counts items, not comparisons: two annotators of one vendor on one item are
compared with nearly the same consensus, so their comparisons are not independent. The variance is the
cluster-robust one of a ratio (items as clusters), and the Wilson interval is taken at the effective size
it implies (at most the number of comparisons).

An item that gains a rater's label is counted again: ``remove`` takes out the version it supersedes (as
``update`` added it), then ``update`` adds the new one, and every figure is as if only the new version had
ever been added: alpha, kappa and the consensus counts depend on the item's labels alone, and each
annotator's comparisons are those of the new version (each label scored once, against the consensus of
the item's other labels so far). If the panel does not hold the old version (started again), no part gives
it up, and the new one is added on top; the vendors' counts of state from before vendors were counted by
item give up only what they hold.

Every part counts the first ``max_categories`` distinct labels (annotators' and judges', as they come) apart
and later new ones as ``other``, on one scale kept for good (:mod:`detectors.kept_labels`): free-form
labels, which grew one aggregate past a changelog record (1.1 MB after 2,000 items of distinct 64-character
labels), cannot grow it without bound, and an item taken out gives back exactly what it added. Agreement
and the consensus are decided on the labels themselves: agreement and ties stay exact, a consensus that is
a folded label counts under ``other`` in :attr:`~RaterPanel.consensus_counts`, alpha and Fleiss' kappa are
lower bounds (:mod:`detectors.multi_rater`), and annotators', vendors' and judges' kappas are those of
their folded tables (two different folded labels in the cell ``(other, other (differs))``).
:attr:`~RaterPanel.folded_labels` says how many of the annotators' labels fold.

Annotators and vendors come and go: updated with the item's event time, :meth:`~RaterPanel.drop_idle`
drops those with no item for a while (their rows, an annotator's vendor, a vendor's comparisons), and the
next new ones take their room under ``max_annotators`` and ``max_vendors`` (until 2026-11-26 the first ones
ever seen held it for good, and every later one was pooled as ``other``). The reliability, the consensus
and the judges are the items' and stay. Where an annotator's or vendor's comparison on an item is counted
(its row, ``other``, or nowhere once the row that held it was dropped) follows from the item's event time
(:mod:`detectors.row_spans`): ``remove`` with it takes out of each part what ``update`` added, whatever
rows were given or dropped in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Self

from detectors.agreement_stats import (
    MAX_CATEGORIES,
    AgreementStats,
    Confusion,
    check_confidence_level,
    check_max_categories,
)
from detectors.base import Detector
from detectors.exceptions import NotHeldError
from detectors.kept_labels import add_folded, comparison_cell, folded_comparisons, folded_counts
from detectors.multi_rater import InterAnnotatorAgreement, consensus, leave_one_out
from detectors.rater_vs_consensus import RaterVsConsensus
from detectors.vendor_consensus import Comparison, VendorConsensus

#: The fields of a panel's state (the vendors' three are :meth:`VendorConsensus.state`'s)
STATE_FIELDS = (
    *("_agreement", "_raters", "_vendor_of", "_vendors", "_vendor_seen", "_vendors_dropped_before"),
    *("_vendors_counts_after", "_vendors_gone", "_consensus", "_ties", "_judges"),
)


class RaterPanel(Detector):
    """Multi-rater agreement of one dimension; ``update(labels, vendors, judges)`` adds one item and
    ``remove`` with the same arguments takes it out (to count it again with a later annotator's label).

    ``labels`` is ``{annotator_id: label}`` (two or more), ``vendors`` ``{annotator_id: vendor_id}`` and
    ``judges`` ``{judge_id: label}`` for the same item. An annotator's vendor is the last one seen.
    Annotators after the first ``max_annotators`` are pooled as ``"other"`` and vendors after the first
    ``max_vendors`` likewise, and labels after the first ``max_categories`` count as ``other`` (see the
    module), so the state stays bounded whatever ids and labels arrive.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(9)
    >>> acc = {"ann": 0.95, "bob": 0.9, "cy": 0.6, "dee": 0.9}
    >>> vendor = {"ann": "v1", "bob": "v1", "cy": "v2", "dee": "v2"}
    >>> panel = RaterPanel()
    >>> for _ in range(500):
    ...     truth = "fail" if rng.random() < 0.3 else "pass"
    ...     raters = rng.sample(sorted(acc), 3)
    ...     labels = {r: truth if rng.random() < acc[r] else rng.choice(["pass", "fail"]) for r in raters}
    ...     judge = truth if rng.random() < 0.85 else rng.choice(["pass", "fail"])
    ...     panel = panel.update(labels, {r: vendor[r] for r in raters}, {"judge-a": judge})
    >>> panel.n_items, panel.ties, panel.consensus_counts
    (500, 0, {'fail': 143, 'pass': 357})
    >>> round(panel.reliability().krippendorff_alpha, 3), round(panel.reliability().fleiss_kappa, 3)
    (0.67, 0.67)
    >>> {v: round(s["agreement"], 3) for v, s in panel.per_vendor.items()}
    {'v1': 0.959, 'v2': 0.876}
    >>> round(panel.judge("judge-a").cohen_kappa, 3)
    0.815
    >>> item = {"ann": "fail", "bob": "pass"}, {"ann": "v1", "bob": "v1"}, {"judge-a": "pass"}
    >>> before = panel.to_dict()
    >>> panel.update(*item).remove(*item).to_dict() == before  # an item in, then out: as it was
    True

    Annotators and vendors that come and go: ``ann`` (of v1) labels all along, with ``cy`` (of v2) until
    day 19 and ``dee`` (of v3) from day 20, pooled as ``other`` while ``cy`` and v2 hold the room, and their
    own once a look drops those, idle for 30 days.

    >>> day = 86400.0
    >>> small, drops = RaterPanel(max_annotators=2, max_vendors=2), {}
    >>> for n in range(60):
    ...     drops[n] = small.drop_idle(now=n * day, idle_seconds=30 * day)
    ...     mate, firm = ("cy", "v2") if n < 20 else ("dee", "v3")
    ...     item = {"ann": "pass", mate: rng.choice(["pass", "fail"])}
    ...     small = small.update(item, {"ann": "v1", mate: firm}, ts=n * day)
    >>> drops[50], sorted(small.per_annotator), sorted(small.per_vendor)
    ((['cy'], ['v2']), ['ann', 'dee', 'other'], ['other', 'v1', 'v3'])
    """

    def __init__(
        self,
        confidence_level: float = 0.95,
        max_annotators: int = 1_000,
        max_vendors: int = 100,
        max_categories: int = MAX_CATEGORIES,
    ) -> None:
        check_confidence_level(confidence_level)
        if max_annotators < 1 or max_vendors < 1:
            raise ValueError("max_annotators and max_vendors must be at least 1")
        check_max_categories(max_categories)
        self.confidence_level = confidence_level
        self.max_annotators = max_annotators
        self.max_vendors = max_vendors
        self.max_categories = max_categories
        self._reset()

    def _reset(self) -> None:
        # the reliability and the annotators' counts keep the same labels (they see the same items, and the
        # judges' labels, in the same order); the other parts count them as the reliability says (counted_as)
        self._agreement = InterAnnotatorAgreement(max_categories=self.max_categories)
        self._raters = RaterVsConsensus(
            self.confidence_level, max_raters=self.max_annotators, max_categories=self.max_categories
        )
        self._vendor_of: dict[str, str] = {}
        self._vendors = VendorConsensus(self.max_vendors)  # stored as three fields of the panel's state
        self._consensus: dict[str, int] = {}
        self._ties = 0
        self._judges: dict[str, AgreementStats] = {}

    def update(
        self,
        labels: dict[str, str],
        vendors: dict[str, str] | None = None,
        judges: dict[str, str] | None = None,
        ts: float | None = None,
    ) -> Self:
        """Add one item; with ``ts`` (its event time) its annotators and vendors keep the newest one."""
        if not isinstance(labels, dict) or not all(isinstance(x, str) for x in labels.values()):
            raise ValueError(f"labels must be a dict of annotator id -> label, got {labels!r}")
        if judges is not None and not all(isinstance(x, str) for x in judges.values()):
            raise ValueError(f"judges must be a dict of judge id -> label, got {judges!r}")
        values = list(labels.values())
        self._agreement.update(values)  # checks there are two or more
        self._raters.update(labels, ts)
        for label in (judges or {}).values():  # so that a judge's table never folds a label on its own
            self._agreement.keep(label)
            self._raters.keep(label)
        vendors = vendors or {}
        for annotator in labels:
            if annotator in vendors and (
                annotator in self._vendor_of or len(self._vendor_of) < self.max_annotators
            ):
                self._vendor_of[annotator] = str(vendors[annotator])
        self._vendors.add(self._vendor_comparisons(labels, vendors), ts)
        agreed, tie = consensus(values)
        if agreed is None:
            self._ties += int(tie)
            return self
        counted = self._agreement.counted_as(agreed)
        self._consensus[counted] = self._consensus.get(counted, 0) + 1
        for judge_id, label in (judges or {}).items():
            stats = self._judges.get(judge_id)
            if stats is None:
                stats = self._judges[judge_id] = self._judge_stats()
            stats.update(*self._judge_cell(label, agreed))
        return self

    def _judge_stats(self) -> AgreementStats:
        # it sees the panel's labels only (at most max_categories of them and "other"), so it folds none
        # itself: its own fold depends on the labels its table holds, and a removal would not find a pair
        # where it was counted (an item then not taken out at all, and counted twice)
        return AgreementStats(confidence_level=self.confidence_level, max_categories=self.max_categories)

    def _judge_cell(self, label: str, agreed: str) -> tuple[str, str]:
        return comparison_cell(label, agreed, self._agreement.counted_as)

    def remove(
        self,
        labels: dict[str, str],
        vendors: dict[str, str] | None = None,
        judges: dict[str, str] | None = None,
        ts: float | None = None,
    ) -> Self:
        """Take out an item ``update`` added with these arguments: from reliability, the annotators, the
        consensus and each judge all together or from none (a panel started again may not hold it: it is
        then left as it is and the new version added on top, counted twice as before items were replaced,
        rather than taken out of some parts and not others, which then disagreed); then from the vendors',
        unless they do not hold it (state from before vendors were counted by item). With ``ts``, the event
        time it was added at, each annotator's and vendor's comparison comes out of where it was counted,
        and of no row dropped since (:meth:`drop_idle`): its comparisons left with it."""
        if not isinstance(labels, dict) or not all(isinstance(x, str) for x in labels.values()):
            raise ValueError(f"labels must be a dict of annotator id -> label, got {labels!r}")
        try:
            self._remove_counts(labels, judges or {}, ts)
        except NotHeldError:
            return self
        with contextlib.suppress(NotHeldError):  # changes nothing when it raises
            self._vendors.remove(self._vendor_comparisons(labels, vendors or {}), ts)
        return self

    def drop_idle(self, now: float, idle_seconds: float) -> tuple[list[str], list[str]]:
        """Drop the annotators and vendors (``other`` too) last seen on an item more than ``idle_seconds``
        before ``now`` (event time): an annotator's row and vendor, a vendor's comparisons, so that later new
        ones take their room; the dropped annotators and vendors, each sorted. One with no event time
        (updated without ``ts``, or state from before 2026-11-26) is stamped ``now``: idle from then on.
        Nothing dropped is an alarm: the panel has none."""
        annotators = self._raters.drop_idle(now, idle_seconds)
        rows = self._raters.last_seen  # every annotator with a row, after the drop
        self._vendor_of = {a: v for a, v in self._vendor_of.items() if a in rows}
        return annotators, self._vendors.drop_idle(now, idle_seconds)

    def _remove_counts(self, labels: dict[str, str], judges: dict[str, str], ts: float | None) -> None:
        """:meth:`remove` but for the vendors; :class:`~detectors.NotHeldError`, changing nothing, if a part
        does not hold the item (the consensus and the judges are checked first, the reliability counts given
        back if the annotators' do not hold it: no copy of the panel, which holds every annotator's row)."""
        values = list(labels.values())
        agreed, tie = consensus(values)
        if agreed is None:
            if tie and self._ties < 1:
                raise NotHeldError("no tie to remove")
        else:
            if self._consensus.get(self._agreement.counted_as(agreed), 0) < 1:
                raise NotHeldError(f"no consensus {agreed!r} to remove")
            for judge_id, label in judges.items():
                stats = self._judges.get(judge_id)
                if stats is None or not stats.holds(*self._judge_cell(label, agreed)):
                    raise NotHeldError(f"no comparison of judge {judge_id!r} to remove")
        self._agreement.remove(values)  # checks there are two or more
        try:
            self._raters.remove(labels, ts)
        except NotHeldError:
            self._agreement.update(values)  # as it was
            raise
        if agreed is None:  # nothing below can fail: checked above
            self._ties -= int(tie)
            return
        counted = self._agreement.counted_as(agreed)
        if self._consensus[counted] > 1:
            self._consensus[counted] -= 1
        else:
            del self._consensus[counted]
        for judge_id, label in judges.items():
            stats = self._judges[judge_id]
            stats.remove(*self._judge_cell(label, agreed))
            if not stats.n:
                del self._judges[judge_id]

    def _vendor_comparisons(self, labels: dict[str, str], vendors: dict[str, str]) -> list[Comparison]:
        """Each annotator of an item against the others' consensus (leave-one-out), with its vendor (labels
        folded as the reliability counts fold them: a folded label equals its consensus only if the two are
        the same label)."""
        return [
            (str(vendors.get(annotator) or self._vendor_of.get(annotator, "unknown")), label, agreed, tie)
            for annotator, label, agreed, tie in folded_comparisons(
                leave_one_out(labels), self._agreement.counted_as
            )
        ]

    @property
    def n_items(self) -> int:
        return self._agreement.n_items

    @property
    def folded_labels(self) -> int:
        """Labels of the items held that count as ``other`` because ``max_categories`` were kept already."""
        return self._agreement.folded_labels

    @property
    def ties(self) -> int:
        """Items whose labels have no single most frequent value."""
        return self._ties

    @property
    def consensus_counts(self) -> dict[str, int]:
        """``{consensus label: items}``, sorted by label (tied items are in :attr:`ties`; a consensus label
        past ``max_categories`` counts under ``other``)."""
        return dict(sorted(self._consensus.items()))

    def reliability(self) -> InterAnnotatorAgreement:
        """Krippendorff's alpha and Fleiss' kappa (the live detector: read only)."""
        return self._agreement

    @property
    def per_annotator(self) -> dict[str, dict[str, Any]]:
        """:attr:`RaterVsConsensus.per_rater` plus each annotator's ``vendor_id``."""
        return {a: {**s, "vendor_id": self._vendor_of.get(a)} for a, s in self._raters.per_rater.items()}

    @property
    def per_vendor(self) -> dict[str, dict[str, Any]]:
        """Per vendor, its annotators' comparisons with the others' consensus pooled: ``n`` (comparisons),
        ``items``, ``effective_n``, ``agreement``, ``agreement_interval`` (over items: see the module),
        ``kappa``, ``ties``, ``annotators`` (of those tracked by id)."""
        annotators: dict[str, int] = {}
        for vendor in self._vendor_of.values():
            annotators[vendor] = annotators.get(vendor, 0) + 1
        return self._vendors.figures(self.confidence_level, annotators)

    @property
    def judges(self) -> list[str]:
        return sorted(self._judges)

    def judge(self, judge_id: str) -> AgreementStats:
        """The judge's labels against the annotators' consensus (the live tracker: read only)."""
        return self._judges[judge_id]

    def to_dict(self) -> dict[str, Any]:
        return self._dict_with(
            {
                "_agreement": self._agreement.to_dict()["state"],
                "_raters": self._raters.to_dict()["state"],
                "_vendor_of": dict(self._vendor_of),
                **self._vendors.state(),
                "_consensus": dict(self._consensus),
                "_ties": self._ties,
                "_judges": {j: s.to_dict()["state"] for j, s in self._judges.items()},
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        panel, state = cls._new_from(data, STATE_FIELDS)

        def restore(detector: Detector, s: dict[str, Any]) -> Any:
            return type(detector).from_dict({**detector.to_dict(), "state": s})

        panel._agreement = restore(panel._agreement, state["_agreement"])  # folds old labels if need be
        raters, vendors, counts = state["_raters"], state.get("_vendors", {}), state["_consensus"]
        judges = state["_judges"]
        if "_kept_labels" not in state["_agreement"]:  # written before labels were capped: on its scale
            category = panel._agreement.counted_as
            tables = {
                a: {**t, "confusion": _folded(t["confusion"], category)} for a, t in raters["_raters"].items()
            }
            raters = {**raters, "_kept_labels": panel._agreement.kept_labels, "_raters": tables}
            vendors = {v: {**t, "confusion": _folded(t["confusion"], category)} for v, t in vendors.items()}
            counts = folded_counts(counts, category)[0]
            judges = {j: {**s, "_confusion": _folded(s["_confusion"], category)} for j, s in judges.items()}
        panel._raters = restore(panel._raters, raters)
        panel._vendor_of = dict(state["_vendor_of"])
        # state written before vendors were counted by item: their figures start again from here; before
        # 2026-11-26, no vendor times (stamped at the next drop_idle) and no drop, and by code of that day
        # no record of where comparisons are counted (detectors.row_spans)
        panel._vendors = VendorConsensus(
            panel.max_vendors,
            vendors,
            state.get("_vendor_seen"),
            state.get("_vendors_dropped_before"),
            state.get("_vendors_counts_after"),
            state.get("_vendors_gone"),
        )
        panel._consensus = dict(counts)
        panel._ties = int(state["_ties"])
        template = panel._judge_stats()
        panel._judges = {j: restore(template, s) for j, s in judges.items()}
        return panel


def _folded(confusion: Confusion, category: Callable[[str], str]) -> Confusion:
    folded: Confusion = {}
    add_folded(folded, confusion, category)
    return folded
