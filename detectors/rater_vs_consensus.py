"""Each rater against the consensus of the other raters on the same item (leave-one-out).

For every rater of an item the others' plurality label is its consensus (:func:`~detectors.consensus`); a
tied consensus is not scored, only counted. Counts are kept per rater as a confusion table (rater's label
against the consensus), so agreement, its Wilson interval and Cohen's kappa follow, and an item can be taken
out again (``remove``: a version of it that a later rater's label superseded).

The tables count the first ``max_categories`` distinct labels apart and later new ones as ``other``
(:mod:`detectors.kept_labels`): a rater's label and its consensus that differ but both fold go to the cell
``(other, other (differs))``, as :class:`~detectors.AgreementStats` counts a judge against a human. So
agreement stays exact (the diagonal holds real agreements only), and kappa is that of the folded table.

Raters come and go: a rater's row updated with an event time keeps the newest one, and
:meth:`RaterVsConsensus.drop_idle` drops the rows of raters gone idle, so that new raters take their room
under ``max_raters`` (until 2026-11-26 the first ``max_raters`` ever seen held it for good, and every later
one was pooled as ``other``). Where each comparison is counted (the rater's row, ``other``, or nowhere once
its row was dropped) follows from the rater and the item's event time (:mod:`detectors.row_spans`), so
``remove`` with the item's time takes out what ``update`` added, whatever rows were given or dropped in
between.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Self

from detectors.agreement_stats import (
    MAX_CATEGORIES,
    Confusion,
    check_confidence_level,
    check_max_categories,
    cohen_kappa_with_se,
    wilson_interval,
)
from detectors.base import Detector
from detectors.exceptions import NotHeldError
from detectors.kept_labels import KeptLabelScale, add_folded, folded_comparisons, keep, most_used
from detectors.multi_rater import check_labels, leave_one_out
from detectors.row_spans import OTHER, RowSpans, Span

NAN = math.nan


def add_comparison(tally: dict[str, Any], label: str, agreed: str | None, tie: bool) -> None:
    """Count one rater's ``label`` against the others' consensus ``agreed`` in ``tally`` (``{"confusion":
    {label: {consensus: count}}, "ties": int}``): a tied consensus counts as a tie, not a comparison."""
    if agreed is None:
        tally["ties"] += int(tie)
        return
    row = tally["confusion"].setdefault(label, {})
    row[agreed] = row.get(agreed, 0) + 1


def remove_comparisons(
    tallies: dict[str, dict[str, Any]], comparisons: list[tuple[str, str, str | None, bool]]
) -> None:
    """Take ``comparisons`` (``(who, label, consensus, tie)``, each counted by :func:`add_comparison` in
    ``tallies[who]``) out of ``tallies``, emptied cells and rows too; raises :class:`~detectors.NotHeldError`,
    changing nothing, if the tallies do not hold them all."""
    needed: Counter[tuple[str, str, str | None]] = Counter()  # (who, label, consensus); None: a tie
    for who, label, agreed, tie in comparisons:
        if agreed is not None or tie:
            needed[(who, label if agreed is not None else "", agreed)] += 1
    for (who, label, agreed), n in needed.items():
        tally = tallies.get(who)
        if tally is None:
            held = 0
        else:
            held = tally["ties"] if agreed is None else tally["confusion"].get(label, {}).get(agreed, 0)
        if held < n:
            raise NotHeldError(f"{who!r} holds no {n} such comparisons to remove")
    for (who, label, agreed), n in needed.items():
        tally = tallies[who]
        if agreed is None:
            tally["ties"] -= n
            continue
        row = tally["confusion"][label]
        row[agreed] -= n
        if not row[agreed]:
            del row[agreed]
            if not row:
                del tally["confusion"][label]


def _check_ratings(ratings: Any) -> None:
    if not isinstance(ratings, dict) or not all(
        isinstance(r, str) and isinstance(x, str) for r, x in ratings.items()
    ):
        raise ValueError(f"ratings must be a dict of rater id -> label, got {ratings!r}")
    check_labels(list(ratings.values()), 2)


#: Where raters beyond ``max_raters`` are pooled
OTHER_RATERS = OTHER


class RaterVsConsensus(KeptLabelScale, Detector):
    """Each rater's agreement with the consensus of the *other* raters on the same item (leave-one-out).

    ``update(ratings)`` takes ``{rater_id: label}`` for one item with at least two raters. For every rater,
    the consensus of the others is their plurality label; when it is tied the rater is not scored on that
    item and ``ties`` counts it. ``per_rater`` gives, per rater, the items scored, agreement with its Wilson
    interval, Cohen's kappa against the consensus, and ties. Raters after the first ``max_raters`` are
    pooled as ``"other"``: a labelling tool minting an id per label must not grow the state without bound.
    Labels after the first ``max_categories`` distinct ones count as ``other`` (see the module): agreement
    stays exact, kappa is that of the folded table.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(5)
    >>> raters = {"ann": 0.95, "bob": 0.9, "cy": 0.6}
    >>> rvc = RaterVsConsensus()
    >>> def label(truth, accuracy):
    ...     return truth if rng.random() < accuracy else rng.choice(["pass", "fail"])
    >>> for _ in range(400):
    ...     truth = "fail" if rng.random() < 0.3 else "pass"
    ...     item = {rater: label(truth, accuracy) for rater, accuracy in raters.items()}
    ...     rvc = rvc.update(item)
    >>> {r: round(s["agreement"], 3) for r, s in rvc.per_rater.items()}
    {'ann': 0.967, 'bob': 0.936, 'cy': 0.795}

    Annotators that turn over, two new ones a day: the rows of idle ones give their room to new ones, where
    without :meth:`drop_idle` every annotator past the first four is pooled as ``other``.

    >>> day = 86400.0
    >>> kept, forever = RaterVsConsensus(max_raters=4), RaterVsConsensus(max_raters=4)
    >>> for n in range(1, 7):
    ...     dropped = kept.drop_idle(now=n * day, idle_seconds=1.5 * day)
    ...     item = {f"a{n}": "pass", f"b{n}": label("pass", 0.9)}
    ...     kept, forever = kept.update(item, ts=n * day), forever.update(item, ts=n * day)
    >>> forever.raters, kept.raters, dropped
    (['a1', 'a2', 'b1', 'b2', 'other'], ['a5', 'a6', 'b5', 'b6'], ['a4', 'b4'])
    """

    def __init__(
        self, confidence_level: float = 0.95, max_raters: int = 1_000, max_categories: int = MAX_CATEGORIES
    ) -> None:
        check_confidence_level(confidence_level)
        if max_raters < 1:
            raise ValueError(f"max_raters must be at least 1, got {max_raters}")
        check_max_categories(max_categories)
        self.confidence_level = confidence_level
        self.max_raters = max_raters
        self.max_categories = max_categories
        self._reset()

    def _reset(self) -> None:
        # raters[rater_id] = {"confusion": {rater_label: {consensus_label: count}}, "ties": int}; raters
        # after the first max_raters are pooled under OTHER_RATERS, labels after the first max_categories
        # under "other", so the state stays bounded
        self._raters: dict[str, dict[str, Any]] = {}
        self._items = 0
        self._kept_labels: list[str] = []  # sorted; only grows, so a label counts where it did (remove)
        # rows updated with an event time: the newest one (state from before 2026-11-26 has none)
        self._last_seen: dict[str, float] = {}
        # where comparisons are counted by the item's time (detectors.row_spans): the start of each row
        # given while other (or a dropped row of its rater) may hold its rater's comparisons, the spans of
        # the rows dropped, and the horizon the oldest spans were forgotten into
        self._counts_after: dict[str, float] = {}
        self._gone: dict[str, list[Span]] = {}
        self._dropped_before: float | None = None

    def update(self, ratings: dict[str, str], ts: float | None = None) -> RaterVsConsensus:
        """Add one item; with ``ts`` (its event time) each of its raters' rows keeps the newest one."""
        _check_ratings(ratings)
        self._items += 1
        for label in ratings.values():  # kept in the item's order, as InterAnnotatorAgreement keeps them
            if label not in self._kept_labels:
                keep(self._kept_labels, label, self.max_categories)
        spans, other_seen = self._spans(), self._last_seen.get(OTHER_RATERS)  # other's before this item
        for rater, label, agreed, tie in folded_comparisons(leave_one_out(ratings), self.counted_as):
            where = spans.count_in(rater, ts, self.max_raters, other_seen)
            if where is None:  # a rater's comparison on an item of a dropped row's span: gone with it
                continue
            add_comparison(self._raters.setdefault(where, {"confusion": {}, "ties": 0}), label, agreed, tie)
            if ts is not None:
                seen = self._last_seen.get(where)
                if seen is None or ts > seen:
                    self._last_seen[where] = float(ts)
        return self

    def _spans(self) -> RowSpans:
        return RowSpans(self._raters, self._last_seen, self._counts_after, self._gone, self._dropped_before)

    def _full(self) -> bool:
        """Whether ``max_raters`` raters have rows of their own (``other``'s takes no room: once raters
        are dropped, a new one takes the first place they free)."""
        return len(self._raters) - (OTHER_RATERS in self._raters) >= self.max_raters

    def remove(self, ratings: dict[str, str], ts: float | None = None) -> RaterVsConsensus:
        """Take out one item ``update`` added with these ratings and ``ts`` (a rater keeps its row, emptied
        or not, so the cap pools the same raters); raises :class:`~detectors.NotHeldError`, changing
        nothing, if the counts do not hold its comparisons. Each comes out of where the item's time says it
        was counted: its rater's row, ``other``, or nowhere if that row was dropped since
        (:meth:`drop_idle`). Without ``ts``: its rater's row, if it has one, else ``other``."""
        _check_ratings(ratings)
        if self._items < 1:
            raise NotHeldError("no item to remove")
        spans = self._spans()
        comparisons = []
        for rater, label, agreed, tie in folded_comparisons(leave_one_out(ratings), self.counted_as):
            where = spans.counted_in(rater, ts)
            if where is not None:
                comparisons.append((where, label, agreed, tie))
        remove_comparisons(self._raters, comparisons)
        self._items -= 1
        return self

    def drop_idle(self, now: float, idle_seconds: float) -> list[str]:
        """Drop the rows of the raters (``other`` too) last scored more than ``idle_seconds`` before ``now``
        (event time), so that later new raters take their room; the dropped raters, sorted. A row with no
        event time (updated without ``ts``, or state from before 2026-11-26) is stamped ``now``: idle from
        then on. Their comparisons go with them: on items of their spans, their raters' count nowhere
        (:mod:`detectors.row_spans`). The item count and the kept labels stay: they are the items'."""
        spans = self._spans()
        dropped = spans.drop_idle(now, idle_seconds)
        self._dropped_before = spans.dropped_before
        return dropped

    def merge(self, other: RaterVsConsensus) -> RaterVsConsensus:
        """Add ``other``'s counts to this tracker (its kept labels while there is room, then ``other``), and
        its records of where comparisons are counted; returns ``self``."""
        self._check_mergeable(other)
        self._items += other._items
        for label in other._kept_labels:
            keep(self._kept_labels, label, self.max_categories)
        for rater, theirs in other._raters.items():
            theirs_seen = other._last_seen.get(rater)
            if rater not in self._raters and self._full():
                rater = OTHER_RATERS
            entry = self._raters.setdefault(rater, {"confusion": {}, "ties": 0})
            entry["ties"] += theirs["ties"]
            add_folded(entry["confusion"], theirs["confusion"], self.counted_as)
            ours_seen = self._last_seen.get(rater)
            if theirs_seen is not None and (ours_seen is None or theirs_seen > ours_seen):
                self._last_seen[rater] = theirs_seen
        for rater, after in other._counts_after.items():  # the later start, of the rows kept apart
            if rater in self._raters:
                self._counts_after[rater] = max(after, self._counts_after.get(rater, after))
        for rater, spans in other._gone.items():
            self._gone.setdefault(rater, []).extend(list(span) for span in spans)
        if other._dropped_before is not None:
            self._dropped_before = max(other._dropped_before, self._dropped_before or other._dropped_before)
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if "_kept_labels" in data["state"]:
            return super().from_dict(data)
        # written before labels were capped: the most used kept, the others folded
        rvc = super().from_dict({**data, "state": {**data["state"], "_kept_labels": []}})
        uses: Counter[str] = Counter()
        for entry in rvc._raters.values():
            for label, row in entry["confusion"].items():
                uses[label] += sum(row.values())
                uses.update(row)
        rvc._kept_labels = most_used(uses, rvc.max_categories)
        for entry in rvc._raters.values():
            confusion, entry["confusion"] = entry["confusion"], {}
            add_folded(entry["confusion"], confusion, rvc.counted_as)
        return rvc

    @property
    def n_items(self) -> int:
        return self._items

    @property
    def raters(self) -> list[str]:
        return sorted(self._raters)

    @property
    def last_seen(self) -> dict[str, float]:
        """Rater -> the newest event time of its updates (raters without one: none had one, or state from
        before 2026-11-26 not yet stamped by :meth:`drop_idle`)."""
        return dict(self._last_seen)

    def confusion(self, rater: str) -> Confusion:
        """A copy of ``{rater_label: {consensus_label: count}}`` for ``rater``."""
        entry = self._raters.get(rater, {"confusion": {}})
        return {a: dict(row) for a, row in entry["confusion"].items()}

    @property
    def per_rater(self) -> dict[str, dict[str, Any]]:
        """``{rater: {"n", "agreement", "agreement_interval", "kappa", "ties"}}``, raters sorted."""
        result: dict[str, dict[str, Any]] = {}
        for rater in self.raters:
            entry = self._raters[rater]
            confusion: Confusion = entry["confusion"]
            n = sum(sum(row.values()) for row in confusion.values())
            agree = sum(row.get(label, 0) for label, row in confusion.items())
            result[rater] = {
                "n": n,
                "agreement": agree / n if n else NAN,
                "agreement_interval": list(wilson_interval(agree, n, self.confidence_level)),
                "kappa": cohen_kappa_with_se(confusion)[0],
                "ties": entry["ties"],
            }
        return result
