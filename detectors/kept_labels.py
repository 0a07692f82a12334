"""The labels a multi-rater tracker counts apart: the first ``max_categories`` distinct ones, kept for good.

Annotators' labels of a custom dimension are free-form strings, and a labelling tool can send a new one with
every item (free text, or an id by mistake): counted apart, each grew Krippendorff's totals, the consensus
counts and every annotator's and vendor's confusion table without bound. So a tracker keeps the first
``max_categories`` distinct labels it sees (the list only grows: a label stays kept when its counts go back
to zero) and counts every later new one as ``other``, as :func:`~detectors.agreement_stats.fold_pair` does
for a judge against a human. A label therefore counts in the same place when its item is taken out again
(``remove``) as when it was added. A label ``other`` (or ``other (differs)``) counts as ``other`` without
folding. Whether two labels agree is always decided on the labels themselves: two different folded labels
are a disagreement (in a confusion table, the cell ``(other, other (differs))``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from detectors.agreement_stats import OTHER, OTHER_DIFFERS, Confusion

_RESERVED = (OTHER, OTHER_DIFFERS)
#: ``(who, label, consensus of the others, whether it is tied)``, as :func:`~detectors.leave_one_out` gives
Comparison = tuple[str, str, str | None, bool]


def keep(kept: list[str], label: str, max_categories: int) -> str:
    """The category ``label`` counts in: itself if ``kept`` (sorted) holds it or has room for it (it is then
    kept), :data:`OTHER` otherwise."""
    if label in kept:
        return label
    if label in _RESERVED or len(kept) >= max_categories:
        return OTHER
    bisect.insort(kept, label)
    return label


def counted_as(kept: list[str], label: str, max_categories: int) -> str:
    """:func:`keep`, keeping nothing: where an item added before counted ``label`` (a label not kept while
    there is room was never seen)."""
    if label in kept:
        return label
    return OTHER if label in _RESERVED or len(kept) >= max_categories else label


class KeptLabelScale:
    """``counted_as`` and ``keep`` for a tracker that keeps its labels in ``_kept_labels`` (sorted, only
    growing) up to ``max_categories``."""

    max_categories: int
    _kept_labels: list[str]

    def counted_as(self, label: str) -> str:
        """The label ``label`` counts in: itself, or ``other`` (past ``max_categories``)."""
        if label in self._kept_labels:  # the usual case, inline
            return label
        return counted_as(self._kept_labels, label, self.max_categories)

    def keep(self, label: str) -> str:
        """Count ``label`` apart from now on if there is room (a label another rater gives on the same
        scale); returns what it counts as."""
        if label in self._kept_labels:  # the usual case, inline
            return label
        return keep(self._kept_labels, label, self.max_categories)


def is_folded(label: str, category: str) -> bool:
    """Whether ``label`` counts as ``other`` for want of room (not for its name)."""
    return category == OTHER and label not in _RESERVED


def comparison_cell(label: str, agreed: str, category: Callable[[str], str]) -> tuple[str, str]:
    """The confusion cell of ``label`` against the consensus ``agreed``, each counted as ``category`` says; if
    they differ but both count as ``other``, ``(other, other (differs))``: not an agreement."""
    cell, agreed_cell = category(label), category(agreed)
    if cell == agreed_cell == OTHER and label != agreed:
        agreed_cell = OTHER_DIFFERS
    return cell, agreed_cell


def folded_comparisons(comparisons: list[Comparison], category: Callable[[str], str]) -> list[Comparison]:
    """The comparisons of one item (:func:`~detectors.leave_one_out`: every consensus is one of the item's
    labels) in the cells :func:`comparison_cell` gives (a tie's label as ``category`` says)."""
    cells = {label: category(label) for _, label, _, _ in comparisons}
    if all(label == cell for label, cell in cells.items()):  # the usual case: no label folds
        return comparisons
    folded: list[Comparison] = []
    for who, label, agreed, tie in comparisons:
        if agreed is None:
            folded.append((who, cells[label], None, tie))
        else:
            folded.append((who, *comparison_cell(label, agreed, cells.__getitem__), tie))
    return folded


def add_folded(target: Confusion, confusion: Confusion, category: Callable[[str], str]) -> None:
    """Add the counts of ``confusion`` to ``target``, each in the cell :func:`comparison_cell` gives (a cell
    folded already stays where it is)."""
    for label, row in confusion.items():
        for agreed, count in row.items():
            cell, agreed_cell = comparison_cell(label, agreed, category)
            cells = target.setdefault(cell, {})
            cells[agreed_cell] = cells.get(agreed_cell, 0) + count


# -- state written before labels were capped -------------------------------------------------------------


def most_used(counts: dict[str, int], max_categories: int) -> list[str]:
    """The labels to keep of state written before labels were capped: the ``max_categories`` most counted
    (ties by name), sorted; the others fold into ``other``, which shrinks an aggregate a free-form dimension
    had grown."""
    ranked = sorted((label for label in counts if label not in _RESERVED), key=lambda x: (-counts[x], x))
    return sorted(ranked[:max_categories])


def folded_counts(counts: dict[str, int], category: Callable[[str], str]) -> tuple[dict[str, int], int]:
    """``{label: count}`` with the labels counted as ``category`` says, and how many counts folded."""
    result: dict[str, int] = {}
    folded = 0
    for label, count in counts.items():
        cell = category(label)
        result[cell] = result.get(cell, 0) + count
        folded += count * is_folded(label, cell)
    return result, folded
