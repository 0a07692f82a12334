"""Agreement between two raters on categorical labels: percent agreement and Cohen's kappa."""

from __future__ import annotations

import math

from detectors.agreement_stats import MAX_CATEGORIES, check_max_categories, fold_pair
from detectors.base import Detector


class AgreementTracker(Detector):
    """Cumulative confusion counts between rater ``a`` (e.g. a judge) and rater ``b`` (e.g. a human).

    Cohen's kappa is ``(p_o - p_e) / (1 - p_e)`` with chance agreement ``p_e`` from the raters' marginals.
    It is undefined (``nan``) with no pairs, or when both raters only ever use one and the same label.
    The table keeps the first ``max_categories`` distinct labels; later new ones count as ``other``, two
    different ones as a disagreement (:func:`~detectors.agreement_stats.fold_pair`), and
    :attr:`folded_labels` says how many labels were.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> tracker = AgreementTracker()
    >>> for _ in range(1000):
    ...     human = rng.choice(["pass", "fail"])
    ...     judge = human if rng.random() < 0.9 else rng.choice(["pass", "fail"])
    ...     tracker = tracker.update(judge, human)
    >>> tracker.n
    1000
    >>> round(tracker.percent_agreement, 3), round(tracker.cohen_kappa, 3)
    (0.941, 0.882)
    >>> intents = AgreementTracker(max_categories=4)
    >>> for i in range(1000):  # a free-form label on one turn in ten, unlike any other
    ...     human = f"query-{i}" if rng.random() < 0.1 else rng.choice(["order", "refund"])
    ...     intents = intents.update(human if rng.random() < 0.9 else "order", human)
    >>> sorted(intents.confusion), intents.folded_labels, round(intents.cohen_kappa, 3)
    (['order', 'other', 'query-14', 'query-2', 'refund'], 168, 0.902)
    """

    def __init__(self, max_categories: int = MAX_CATEGORIES) -> None:
        check_max_categories(max_categories)
        self.max_categories = max_categories
        self._reset()

    def _reset(self) -> None:
        # confusion[a_label][b_label] -> count
        self._confusion: dict[str, dict[str, int]] = {}
        self._n = 0
        self._agree = 0
        self._folded_labels = 0

    def update(self, a: str, b: str) -> AgreementTracker:
        row = self._confusion.get(a)
        if row is not None and b in row:  # the usual case, inline
            row[b] += 1
        else:
            a_cell, b_cell, folded = fold_pair(self._confusion, a, b, self.max_categories)
            row = self._confusion.setdefault(a_cell, {})
            row[b_cell] = row.get(b_cell, 0) + 1
            self._folded_labels += folded
        self._n += 1
        if a == b:
            self._agree += 1
        return self

    @property
    def n(self) -> int:
        return self._n

    @property
    def confusion(self) -> dict[str, dict[str, int]]:
        """A copy of ``{a_label: {b_label: count}}``."""
        return {a: dict(row) for a, row in self._confusion.items()}

    @property
    def folded_labels(self) -> int:
        """Labels counted as ``other`` because the table already had ``max_categories`` (a pair counts
        0, 1 or 2)."""
        return self._folded_labels

    @property
    def percent_agreement(self) -> float:
        return self._agree / self._n if self._n else math.nan

    @property
    def cohen_kappa(self) -> float:
        if not self._n:
            return math.nan
        n = self._n
        a_totals = {a: sum(row.values()) for a, row in self._confusion.items()}
        b_totals: dict[str, int] = {}
        for row in self._confusion.values():
            for b, count in row.items():
                b_totals[b] = b_totals.get(b, 0) + count
        p_e = sum(a_totals.get(k, 0) * b_totals[k] for k in b_totals) / (n * n)
        if p_e >= 1.0:
            return math.nan
        return (self._agree / n - p_e) / (1.0 - p_e)
