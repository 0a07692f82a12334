"""Several human raters on the same item: consensus, Krippendorff's alpha and Fleiss' kappa.

Krippendorff's alpha (nominal; Krippendorff 2011, "Computing Krippendorff's alpha-reliability") accepts a
different number of raters per item: with ``n_uc`` the count of label ``c`` in item ``u`` of ``m_u`` labels,
``n_c = sum_u n_uc``, ``n = sum_c n_c`` and ``O = sum_u sum_c n_uc (n_uc - 1) / (m_u - 1)`` (the agreeing
entries of the coincidence matrix), ``alpha = 1 - (n - 1) (n - O) / (n^2 - sum_c n_c^2)``.

Fleiss' kappa (Fleiss 1971) assumes the same number of raters ``m`` on every item, so it is computed over
the items with exactly ``fleiss_raters`` labels, or by default over the items with the most common label
count (ties go to the larger count, which carries more information per item); ``fleiss_raters_used`` and
``fleiss_items`` say which. Both statistics are kept as integer counts per label count ``m``, so they are
exact, JSON-native and mergeable; and an item can be taken out again (``remove``: a version of it that a
later rater's label superseded), leaving the counts as if it had never been added.

The totals count the first ``max_categories`` distinct labels apart and later new ones as ``other``
(:mod:`detectors.kept_labels`), so a free-form dimension cannot grow them without bound. The agreeing pairs
are counted on the labels themselves, so ``O`` and the pairwise agreement stay exact: two different folded
labels do not agree. Only the chance term pools the folded labels, as if they were one label (``n_other^2``
in place of the sum of their squared counts), which can only raise it: alpha and Fleiss' kappa are then at
most what they are with every label apart (lower bounds: the pooling never makes raters look more
reliable), and with no more than ``max_categories`` labels nothing changes. When folded labels are most of
the labels (``folded_labels``), the chance term is nearly all ``other`` and alpha and kappa fall far below
zero (``nan`` once every label is folded): the labels are not a scale.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Self

from detectors.agreement_stats import MAX_CATEGORIES, check_max_categories
from detectors.base import Detector
from detectors.exceptions import NotHeldError
from detectors.kept_labels import KeptLabelScale, folded_counts, is_folded, keep, most_used

NAN = math.nan


def consensus(labels: list[str]) -> tuple[str | None, bool]:
    """The most frequent label (plurality) and whether the top count is tied.

    A tie is reported, not broken: ``(None, True)``. No labels gives ``(None, False)``.

    >>> consensus(["fail", "pass", "fail"]), consensus(["fail", "pass"]), consensus([])
    (('fail', False), (None, True), (None, False))
    """
    if not labels:
        return (None, False)
    ranked = Counter(labels).most_common(2)
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        return (None, True)
    return (ranked[0][0], False)


def leave_one_out(ratings: dict[str, str]) -> list[tuple[str, str, str | None, bool]]:
    """``(rater, label, consensus of the other raters, whether that consensus is tied)`` for each rater of
    one item, in the item's order.

    >>> leave_one_out({"a": "pass", "b": "pass", "c": "fail"})
    [('a', 'pass', None, True), ('b', 'pass', None, True), ('c', 'fail', 'pass', False)]
    """
    return [
        (rater, label, *consensus([x for r, x in ratings.items() if r != rater]))
        for rater, label in ratings.items()
    ]


def check_labels(labels: Any, minimum: int) -> None:
    if not isinstance(labels, list | tuple) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"labels must be a list of strings, got {labels!r}")
    if len(labels) < minimum:
        raise ValueError(f"an item needs labels from at least {minimum} raters, got {len(labels)}")


class InterAnnotatorAgreement(KeptLabelScale, Detector):
    """Krippendorff's alpha (nominal) and Fleiss' kappa over items rated by two or more raters.

    ``update(labels)`` adds one item: the labels its raters gave (order and rater identity do not matter).
    Labels after the first ``max_categories`` distinct ones count as ``other`` in the chance term only (see
    the module; :attr:`folded_labels` says how many of the items' labels do).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(11)
    >>> iaa = InterAnnotatorAgreement()
    >>> for _ in range(300):
    ...     truth = rng.choice(["pass", "fail", "unsure"])
    ...     raters = rng.choice([2, 3, 3, 3, 4])
    ...     labels = [truth if rng.random() < 0.8 else rng.choice(["pass", "fail"]) for _ in range(raters)]
    ...     iaa = iaa.update(labels)
    >>> iaa.n_items, round(iaa.krippendorff_alpha, 3)
    (300, 0.627)
    >>> iaa.fleiss_raters_used, iaa.fleiss_items, round(iaa.fleiss_kappa, 3)
    (3, 193, 0.645)
    >>> free = InterAnnotatorAgreement(max_categories=2)
    >>> for labels in (["pass", "pass"], ["fail", "pass"], ["typo", "typo"], ["n/a", "-"], ["x", "pass"]):
    ...     free = free.update(labels)
    >>> free.counted_as("typo"), free.folded_labels, free.pairwise_agreement  # "n/a" and "-" do not agree
    ('other', 5, 0.4)
    """

    def __init__(self, fleiss_raters: int | None = None, max_categories: int = MAX_CATEGORIES) -> None:
        if fleiss_raters is not None and (
            isinstance(fleiss_raters, bool) or not isinstance(fleiss_raters, int) or fleiss_raters < 2
        ):
            raise ValueError(f"fleiss_raters must be None or an integer >= 2, got {fleiss_raters!r}")
        check_max_categories(max_categories)
        self.fleiss_raters = fleiss_raters
        self.max_categories = max_categories
        self._reset()

    def _reset(self) -> None:
        # by_m[str(m)] = {"items": items with m labels, "pairs": sum_u sum_c n_uc (n_uc - 1) over the labels
        #                 themselves, "totals": {label kept, or "other": sum_u n_uc}}
        self._by_m: dict[str, dict[str, Any]] = {}
        self._kept_labels: list[str] = []  # sorted; only grows, so a label counts where it did (remove)
        self._folded_labels = 0

    def update(self, labels: list[str]) -> InterAnnotatorAgreement:
        check_labels(labels, 2)
        group = self._by_m.setdefault(str(len(labels)), {"items": 0, "pairs": 0, "totals": {}})
        group["items"] += 1
        totals = group["totals"]
        kept = self._kept_labels
        for label, count in Counter(labels).items():
            group["pairs"] += count * (count - 1)
            if label in kept:  # the usual case, inline: this runs for every label of every item
                totals[label] = totals.get(label, 0) + count
                continue
            category = keep(kept, label, self.max_categories)
            totals[category] = totals.get(category, 0) + count
            self._folded_labels += count * is_folded(label, category)
        return self

    def remove(self, labels: list[str]) -> InterAnnotatorAgreement:
        """Take out one item ``update`` added with these labels; raises :class:`~detectors.NotHeldError`,
        changing nothing, if the counts of items with as many labels do not hold them."""
        check_labels(labels, 2)
        key = str(len(labels))
        group = self._by_m.get(key)
        pairs = sum(count * (count - 1) for count in Counter(labels).values())
        counts, folded = folded_counts(Counter(labels), self.counted_as)
        if (
            group is None
            or group["items"] < 1
            or group["pairs"] < pairs
            or any(group["totals"].get(label, 0) < count for label, count in counts.items())
        ):
            raise NotHeldError(f"no item with labels {sorted(labels)!r} to remove")
        group["items"] -= 1
        group["pairs"] -= pairs
        totals = group["totals"]
        for label, count in counts.items():
            totals[label] -= count
            if not totals[label]:
                del totals[label]
        if not group["items"]:
            del self._by_m[key]
        self._folded_labels = max(self._folded_labels - folded, 0)
        return self

    def merge(self, other: InterAnnotatorAgreement) -> InterAnnotatorAgreement:
        """Add ``other``'s items to this tracker (its kept labels while there is room, then ``other``);
        returns ``self``."""
        self._check_mergeable(other)
        for label in other._kept_labels:
            keep(self._kept_labels, label, self.max_categories)
        self._folded_labels += other._folded_labels
        for m, theirs in other._by_m.items():
            group = self._by_m.setdefault(m, {"items": 0, "pairs": 0, "totals": {}})
            group["items"] += theirs["items"]
            group["pairs"] += theirs["pairs"]
            totals, folded = folded_counts(theirs["totals"], self.counted_as)
            self._folded_labels += folded
            for label, count in totals.items():
                group["totals"][label] = group["totals"].get(label, 0) + count
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if "_kept_labels" in data["state"]:
            return super().from_dict(data)
        # written before labels were capped: the most used kept, the others folded
        iaa = super().from_dict({**data, "state": {**data["state"], "_kept_labels": [], "_folded_labels": 0}})
        totals: Counter[str] = Counter()
        for group in iaa._by_m.values():
            totals.update(group["totals"])
        iaa._kept_labels = most_used(totals, iaa.max_categories)
        for group in iaa._by_m.values():
            group["totals"], folded = folded_counts(group["totals"], iaa.counted_as)
            iaa._folded_labels += folded
        return iaa

    @property
    def n_items(self) -> int:
        return sum(g["items"] for g in self._by_m.values())

    @property
    def kept_labels(self) -> list[str]:
        """The labels counted apart (sorted): the first ``max_categories`` distinct ones, kept for good."""
        return list(self._kept_labels)

    @property
    def folded_labels(self) -> int:
        """Labels of the items held that count as ``other`` because ``max_categories`` were kept already."""
        return self._folded_labels

    @property
    def raters_per_item(self) -> dict[int, int]:
        """``{number of labels: number of items}``."""
        return {int(m): g["items"] for m, g in sorted(self._by_m.items(), key=lambda kv: int(kv[0]))}

    def _pairable(self) -> tuple[int, float, dict[str, int]]:
        n = 0
        agreeing = 0.0
        totals: dict[str, int] = {}
        for m, group in self._by_m.items():
            agreeing += group["pairs"] / (int(m) - 1)
            for label, count in group["totals"].items():
                totals[label] = totals.get(label, 0) + count
                n += count
        return n, agreeing, totals

    @property
    def pairwise_agreement(self) -> float:
        """Share of agreeing ordered rater pairs, each item weighted by its number of labels."""
        n, agreeing, _ = self._pairable()
        return agreeing / n if n else NAN

    @property
    def krippendorff_alpha(self) -> float:
        """Nominal alpha; ``nan`` with no items or when a single label was ever used."""
        n, agreeing, totals = self._pairable()
        expected = n * n - sum(c * c for c in totals.values())
        if n < 2 or expected <= 0:
            return NAN
        return 1.0 - (n - 1) * (n - agreeing) / expected

    @property
    def fleiss_raters_used(self) -> int | None:
        """The label count ``m`` of the items Fleiss' kappa uses (``None`` with no items)."""
        if self.fleiss_raters is not None:
            return self.fleiss_raters
        if not self._by_m:
            return None
        return max((g["items"], int(m)) for m, g in self._by_m.items())[1]

    @property
    def fleiss_items(self) -> int:
        m = self.fleiss_raters_used
        group = self._by_m.get(str(m)) if m is not None else None
        return group["items"] if group else 0

    @property
    def fleiss_kappa(self) -> float:
        """Fleiss' kappa over the items with ``fleiss_raters_used`` labels; ``nan`` if undefined."""
        m = self.fleiss_raters_used
        group = self._by_m.get(str(m)) if m is not None else None
        if not group or m is None:
            return NAN
        ratings = group["items"] * m
        p_bar = group["pairs"] / (group["items"] * m * (m - 1))
        p_e = sum((count / ratings) ** 2 for count in group["totals"].values())
        if p_e >= 1.0:
            return NAN
        return (p_bar - p_e) / (1.0 - p_e)

    def summary(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "pairwise_agreement": self.pairwise_agreement,
            "krippendorff_alpha": self.krippendorff_alpha,
            "fleiss_kappa": self.fleiss_kappa,
            "fleiss_raters_used": self.fleiss_raters_used,
            "fleiss_items": self.fleiss_items,
        }
