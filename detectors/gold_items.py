"""How raters fare on each dimension of one golden turn: the counts behind a per-item gold audit.

Gold accuracy per rater says who misses the golden set, not which items: when every vendor and the judge
miss the same items, the expected answer is the likelier mistake. :class:`GoldItemTally` keeps, for one
golden turn and one group of raters, per dimension of its truth the expected label and two counts (labels
scored, labels that missed it); nothing else, so its state stays a few dozen bytes per dimension.
"""

from __future__ import annotations

from typing import Self

from detectors.base import Detector


class GoldItemTally(Detector):
    """Labels scored on each dimension of one golden turn, and how many missed its expected label.

    ``update(labels, truth)`` scores ``labels`` (dimension -> label, one rater's) on the dimensions of
    ``truth`` (the turn's expected labels) that they have; other dimensions are not scored. A dimension
    whose expected label changed (the golden set was corrected) starts counting again.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> truth = {"safety": "pass", "helpfulness": "fail"}  # the second expected answer is wrong
    >>> tally = GoldItemTally()
    >>> for _ in range(12):
    ...     labels = {d: "pass" if rng.random() < 0.9 else "fail" for d in ("safety", "helpfulness")}
    ...     tally = tally.update(labels, truth)
    >>> tally.counts
    {'helpfulness': ('fail', 12, 11), 'safety': ('pass', 12, 1)}
    >>> tally = tally.update({"helpfulness": "pass"}, {**truth, "helpfulness": "pass"})  # corrected
    >>> tally.counts["helpfulness"]
    ('pass', 1, 0)
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._counts: dict[str, list[str | int]] = {}  # dimension -> [expected, scored, missed]

    def update(self, labels: dict[str, str], truth: dict[str, str]) -> Self:
        for dimension, expected in truth.items():
            given = labels.get(dimension)
            if given is None:
                continue
            counts = self._counts.get(dimension)
            if counts is None or counts[0] != expected:
                counts = self._counts[dimension] = [expected, 0, 0]
            counts[1] = int(counts[1]) + 1
            counts[2] = int(counts[2]) + (given != expected)
        return self

    def merge(self, other: GoldItemTally) -> Self:
        """Add ``other``'s counts to this tally's; returns ``self``. ``ValueError`` if a dimension's
        expected labels differ (counts against different answers do not add up)."""
        self._check_mergeable(other)
        for dimension, (expected, scored, missed) in other.counts.items():
            counts = self._counts.setdefault(dimension, [expected, 0, 0])
            if counts[0] != expected:
                raise ValueError(f"{dimension}: counts against {counts[0]!r} and {expected!r} do not add up")
            counts[1] = int(counts[1]) + scored
            counts[2] = int(counts[2]) + missed
        return self

    @property
    def counts(self) -> dict[str, tuple[str, int, int]]:
        """dimension -> (expected label, labels scored, labels that missed it), sorted by dimension."""
        return {d: (str(c[0]), int(c[1]), int(c[2])) for d, c in sorted(self._counts.items())}
