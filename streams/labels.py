"""Bounded metric label values: an allow-list, or the first K distinct values; the rest become ``other``."""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"
UNKNOWN = "unknown"


class LabelGuard:
    """Maps raw values (journeys, model versions, judge ids...) to a bounded set of label values.

    With an ``allow`` list, only those values pass. Without one, the first ``max_values`` distinct values
    seen pass; every later new value becomes ``other``. Either way a metric gets at most
    ``max_values + 2`` values for this label (``other`` and ``unknown`` included).

    >>> guard = LabelGuard(max_values=2)
    >>> [guard("a"), guard("b"), guard("c"), guard("a"), guard(None)]
    ['a', 'b', 'other', 'a', 'unknown']
    """

    def __init__(self, max_values: int = 20, allow: Iterable[str] | None = None) -> None:
        if max_values < 1:
            raise ValueError("max_values must be at least 1")
        self.max_values = max_values
        self.allow = frozenset(allow) if allow is not None else None
        self._admitted: set[str] = set()

    def admit(self, values: Iterable[str]) -> None:
        """Admit ``values`` (in sorted order, while there is room) as if they had been seen first: a process
        restoring state keyed by label values it admitted before restores the same mapping.

        >>> guard = LabelGuard(max_values=2)
        >>> guard.admit(["refund", "other", "payout", "returns"])
        >>> [guard("returns"), guard("payout"), guard("refund")]
        ['other', 'payout', 'refund']
        """
        for value in sorted(set(values) - {OTHER, UNKNOWN}):
            if self.allow is None and len(self._admitted) < self.max_values:
                self._admitted.add(value)

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return UNKNOWN
        if value in self._admitted:
            return value
        if self.allow is not None:
            return value if value in self.allow else OTHER
        if len(self._admitted) < self.max_values and len(value) <= 64:
            self._admitted.add(value)
            return value
        return OTHER
