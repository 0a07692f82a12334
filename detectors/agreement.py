"""Agreement between two raters on categorical labels: percent agreement and Cohen's kappa."""

from __future__ import annotations

import math

from detectors.base import Detector


class AgreementTracker(Detector):
    """Cumulative confusion counts between rater ``a`` (e.g. a judge) and rater ``b`` (e.g. a human).

    Cohen's kappa is ``(p_o - p_e) / (1 - p_e)`` with chance agreement ``p_e`` from the raters' marginals.
    It is undefined (``nan``) with no pairs, or when both raters only ever use one and the same label.

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
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # confusion[a_label][b_label] -> count
        self._confusion: dict[str, dict[str, int]] = {}
        self._n = 0
        self._agree = 0

    def update(self, a: str, b: str) -> AgreementTracker:
        row = self._confusion.setdefault(a, {})
        row[b] = row.get(b, 0) + 1
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
