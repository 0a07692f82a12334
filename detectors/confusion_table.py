"""Bounded confusion tables of two raters: ``{a_label: {b_label: count}}`` holding at most ``max_categories``
distinct labels (the first seen); a later new label of either rater is counted as ``other``, and two different
labels that both fold go to the cell ``(other, other (differs))``, off the diagonal (see
:mod:`detectors.agreement_stats`).
"""

from __future__ import annotations

Confusion = dict[str, dict[str, int]]
#: Distinct labels a confusion table keeps by default: the pass/fail quality dimensions use 2, the
#: generator's intents 10; a table holds up to (k + 2)^2 cells, so the cap bounds its size whatever labels
#: arrive (a free-form custom dimension grew one aggregate past the changelog record limit).
MAX_CATEGORIES = 32
#: The category of labels past ``max_categories``; a label ``other`` counts there too.
OTHER = "other"
#: Column of a pair whose two labels both fold into ``other`` but differ: a disagreement, off the diagonal.
OTHER_DIFFERS = "other (differs)"
_FOLDED = (OTHER, OTHER_DIFFERS)


def check_max_categories(max_categories: int) -> None:
    if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 2:
        raise ValueError(f"max_categories must be an integer of at least 2, got {max_categories!r}")


def table_labels(confusion: Confusion) -> set[str]:
    """Labels of either rater in ``confusion`` (``other`` included, if there)."""
    labels = set(confusion)
    for row in confusion.values():
        labels.update(row)
    return labels


def fold_pair(confusion: Confusion, a: str, b: str, max_categories: int) -> tuple[str, str, int]:
    """The cell ``(a, b)`` is counted in and how many of the two labels fold into :data:`OTHER`.

    A label keeps its name if the table has it, or has room for it: at most ``max_categories`` labels, not
    counting ``other``. A label ``other`` (or ``other (differs)``) counts as ``other`` without folding. Two
    different labels that both end in ``other`` go to column ``other (differs)``: not an agreement.

    >>> fold_pair({"pass": {"pass": 3}}, "fail", "pass", 2), fold_pair({"pass": {"fail": 1}}, "x", "y", 2)
    (('fail', 'pass', 0), ('other', 'other (differs)', 2))
    """
    row = confusion.get(a)
    if row is not None and b in row:  # the usual case: the cell is there
        return a, b, 0
    labels: set[str] | None = None
    cell = []
    folded = 0
    for label in (a, b):
        if label in _FOLDED:
            cell.append(OTHER)
            continue
        if labels is None:
            labels = table_labels(confusion)
            labels.difference_update(_FOLDED)
        if label not in labels and len(labels) >= max_categories:
            cell.append(OTHER)
            folded += 1
        else:
            labels.add(label)
            cell.append(label)
    if cell[0] == cell[1] == OTHER and a != b:
        cell[1] = OTHER_DIFFERS
    return cell[0], cell[1], folded


def add_counts(mine: Confusion, theirs: Confusion, max_categories: int | None) -> int:
    """Add the cells of ``theirs`` to ``mine``, folding labels past ``max_categories`` as :func:`fold_pair`
    does (``None``: none folds); returns how many labels folded."""
    folded = 0
    for a, row in theirs.items():
        for b, count in row.items():
            a_cell, b_cell, n = (a, b, 0) if max_categories is None else fold_pair(mine, a, b, max_categories)
            target = mine.setdefault(a_cell, {})
            target[b_cell] = target.get(b_cell, 0) + count
            folded += n * count
    return folded
