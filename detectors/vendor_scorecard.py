"""Labelling scorecards: per vendor and annotator, over a sliding event-time window of label times.

:class:`VendorScorecard` keeps an :class:`~detectors.EventTimeWindows` ring of
:class:`~detectors.label_tally.LabelTally` buckets, folds vendors and annotators beyond its caps into
``other`` (globally, not per bucket), and reads a :class:`~detectors.label_tally.Scorecard` per vendor or
annotator: labels per hour, turnaround quantiles from a bounded histogram, gold accuracy, agreement with
the judges and with the other annotators' consensus. Targets are in ``streams/vendor_sla.py``; breaches are
kept by :class:`~detectors.sla_status.SlaStatus`.
"""

from __future__ import annotations

import copy
from typing import Any, Self

from detectors.base import Detector
from detectors.label_tally import ALL, OTHER, LabelTally, Scorecard, check_bounds
from detectors.windowed import EventTimeWindows


class VendorScorecard(Detector):
    """Scorecards of every vendor and annotator over the last ``window_seconds`` of label event time.

    ``update(ts, vendor, annotator, turnaround=None, gold=(0, 0), judge=(0, 0), consensus=(0, 0))`` adds,
    at event time ``ts``, one label (when ``turnaround`` is given) and comparisons as (agreeing, total).
    Past ``max_vendors`` vendors, or ``max_annotators`` annotators in all, new ones are counted under
    ``other``. Events older than the window are dropped (:attr:`too_late`).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(8)
    >>> card = VendorScorecard(window_seconds=7200, bucket_seconds=600, max_annotators=4)
    >>> ts = 0.0
    >>> for _ in range(600):
    ...     ts += rng.expovariate(1 / 30)
    ...     vendor = rng.choice(["vendor-a", "vendor-b"])
    ...     delay = rng.expovariate(1 / (600 if vendor == "vendor-a" else 2400))
    ...     ok = rng.random() < (0.95 if vendor == "vendor-a" else 0.8)
    ...     card = card.update(ts, vendor, f"{vendor[-1]}{rng.randint(1, 3)}", delay, judge=(int(ok), 1))
    >>> round(card.watermark), card.window_start, card.vendors, card.annotators("vendor-b")
    (17397, 10200, ['vendor-a', 'vendor-b'], ['b1', 'b2', 'other'])
    >>> a, b = card.scorecard("vendor-a"), card.scorecard("vendor-b")
    >>> a.labels, round(a.labels_per_hour, 1), round(a.quantile(0.9)), round(a.judge_agreement, 3)
    (137, 68.5, 1603, 0.934)
    >>> b.labels, round(b.quantile(0.9)), round(b.judge_agreement, 3), b.within(3600) / b.labels > 0.9
    (121, 6316, 0.793, False)
    """

    def __init__(
        self,
        window_seconds: int = 86400,
        bucket_seconds: int = 3600,
        turnaround_bounds: list[float] | None = None,
        max_vendors: int = 50,
        max_annotators: int = 100,
    ) -> None:
        for name, cap in (("max_vendors", max_vendors), ("max_annotators", max_annotators)):
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ValueError(f"{name} must be a positive integer, got {cap!r}")
        check_bounds(turnaround_bounds)
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self.turnaround_bounds = turnaround_bounds
        self.max_vendors = max_vendors
        self.max_annotators = max_annotators
        self._reset()  # the ring checks the window sizes

    def _ring(self) -> EventTimeWindows:
        return EventTimeWindows(
            f"{LabelTally.__module__}.LabelTally",
            {"turnaround_bounds": self.turnaround_bounds},
            self.window_seconds,
            self.bucket_seconds,
        )

    def _reset(self) -> None:
        self._windows = self._ring()
        # vendor -> annotator (or "*") -> event time of its first label (None: no label yet); also the
        # set of vendors and annotators tracked under their own names
        self._seen: dict[str, dict[str, float | None]] = {}

    def _fold(self, vendor: str, annotator: str) -> tuple[str, str]:
        if vendor not in self._seen and (
            vendor == OTHER or sum(v != OTHER for v in self._seen) >= self.max_vendors
        ):
            vendor = OTHER
        known = self._seen.get(vendor, {})
        if annotator not in known:
            tracked = sum(a not in (ALL, OTHER) for rows in self._seen.values() for a in rows)
            if tracked >= self.max_annotators:
                annotator = OTHER
        return vendor, annotator

    def update(
        self,
        ts: float,
        vendor: str,
        annotator: str,
        turnaround: float | None = None,
        gold: tuple[int, int] = (0, 0),
        judge: tuple[int, int] = (0, 0),
        consensus: tuple[int, int] = (0, 0),
    ) -> Self:
        if not isinstance(vendor, str) or not vendor or not isinstance(annotator, str) or not annotator:
            raise ValueError(f"vendor and annotator must be non-empty strings, got {vendor!r}, {annotator!r}")
        vendor, annotator = self._fold(vendor, annotator)
        dropped = self._windows.too_late
        self._windows.update(ts, vendor, annotator, turnaround, gold, judge, consensus)
        if self._windows.too_late > dropped:
            return self
        rows = self._seen.setdefault(vendor, {})
        for who in (ALL, annotator):
            first = rows.get(who)
            if turnaround is not None and (first is None or ts < first):
                rows[who] = float(ts)
            else:
                rows.setdefault(who, None)
        return self

    def remove(self, ts: float, vendor: str, annotator: str, consensus: tuple[int, int]) -> Self:
        """Take out consensus comparisons ``update`` added at ``ts``, if they are still in the window (an
        item superseded by a later annotator's label); raises :class:`~detectors.NotHeldError`, changing
        nothing, if their bucket does not hold them."""
        self._windows.remove(ts, *self._fold(vendor, annotator), consensus)
        return self

    @property
    def watermark(self) -> float | None:
        """The newest label event time seen (``None`` before the first)."""
        return self._windows.watermark

    @property
    def window_start(self) -> int | None:
        return self._windows.window_start

    @property
    def too_late(self) -> int:
        """Events dropped because they were older than the window."""
        return self._windows.too_late

    @property
    def vendors(self) -> list[str]:
        """Vendors seen, sorted (``other`` holds those past ``max_vendors``)."""
        return sorted(self._seen)

    def annotators(self, vendor: str) -> list[str]:
        return sorted(a for a in self._seen.get(vendor, {}) if a != ALL)

    def window(self) -> LabelTally:
        """The counts of the current window, merged (a new tally)."""
        tally = self._windows.window()
        assert isinstance(tally, LabelTally)
        return tally

    def scorecard(self, vendor: str, annotator: str = ALL, tally: LabelTally | None = None) -> Scorecard:
        """The figures of ``vendor`` (or one of its annotators) over the window; pass ``tally`` (from
        :meth:`window`) to read many scorecards from one merge."""
        tally = tally if tally is not None else self.window()
        row = tally.row(vendor, annotator)
        first = self._seen.get(vendor, {}).get(annotator)
        start, now = self.window_start, self.watermark
        covered, full = 0.0, False
        if first is not None and start is not None and now is not None:
            covered, full = now - max(float(start), first), first <= start
        return Scorecard(
            labels=row["labels"],
            covered_seconds=max(covered, 0.0),
            full_window=full,
            bounds=tally.bounds,
            histogram=tuple(row["turnaround"]),
            gold=(row["gold"][0], row["gold"][1]),
            judge=(row["judge"][0], row["judge"][1]),
            consensus=(row["consensus"][0], row["consensus"][1]),
        )

    def to_dict(self) -> dict[str, Any]:
        return self._dict_with(
            {"_windows": self._windows.to_dict()["state"], "_seen": copy.deepcopy(self._seen)}
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        card, state = cls._new_from(data, ("_windows", "_seen"))
        card._windows = EventTimeWindows.from_dict({**card._windows.to_dict(), "state": state["_windows"]})
        card._seen = copy.deepcopy(state["_seen"])
        return card
