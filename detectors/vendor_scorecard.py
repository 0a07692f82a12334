"""Labelling scorecards: per vendor and annotator, over a sliding event-time window of label times.

:class:`LabelTally` counts one stretch of labels (the bucket detector); :class:`VendorScorecard` keeps an
:class:`~detectors.EventTimeWindows` ring of them, folds vendors and annotators beyond its caps into
``other`` (globally, not per bucket), and reads a :class:`Scorecard` per vendor or annotator: labels per
hour, turnaround quantiles from a bounded histogram, gold accuracy, agreement with the judges and with the
other annotators' consensus. Targets are in ``streams/vendor_sla.py``; breaches are kept by
:class:`~detectors.sla_status.SlaStatus`.
"""

from __future__ import annotations

import bisect
import copy
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any, Self

from detectors.base import Detector
from detectors.exceptions import NotHeldError
from detectors.windowed import EventTimeWindows

#: A vendor's own row (all its annotators together), and where capped vendors and annotators go.
ALL = "*"
OTHER = "other"
#: Turnaround histogram bounds (seconds), as ``convowatch_label_latency_seconds``'s buckets.
DEFAULT_TURNAROUND_BOUNDS = (60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 172800, 259200)
PAIRS = ("gold", "judge", "consensus")


def _check_bounds(bounds: list[float] | None) -> list[float]:
    values = list(DEFAULT_TURNAROUND_BOUNDS if bounds is None else bounds)
    if not values or not all(
        isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) and b > 0 for b in values
    ):
        raise ValueError(f"turnaround_bounds must be positive finite seconds, got {bounds!r}")
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise ValueError(f"turnaround_bounds must be strictly increasing, got {bounds!r}")
    return [float(b) for b in values]


def _check_pair(name: str, pair: Any) -> tuple[int, int]:
    if (
        not isinstance(pair, list | tuple)
        or len(pair) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
        or not 0 <= pair[0] <= pair[1]
    ):
        raise ValueError(f"{name} must be (agreeing, total) counts with 0 <= agreeing <= total, got {pair!r}")
    return pair[0], pair[1]


class LabelTally(Detector):
    """Counts behind a scorecard, per vendor and annotator (``*``: the vendor's row); mergeable.

    ``update(vendor, annotator, turnaround, gold, judge, consensus)``: one label when ``turnaround`` (its
    delay in seconds) is given, plus (agreeing, total) comparisons against gold truth, the judges and the
    consensus. Turnarounds fall in histogram bins ``(bound[i-1], bound[i]]``, the last bin above them all.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(5)
    >>> tally = LabelTally(turnaround_bounds=[600, 3600])
    >>> for _ in range(200):
    ...     annotator, delay = rng.choice(["a1", "a2"]), rng.expovariate(1 / 900)
    ...     tally = tally.update("vendor-a", annotator, delay, judge=(int(rng.random() < 0.9), 1))
    >>> row = tally.row("vendor-a")
    >>> row["labels"], row["turnaround"], row["judge"]
    (200, [86, 111, 3], [188, 200])
    >>> tally.row("vendor-a", "a1")["labels"], tally.row("vendor-b")["labels"]
    (93, 0)
    """

    def __init__(self, turnaround_bounds: list[float] | None = None) -> None:
        _check_bounds(turnaround_bounds)
        self.turnaround_bounds = turnaround_bounds
        self._reset()

    # Not private state: derived from a parameter (so not stored in every bucket of a window).
    @functools.cached_property
    def bounds(self) -> tuple[float, ...]:
        """The histogram's bin upper bounds in seconds (the last bin has none)."""
        return tuple(_check_bounds(self.turnaround_bounds))

    def _reset(self) -> None:
        # vendor -> annotator (or "*") -> {"labels": n, "turnaround": [bin counts], pair: [agreeing, total]}
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}

    def _empty(self) -> dict[str, Any]:
        return {"labels": 0, "turnaround": [0] * (len(self.bounds) + 1), **{p: [0, 0] for p in PAIRS}}

    def update(
        self,
        vendor: str,
        annotator: str,
        turnaround: float | None = None,
        gold: tuple[int, int] = (0, 0),
        judge: tuple[int, int] = (0, 0),
        consensus: tuple[int, int] = (0, 0),
    ) -> Self:
        for name, value in (("vendor", vendor), ("annotator", annotator)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if turnaround is not None and (
            isinstance(turnaround, bool)
            or not isinstance(turnaround, int | float)
            or not math.isfinite(turnaround)
            or turnaround < 0
        ):
            raise ValueError(f"turnaround must be None or non-negative seconds, got {turnaround!r}")
        pairs = {"gold": _check_pair("gold", gold), "judge": _check_pair("judge", judge)}
        pairs["consensus"] = _check_pair("consensus", consensus)
        rows = self._rows.setdefault(vendor, {})
        for who in (ALL, annotator) if annotator != ALL else (ALL,):
            row = rows.get(who)
            if row is None:
                row = rows[who] = self._empty()
            if turnaround is not None:
                row["labels"] += 1
                row["turnaround"][bisect.bisect_left(self.bounds, turnaround)] += 1
            for pair, (agreeing, total) in pairs.items():
                row[pair][0] += agreeing
                row[pair][1] += total
        return self

    def remove(self, vendor: str, annotator: str, consensus: tuple[int, int]) -> Self:
        """Take out consensus comparisons ``update`` added (``turnaround`` None); raises
        :class:`~detectors.NotHeldError`, changing nothing, if the rows do not hold them."""
        agreeing, total = _check_pair("consensus", consensus)
        rows = self._rows.get(vendor, {})
        held = [rows.get(who, {}).get("consensus", [0, 0]) for who in dict.fromkeys((ALL, annotator))]
        if any(a < agreeing or n - total < a - agreeing for a, n in held):
            raise NotHeldError(f"{vendor!r} / {annotator!r} hold no such comparisons to remove")
        for pair in held:
            pair[0] -= agreeing
            pair[1] -= total
        return self

    def merge(self, other: LabelTally) -> Self:
        """Add ``other``'s counts (same bounds) to these."""
        if other.bounds != self.bounds:
            raise ValueError("cannot merge tallies with different turnaround_bounds")
        for vendor, rows in other._rows.items():
            mine = self._rows.setdefault(vendor, {})
            for who, row in rows.items():
                target = mine.get(who)
                if target is None:
                    mine[who] = copy.deepcopy(row)
                    continue
                target["labels"] += row["labels"]
                target["turnaround"] = [
                    a + b for a, b in zip(target["turnaround"], row["turnaround"], strict=True)
                ]
                for pair in PAIRS:
                    target[pair] = [a + b for a, b in zip(target[pair], row[pair], strict=True)]
        return self

    @property
    def vendors(self) -> list[str]:
        return sorted(self._rows)

    def annotators(self, vendor: str) -> list[str]:
        return sorted(who for who in self._rows.get(vendor, {}) if who != ALL)

    def row(self, vendor: str, annotator: str = ALL) -> dict[str, Any]:
        """A copy of the counts of ``vendor`` (or one of its annotators); zeros when never seen."""
        row = self._rows.get(vendor, {}).get(annotator)
        return copy.deepcopy(row) if row is not None else self._empty()


@dataclass(frozen=True)
class Scorecard:
    """One vendor's (or annotator's) figures over a window; undefined ratios are NaN."""

    labels: int
    covered_seconds: float
    """Event time the figures cover: from the window start (or the first label, if later) to the watermark."""
    full_window: bool
    """Whether the first label is at or before the window start: throughput is over the whole window."""
    bounds: tuple[float, ...]
    histogram: tuple[int, ...]
    gold: tuple[int, int]
    judge: tuple[int, int]
    consensus: tuple[int, int]

    @property
    def labels_per_hour(self) -> float:
        return self.labels * 3600.0 / self.covered_seconds if self.covered_seconds > 0 else math.nan

    @staticmethod
    def _ratio(pair: tuple[int, int]) -> float:
        return pair[0] / pair[1] if pair[1] else math.nan

    @property
    def gold_accuracy(self) -> float:
        return self._ratio(self.gold)

    @property
    def judge_agreement(self) -> float:
        return self._ratio(self.judge)

    @property
    def consensus_agreement(self) -> float:
        return self._ratio(self.consensus)

    def within(self, limit: float) -> float:
        """Labels with turnaround at most ``limit``: exact when ``limit`` is a bound, else interpolated
        linearly inside its bin; labels above the last bound never count."""
        count = 0.0
        lower = 0.0
        for upper, n in zip(self.bounds, self.histogram, strict=False):
            if limit >= upper:
                count += n
            else:
                count += n * max(limit - lower, 0.0) / (upper - lower)
                break
            lower = upper
        return count

    def quantile(self, q: float) -> float:
        """Turnaround quantile ``q``, interpolated linearly inside its bin; ``inf`` above the last bound
        and NaN without labels."""
        if not self.labels:
            return math.nan
        rank = q * self.labels
        seen = 0
        lower = 0.0
        for upper, n in zip(self.bounds, self.histogram, strict=False):
            if n and seen + n >= rank:
                return lower + (upper - lower) * max(rank - seen, 0.0) / n
            seen += n
            lower = upper
        return math.inf


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
        _check_bounds(turnaround_bounds)
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self.turnaround_bounds = turnaround_bounds
        self.max_vendors = max_vendors
        self.max_annotators = max_annotators
        self._reset()  # the ring checks the window sizes

    def _ring(self) -> EventTimeWindows:
        return EventTimeWindows(
            f"{__name__}.LabelTally",
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
