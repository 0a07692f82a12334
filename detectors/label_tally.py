"""Counts behind the labelling scorecards: :class:`LabelTally` (one stretch of labels, per vendor and
annotator, mergeable) and :class:`Scorecard` (one vendor's or annotator's figures read from it).
:class:`~detectors.vendor_scorecard.VendorScorecard` keeps a sliding window of tallies.

Gold and judge comparisons come by label record (one annotator's labels on one turn: a gold turn's
dimensions, or its dimensions times the judges), and those of one record are not independent: an annotator
who misreads a turn misses several of its dimensions. So they are also summed by record, for the effective
number of independent comparisons behind their ratio (:func:`effective_samples`): 20 gold items can be 3
turns. Consensus comparisons come one at a time and count as independent.
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
from detectors.tally_record import ALL, CLUSTERED, PAIRS, RANGES, stored_rows
from detectors.turnaround_ranges import kept_ranges, restored_rows, seen_range, widest

#: Where capped vendors and annotators go (``ALL``: a vendor's own row).
OTHER = "other"
#: Turnaround histogram bounds (seconds), as ``convowatch_label_latency_seconds``'s buckets.
DEFAULT_TURNAROUND_BOUNDS = (60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 172800, 259200)


def check_bounds(bounds: list[float] | None) -> list[float]:
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


def check_label(
    vendor: str,
    annotator: str,
    turnaround: float | None,
    gold: tuple[int, int],
    judge: tuple[int, int],
    consensus: tuple[int, int],
) -> dict[str, tuple[int, int]]:
    """The arguments of :meth:`LabelTally.update`, checked (``ValueError``); the pairs by name."""
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
    return {
        "gold": _check_pair("gold", gold),
        "judge": _check_pair("judge", judge),
        "consensus": _check_pair("consensus", consensus),
    }


def clusters(row: dict[str, Any], pair: str) -> list[int]:
    """``row``'s sums of ``pair`` by label record ([records, Σa², Σam, Σm²]); a row without them (none
    counted, or written before they were) has each comparison its own record."""
    counted = row.get(f"{pair}_clusters")
    if counted is not None:
        return list(counted)
    agreeing, total = row[pair]
    return [total, agreeing, agreeing, total]


def effective_samples(agreeing: int, total: int, by_record: list[int] | tuple[int, ...] | None) -> float:
    """The effective number of independent comparisons behind ``agreeing / total`` (Korn and Graubard,
    1998): ``p (1 - p)`` over the ratio's cluster-robust variance ``k / (k - 1) * Σ(a - p m)² / (Σm)²`` over
    its ``k`` label records (``by_record``: [k, Σa², Σam, Σm²]), at most ``total``; ``k`` where that
    variance is 0 (``p`` at 0 or 1, or one record), ``total`` without ``by_record``, as RaterPanel does.

    >>> round(effective_samples(18, 20, [20, 18, 18, 20]), 1)  # 20 records of one comparison each
    19.0
    >>> round(effective_samples(20, 24, [6, 80, 80, 96]), 1)  # 6 turns of 4 dimensions, one all wrong
    5.0
    >>> effective_samples(21, 24, [6, 75, 84, 96])  # three wrong, in three turns: as many as compared
    24.0
    """
    if by_record is None:
        return float(total)
    k, a2, am, m2 = by_record
    if total and k >= 2:
        p = agreeing / total
        variance = k / (k - 1) * (a2 - 2 * p * am + p * p * m2) / (total * total)
        if variance > 0:
            return min(float(total), max(p * (1 - p) / variance, 1.0))
    return float(k)


class LabelTally(Detector):
    """Counts behind a scorecard, per vendor and annotator (``*``: the vendor's row); mergeable.

    ``update(vendor, annotator, turnaround, gold, judge, consensus)``: one label when ``turnaround`` (its
    delay in seconds) is given, plus (agreeing, total) comparisons against gold truth, the judges and the
    consensus. Turnarounds fall in histogram bins ``(bound[i-1], bound[i]]``, the last bin above them all;
    a vendor's row also keeps each bin's smallest and largest, in whole seconds (``turnaround_range``), so
    its quantiles read between turnarounds seen (an annotator's, between its bins' edges). Each call is one
    label record: gold and judge comparisons are also summed by record (``clusters``).

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
    >>> row["turnaround_range"]
    {'1': [605, 3362], '0': [0, 600], '2': [3872, 5758]}
    >>> tally.row("vendor-a", "a1")["labels"], tally.row("vendor-b")["labels"]
    (93, 0)
    """

    def __init__(self, turnaround_bounds: list[float] | None = None) -> None:
        check_bounds(turnaround_bounds)
        self.turnaround_bounds = turnaround_bounds
        self._reset()

    # Not private state: derived from a parameter (so not stored in every bucket of a window).
    @functools.cached_property
    def bounds(self) -> tuple[float, ...]:
        """The histogram's bin upper bounds in seconds (the last bin has none)."""
        return tuple(check_bounds(self.turnaround_bounds))

    def _reset(self) -> None:
        # vendor -> annotator (or "*") -> {"labels": n, "turnaround": [bin counts], "turnaround_range" (of "*"
        # only): {bin: [min, max]} (see kept_ranges), pair: [agreeing, total], "<pair>_clusters" (of
        # CLUSTERED, once counted): [records, Σa², Σam, Σm²]}
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}

    def _empty(self, who: str) -> dict[str, Any]:
        row: dict[str, Any] = {"labels": 0, "turnaround": [0] * (len(self.bounds) + 1)}
        return {**row, **({RANGES: {}} if who == ALL else {}), **{p: [0, 0] for p in PAIRS}}

    def update(
        self,
        vendor: str,
        annotator: str,
        turnaround: float | None = None,
        gold: tuple[int, int] = (0, 0),
        judge: tuple[int, int] = (0, 0),
        consensus: tuple[int, int] = (0, 0),
    ) -> Self:
        pairs = check_label(vendor, annotator, turnaround, gold, judge, consensus)
        rows = self._rows.setdefault(vendor, {})
        for who in (ALL, annotator) if annotator != ALL else (ALL,):
            row = rows.get(who)
            if row is None:
                row = rows[who] = self._empty(who)
            if who != ALL:  # ranges of annotators too made a scorecard at the caps too large for a record
                row.pop(RANGES, None)
            if turnaround is not None:
                ranges = kept_ranges(row, self.bounds) if who == ALL else None
                row["labels"] += 1
                at = bisect.bisect_left(self.bounds, turnaround)
                row["turnaround"][at] += 1
                if ranges is not None:  # else an annotator, or old state's labels: bins' edges for good
                    low, high = seen_range(self.bounds, at, turnaround, turnaround)
                    seen = ranges.get(str(at), [low, high])
                    ranges[str(at)] = [min(seen[0], low), max(seen[1], high)]
                    row[RANGES] = ranges
            for pair in CLUSTERED:  # before the pairs: a row without them derives them from the pair
                agreeing, total = pairs[pair]
                if total:
                    k, a2, am, m2 = clusters(row, pair)
                    row[f"{pair}_clusters"] = [k + 1, a2 + agreeing**2, am + agreeing * total, m2 + total**2]
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
                    if who != ALL:
                        mine[who].pop(RANGES, None)
                    continue
                if who != ALL:
                    target.pop(RANGES, None)
                else:
                    mine_ranges = kept_ranges(target, self.bounds)
                    their_ranges = kept_ranges(row, self.bounds)
                    if mine_ranges is None or their_ranges is None:
                        target.pop(RANGES, None)
                    else:
                        bins = sorted({*mine_ranges, *their_ranges}, key=int)
                        target[RANGES] = {
                            at: widest(mine_ranges.get(at), their_ranges.get(at)) for at in bins
                        }
                target["labels"] += row["labels"]
                target["turnaround"] = [
                    a + b for a, b in zip(target["turnaround"], row["turnaround"], strict=True)
                ]
                for pair in CLUSTERED:  # before the pairs, as in update
                    key = f"{pair}_clusters"
                    if key in target or key in row:
                        target[key] = [
                            a + b for a, b in zip(clusters(target, pair), clusters(row, pair), strict=True)
                        ]
                for pair in PAIRS:
                    target[pair] = [a + b for a, b in zip(target[pair], row[pair], strict=True)]
        return self

    def to_dict(self) -> dict[str, Any]:
        """Parameters and state, rows stored positionally (:mod:`detectors.tally_record`)."""
        return self._dict_with({"_rows": stored_rows(self._rows, lambda row: kept_ranges(row, self.bounds))})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Restore a tally written by :meth:`to_dict`, or with rows as dicts (:func:`restored_rows`)."""
        tally, state = cls._new_from(data)
        tally._rows = restored_rows(state.get("_rows", {}), tally.bounds)
        return tally

    @property
    def vendors(self) -> list[str]:
        return sorted(self._rows)

    def annotators(self, vendor: str) -> list[str]:
        return sorted(who for who in self._rows.get(vendor, {}) if who != ALL)

    def row(self, vendor: str, annotator: str = ALL) -> dict[str, Any]:
        """A copy of the counts of ``vendor`` (or one of its annotators); zeros when never seen."""
        row = self._rows.get(vendor, {}).get(annotator)
        return copy.deepcopy(row) if row is not None else self._empty(annotator)


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
    gold_clusters: tuple[int, ...] | None = None
    """Gold comparisons by label record ([records, Σa², Σam, Σm²]); None: each its own record."""
    judge_clusters: tuple[int, ...] | None = None
    ranges: tuple[tuple[float, float] | None, ...] | None = None
    """The smallest and largest turnaround in each bin (None: empty); None: not kept, the bins' edges."""

    def effective_samples(self, pair: str) -> float:
        """The effective number of independent comparisons of ``pair`` (``gold``, ``judge``,
        ``consensus``): see :func:`effective_samples`."""
        agreeing, total = {"gold": self.gold, "judge": self.judge, "consensus": self.consensus}[pair]
        by_record = {"gold": self.gold_clusters, "judge": self.judge_clusters}.get(pair)
        return effective_samples(agreeing, total, by_record)

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

    def _spans(self) -> list[tuple[float, float]]:
        """Per bin, the smallest and largest turnaround it may hold: those seen, else its edges (the last
        bin's upper edge ``inf``)."""
        edges = list(itertools.pairwise((0.0, *self.bounds, math.inf)))
        if self.ranges is None:
            return edges
        return [edge if seen is None else seen for edge, seen in zip(edges, self.ranges, strict=True)]

    def within(self, limit: float) -> float:
        """Labels with turnaround at most ``limit``: exact when ``limit`` is a bound (or outside every
        bin's turnarounds), else interpolated linearly between the bin's smallest and largest."""
        count = 0.0
        for n, (low, high) in zip(self.histogram, self._spans(), strict=True):
            if n and limit >= high:
                count += n
            elif n and limit > low:
                count += n * (limit - low) / (high - low)
        return count

    def quantile(self, q: float) -> float:
        """Turnaround quantile ``q``, interpolated linearly between the smallest and largest turnaround of
        its bin (so all labels at one turnaround read exactly that); NaN without labels; ``inf`` in the
        last bin of state from before 2026-11-26, which kept no range."""
        if not self.labels:
            return math.nan
        rank = q * self.labels
        seen = 0
        for n, (low, high) in zip(self.histogram, self._spans(), strict=True):
            if n and seen + n >= rank:
                return math.inf if math.isinf(high) else low + (high - low) * max(rank - seen, 0.0) / n
            seen += n
        return math.inf
