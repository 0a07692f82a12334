"""Agreement between two raters with uncertainty: Cohen's kappa, Gwet's AC1 and percent agreement.

Every figure comes with a two-sided interval at ``confidence_level`` (95% by default):

- percent agreement ``p_o``: Wilson score interval (Wilson 1927) for a binomial proportion;
- Cohen's kappa ``(p_o - p_e) / (1 - p_e)``, ``p_e = sum_k p_k. p_.k``: Wald interval with the large-sample
  (non-null) variance of Fleiss, Cohen and Everitt (1969, Psychological Bulletin 72, 323-327)::

      var = [ sum_i p_ii (1 - (p_i. + p_.i)(1 - k))^2
              + (1 - k)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
              - (k - p_e (1 - k))^2 ] / (n (1 - p_e)^2)

  (the formula of ``statsmodels.stats.inter_rater.cohens_kappa``);
- Gwet's AC1 (Gwet 2008, BJMSP 61, 29-48) with ``pi_k = (p_k. + p_.k) / 2`` and
  ``p_e = sum_k pi_k (1 - pi_k) / (q - 1)``: Wald interval with Gwet's (2008) variance, no finite-population
  correction::

      var = [ sum_{k,l} p_kl (d_kl - 2 (1 - g)(1 - (pi_k + pi_l) / 2) / (q - 1))^2
              - (p_o - 2 (1 - g) p_e)^2 ] / (n (1 - p_e)^2)

  ``q`` is the number of categories of the scale: ``len(categories)`` when given, otherwise the number of
  distinct labels either rater has used so far (``other`` counting as one).

A custom dimension takes any label, so the table keeps at most ``max_categories`` distinct labels (the first
seen); a later new label of either rater is counted as ``other`` (:func:`fold_pair`), and so is a label
``other`` itself. Two different labels that both fold are a disagreement, counted in the cell
``(other, other (differs))``, so the diagonal holds real agreements only: percent agreement stays exact, and
kappa and AC1 are those of the folded table (rare labels pooled, a standard way to collapse a scale).

Wald intervals are clipped to ``[-1, 1]``; they are large-sample approximations and mean little below a few
dozen pairs. Undefined figures are ``nan``: everything with no pairs; kappa when both raters only ever used
one and the same label (``p_e = 1``); AC1 when ``q < 2``; kappa and AC1 intervals where the standard error,
exact from the counts (not 1e-8 by rounding), is 0: at perfect agreement; for kappa, where a rater only used
one label (kappa 0).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from detectors.base import Detector
from detectors.confusion_table import (
    MAX_CATEGORIES,
    OTHER,
    OTHER_DIFFERS,
    Confusion,
    add_counts,
    check_max_categories,
    fold_pair,
    table_labels,
)
from detectors.exceptions import NotHeldError

NAN = math.nan


def z_value(confidence_level: float) -> float:
    """The two-sided standard-normal quantile for ``confidence_level`` (1.959963984540054 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence_level / 2.0)


def check_confidence_level(confidence_level: float) -> None:
    if not (isinstance(confidence_level, int | float) and 0.0 < confidence_level < 1.0):
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")


def wilson_interval(successes: float, n: float, confidence_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` (``n`` may be an effective, non-integer size).

    ``(nan, nan)`` when ``n <= 0``. Matches ``statsmodels`` ``proportion_confint(method="wilson")``.
    """
    if n <= 0:
        return (NAN, NAN)
    z = z_value(confidence_level)
    p = min(max(successes / n, 0.0), 1.0)
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return (max(centre - half, 0.0), min(centre + half, 1.0))


def _wald(estimate: float, se: float, z: float, low: float, high: float) -> tuple[float, float]:
    """The large-sample interval; undefined (NaN) where the standard error is (exactly) 0: a zero-width
    interval ([1, 1] at perfect agreement over 10 pairs) would read as certainty."""
    if math.isnan(estimate) or math.isnan(se) or se == 0.0:
        return (NAN, NAN)
    return (max(estimate - z * se, low), min(estimate + z * se, high))


def _marginals(confusion: Confusion) -> tuple[int, dict[str, int], dict[str, int]]:
    rows = {a: sum(row.values()) for a, row in confusion.items()}
    cols: dict[str, int] = {}
    for row in confusion.values():
        for b, count in row.items():
            cols[b] = cols.get(b, 0) + count
    return sum(rows.values()), rows, cols


def _spread(weighted: list[tuple[int, int]], n: int) -> int:
    """``n^2`` times the variance of the integer scores of ``(count, score)`` over ``n`` pairs, exactly:
    0 if and only if every pair scores the same."""
    total = sum(count * score for count, score in weighted)
    return n * sum(count * score * score for count, score in weighted) - total * total


def cohen_kappa_with_se(confusion: Confusion) -> tuple[float, float]:
    """Cohen's kappa and its Fleiss-Cohen-Everitt (1969) standard error from ``{a: {b: count}}``, in
    integers (the variance is that of the cells' influences, scaled to integers): 0 when exactly 0."""
    n, rows, cols = _marginals(confusion)
    if n == 0:
        return (NAN, NAN)
    agree = sum(row.get(a, 0) for a, row in confusion.items())
    chance = sum(rows[k] * cols.get(k, 0) for k in rows)  # n^2 p_e
    spare = n * n - chance  # n^2 (1 - p_e)
    if spare <= 0:
        return (NAN, NAN)
    miss = n - agree  # n (1 - p_o); 1 - kappa = n miss / spare
    # a cell's influence on kappa, times spare: diagonal 1 - (p_i. + p_.i)(1 - k), else -(p_.i + p_j.)(1 - k)
    scores = [
        (count, spare - (rows[a] + cols[a]) * miss if a == b else -(cols.get(a, 0) + rows.get(b, 0)) * miss)
        for a, row in confusion.items()
        for b, count in row.items()
    ]
    # var = spread / n^2 / spare^2 / (n (1 - p_e)^2) = spread n / spare^4
    return ((agree * n - chance) / spare, math.sqrt(_spread(scores, n) * n) / (spare * spare))


def gwet_ac1_with_se(confusion: Confusion, q: int | None = None) -> tuple[float, float]:
    """Gwet's AC1 and its Gwet (2008) standard error; ``q`` defaults to the number of labels seen. In
    integers from the counts, as :func:`cohen_kappa_with_se`."""
    n, rows, cols = _marginals(confusion)
    both = {k: rows.get(k, 0) + cols.get(k, 0) for k in set(rows) | set(cols)}  # 2 n pi_k
    q = len(both) if q is None else q
    if n == 0 or q < 2:
        return (NAN, NAN)
    agree = sum(row.get(a, 0) for a, row in confusion.items())
    scale = 4 * n * n * (q - 1)  # p_e = chance / scale
    chance = sum(s * (2 * n - s) for s in both.values())
    spare = scale - chance  # scale (1 - p_e), positive: p_e <= 1 / q
    miss = n - agree  # 1 - ac1 = 4 n (q - 1) miss / spare
    # each cell's influence, times spare: d_kl - 2 (1 - g)(1 - (pi_k + pi_l) / 2) / (q - 1)
    scores = [
        (count, (spare if a == b else 0) - 2 * miss * (4 * n - both[a] - both[b]))
        for a, row in confusion.items()
        for b, count in row.items()
    ]
    # var = spread / n^2 / spare^2 / (n (1 - p_e)^2) = spread scale^2 / (n^3 spare^4)
    se = math.sqrt(_spread(scores, n) / n) * scale / (n * spare * spare)
    return ((4 * n * (q - 1) * agree - chance) / spare, se)


class AgreementStats(Detector):
    """Confusion counts of rater ``a`` (e.g. a judge) against rater ``b`` (e.g. a human), with intervals.

    ``categories`` fixes the label set (AC1's ``q``; other labels raise ``ValueError``); by default it is
    the labels seen so far, the first ``max_categories`` of them: later new ones count as ``other``
    (:func:`fold_pair`; :attr:`folded_labels` says how many). ``merge`` adds another tracker's counts, so
    per-window trackers combine.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> stats = AgreementStats()
    >>> for _ in range(500):
    ...     human = "fail" if rng.random() < 0.1 else "pass"
    ...     judge = human if rng.random() < 0.9 else rng.choice(["pass", "fail"])
    ...     stats = stats.update(judge, human)
    >>> stats.n, round(stats.percent_agreement, 3), round(stats.cohen_kappa, 3), round(stats.gwet_ac1, 3)
    (500, 0.938, 0.757, 0.917)
    >>> [round(x, 3) for x in stats.cohen_kappa_interval]
    [0.676, 0.838]
    >>> intents = AgreementStats(max_categories=3)
    >>> for label in ["refund", "refund", "order", "payout", "login", "login", "signup"]:
    ...     intents = intents.update(label, label if label != "signup" else "sign_up")
    >>> intents.confusion["other"], intents.folded_labels, round(intents.percent_agreement, 3)
    ({'other': 2, 'other (differs)': 1}, 6, 0.857)
    >>> sorted(intents.confusion)  # the first three labels, then "other"
    ['order', 'other', 'payout', 'refund']
    """

    def __init__(
        self,
        categories: list[str] | None = None,
        confidence_level: float = 0.95,
        max_categories: int = MAX_CATEGORIES,
    ) -> None:
        if categories is not None:
            if not all(isinstance(c, str) for c in categories) or len(set(categories)) != len(categories):
                raise ValueError(f"categories must be distinct strings, got {categories!r}")
            if len(categories) < 2:
                raise ValueError("categories needs at least two labels")
        check_confidence_level(confidence_level)
        check_max_categories(max_categories)
        self.categories = categories
        self.confidence_level = confidence_level
        self.max_categories = max_categories
        self._reset()

    def _reset(self) -> None:
        # confusion[a_label][b_label] -> count
        self._confusion: Confusion = {}
        self._n = 0
        self._agree = 0
        self._folded_labels = 0

    def _cell(self, a: str, b: str) -> tuple[str, str, int]:
        if self.categories is not None:  # labels checked against the fixed set: none folds
            return a, b, 0
        return fold_pair(self._confusion, a, b, self.max_categories)

    def counted_as(self, a: str, b: str) -> tuple[str, str]:
        """The cell of the table a pair ``a``, ``b`` would be counted in now (labels folded as ``update``
        would fold them)."""
        a_cell, b_cell, _ = self._cell(a, b)
        return a_cell, b_cell

    def update(self, a: str, b: str) -> AgreementStats:
        if self.categories is not None and (a not in self.categories or b not in self.categories):
            raise ValueError(f"labels {a!r}, {b!r} not in categories {self.categories!r}")
        row = self._confusion.get(a)
        if row is not None and b in row:  # the usual case, inline: this runs for every pair of every tracker
            row[b] += 1
        else:
            a_cell, b_cell, folded = self._cell(a, b)
            row = self._confusion.setdefault(a_cell, {})
            row[b_cell] = row.get(b_cell, 0) + 1
            self._folded_labels += folded
        self._n += 1
        if a == b:
            self._agree += 1
        return self

    def holds(self, a: str, b: str) -> bool:
        """Whether the counts hold a pair ``a``, ``b`` (one :meth:`remove` can take out)."""
        a_cell, b_cell, _ = self._cell(a, b)
        return self._confusion.get(a_cell, {}).get(b_cell, 0) >= 1

    def remove(self, a: str, b: str) -> AgreementStats:
        """Take out one pair ``update`` added, as if it never had been (an emptied cell goes); raises
        :class:`~detectors.NotHeldError`, changing nothing, if the counts hold no such pair. A label counted
        as ``other`` is looked for there while the table is full (a table with room again after a removal
        may count a later pair of such a label under its name, and take that one out instead)."""
        a_cell, b_cell, folded = self._cell(a, b)
        if self._confusion.get(a_cell, {}).get(b_cell, 0) < 1:
            raise NotHeldError(f"no pair {a!r}, {b!r} to remove")
        row = self._confusion[a_cell]
        row[b_cell] -= 1
        if not row[b_cell]:
            del row[b_cell]
            if not row:
                del self._confusion[a_cell]
        self._folded_labels = max(self._folded_labels - folded, 0)
        self._n -= 1
        if a == b:
            self._agree -= 1
        return self

    def merge(self, other: AgreementStats) -> AgreementStats:
        """Add ``other``'s counts to this tracker (same parameters required); returns ``self``."""
        self._check_mergeable(other)
        cap = None if self.categories is not None else self.max_categories
        self._folded_labels += add_counts(self._confusion, other._confusion, cap) + other._folded_labels
        self._n += other._n
        self._agree += other._agree
        return self

    @property
    def n(self) -> int:
        return self._n

    @property
    def confusion(self) -> Confusion:
        """A copy of ``{a_label: {b_label: count}}``."""
        return {a: dict(row) for a, row in self._confusion.items()}

    @property
    def folded_labels(self) -> int:
        """Labels counted as ``other`` because the table already had ``max_categories`` (a pair counts
        0, 1 or 2)."""
        return self._folded_labels

    @property
    def _z(self) -> float:
        return z_value(self.confidence_level)

    @property
    def percent_agreement(self) -> float:
        return self._agree / self._n if self._n else NAN

    @property
    def percent_agreement_interval(self) -> tuple[float, float]:
        """Wilson score interval."""
        return wilson_interval(self._agree, self._n, self.confidence_level)

    @property
    def cohen_kappa(self) -> float:
        return cohen_kappa_with_se(self._confusion)[0]

    @property
    def cohen_kappa_se(self) -> float:
        """Large-sample standard error (Fleiss, Cohen and Everitt 1969)."""
        return cohen_kappa_with_se(self._confusion)[1]

    @property
    def cohen_kappa_interval(self) -> tuple[float, float]:
        return _wald(*cohen_kappa_with_se(self._confusion), self._z, -1.0, 1.0)

    @property
    def _q(self) -> int | None:
        if self.categories is not None:
            return len(self.categories)
        if OTHER in self._confusion and OTHER_DIFFERS in self._confusion[OTHER]:
            return len(table_labels(self._confusion)) - 1  # "other (differs)" is "other", differently
        return None

    @property
    def gwet_ac1(self) -> float:
        return gwet_ac1_with_se(self._confusion, self._q)[0]

    @property
    def gwet_ac1_se(self) -> float:
        """Standard error from Gwet (2008), no finite-population correction."""
        return gwet_ac1_with_se(self._confusion, self._q)[1]

    @property
    def gwet_ac1_interval(self) -> tuple[float, float]:
        return _wald(*gwet_ac1_with_se(self._confusion, self._q), self._z, -1.0, 1.0)

    def summary(self) -> dict[str, Any]:
        """Every figure in one dict (intervals as ``[low, high]`` lists; ``nan`` when undefined)."""
        kappa, kappa_se = cohen_kappa_with_se(self._confusion)
        ac1, ac1_se = gwet_ac1_with_se(self._confusion, self._q)
        return {
            "n": self._n,
            "percent_agreement": self.percent_agreement,
            "percent_agreement_interval": list(self.percent_agreement_interval),
            "cohen_kappa": kappa,
            "cohen_kappa_se": kappa_se,
            "cohen_kappa_interval": list(_wald(kappa, kappa_se, self._z, -1.0, 1.0)),
            "gwet_ac1": ac1,
            "gwet_ac1_se": ac1_se,
            "gwet_ac1_interval": list(_wald(ac1, ac1_se, self._z, -1.0, 1.0)),
        }
