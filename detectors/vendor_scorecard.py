"""Labelling scorecards: per vendor and annotator, over a sliding event-time window of label times.

:class:`VendorScorecard` keeps an :class:`~detectors.EventTimeWindows` ring of
:class:`~detectors.label_tally.LabelTally` buckets, folds vendors and annotators beyond its caps into
``other``, and reads a :class:`~detectors.label_tally.Scorecard` per vendor or annotator: labels per hour,
turnaround quantiles from a bounded histogram, gold accuracy, agreement with the judges and with the other
annotators' consensus. Targets are in ``streams/vendor_sla.py``; breaches are kept by
:class:`~detectors.sla_status.SlaStatus`.

The caps count the vendors and annotators the window holds: one whose counts have all left it gives up its
slot (until 2026-11-26 they counted every id ever seen: after turnover every new one was ``other`` for
good), unless it is a vendor :meth:`VendorScorecard.hold` keeps: its slot, and the time of its first
label, stay while the window holds nothing of it, so that a vendor gone silent is judged at 0 labels over
the window instead of being forgotten (``streams/views/vendors.py`` holds those with a labels-per-hour
target until they have been judged at 0, and for as long as their throughput breach is open). An id given
a slot while ``other`` may hold counts of it in the window is counted under its own name only from the
bucket after ``other``'s newest count, so that ``remove`` finds what ``update`` added where it was added.

Each vendor also keeps the golden turns it most recently missed an item of
(:meth:`VendorScorecard.missed_gold`): at most :data:`MISSED_GOLD_KEPT`, each once, of those the window
holds, for a gold accuracy breach to name.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Self

from detectors.base import Detector
from detectors.label_tally import (
    ALL,
    OTHER,
    LabelTally,
    Scorecard,
    check_bounds,
    check_label,
    clusters,
)
from detectors.tally_record import stored_rows
from detectors.turnaround_ranges import kept_ranges, restored_rows, turnaround_ranges
from detectors.windowed import EventTimeWindows

#: A vendor's most recently missed golden turns kept (:meth:`VendorScorecard.missed_gold`)
MISSED_GOLD_KEPT = 10


class VendorScorecard(Detector):
    """Scorecards of every vendor and annotator over the last ``window_seconds`` of label event time.

    ``update(ts, vendor, annotator, turnaround=None, gold=(0, 0), judge=(0, 0), consensus=(0, 0),
    turn_id=None)`` adds, at event time ``ts``, one label (when ``turnaround`` is given) and comparisons as
    (agreeing, total) on the turn ``turn_id``: one with a gold item missed is among :meth:`missed_gold`.
    Past ``max_vendors`` vendors, or ``max_annotators`` annotators in all, new ones are counted under
    ``other``; one whose counts have all left the window frees its slot, unless it is a vendor :meth:`hold`
    keeps. Events older than the window are dropped (:attr:`too_late`).

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
    (137, 68.5, 1563, 0.934)
    >>> b.labels, round(b.quantile(0.9)), round(b.judge_agreement, 3), b.within(3600) / b.labels > 0.9
    (121, 5842, 0.793, False)

    A vendor :meth:`hold` keeps has a slot after its labels have left the window: 0 labels an hour over it.

    >>> quiet = VendorScorecard(window_seconds=3600, bucket_seconds=600).update(0.0, "v", "v1", 60.0)
    >>> quiet = quiet.hold({"v"}).update(7200.0, "w", "w1", 60.0)
    >>> quiet.vendors, quiet.annotators("v"), quiet.scorecard("v").labels_per_hour
    (['v', 'w'], [], 0.0)

    The golden turns a vendor missed an item of most recently, each once, newest first:

    >>> for i, (turn_id, correct) in enumerate([("g1", 0), ("g2", 1), ("g1", 1), ("g3", 2)]):
    ...     card = card.update(ts + i, "vendor-b", "b1", gold=(correct, 2), turn_id=turn_id)
    >>> card.missed_gold("vendor-b"), card.missed_gold("vendor-a")
    (['g1', 'g2'], [])
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
        # vendor -> annotator (or "*": the vendor) -> event time of its first label under its own name (None:
        # no label yet); also the vendors and annotators with a slot, counted under their own names
        self._seen: dict[str, dict[str, float | None]] = {}
        # vendor -> annotator (or "*") -> the first bucket start counted under its own name, for those given
        # a slot while "other" held counts that may be theirs (absent: every bucket)
        self._since: dict[str, dict[str, int]] = {}
        # vendors whose slot (and first label time) is kept while the window holds none of their counts
        self._held: set[str] = set()
        # vendor -> [label event time, golden turn id] of its most recently missed golden turns, newest first
        self._missed_gold: dict[str, list[list[Any]]] = {}

    def _bucket_of(self, ts: float) -> int:
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise ValueError(f"ts must be a finite number, got {ts!r}")
        return int(ts // self.bucket_seconds) * self.bucket_seconds

    def _full(self, who: str) -> bool:
        if who == ALL:
            return sum(v != OTHER for v in self._seen) >= self.max_vendors
        tracked = sum(a not in (ALL, OTHER) for rows in self._seen.values() for a in rows)
        return tracked >= self.max_annotators

    def _newest_other(self, vendor: str | None) -> int | None:
        """Start of the newest bucket holding counts under ``other``: of ``vendor``'s annotators, or of the
        vendors (``None``)."""
        for start in reversed(self._windows.bucket_starts):
            rows = self._rows(start)
            if (OTHER in rows) if vendor is None else (OTHER in rows.get(vendor, {})):
                return start
        return None

    def _rows(self, start: int) -> dict[str, dict[str, Any]]:
        """The rows of the bucket at ``start`` (LabelTally's state, read in place: copies cost too much)."""
        state = self._windows.bucket_state(start)
        return {} if state is None else state["_rows"]

    def _own_name(
        self, vendor: str, who: str, start: int, slots: list[tuple[str, str, int | None]] | None
    ) -> bool:
        """Whether counts of ``who`` (``*``: the vendor itself) in the bucket at ``start`` go under its own
        name. One without a slot gets one if ``slots`` (the slots given, to record) is a list and the cap has
        room; it holds nothing in the window, but ``other`` may, so it starts after the newest ``other``."""
        rows = self._seen.get(vendor)
        if rows is not None and who in rows:
            since = self._since.get(vendor, {}).get(who)
            return since is None or start >= since
        if slots is None or self._full(who):
            return False
        newest = self._newest_other(None if who == ALL else vendor)
        since = None if newest is None else newest + self.bucket_seconds
        slots.append((vendor, who, since))
        return since is None or start >= since

    def _fold(
        self, start: int, vendor: str, annotator: str, slots: list[tuple[str, str, int | None]] | None
    ) -> tuple[str, str]:
        if vendor != OTHER and not self._own_name(vendor, ALL, start, slots):
            vendor = OTHER
        if annotator not in (ALL, OTHER) and not self._own_name(vendor, annotator, start, slots):
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
        turn_id: str | None = None,
    ) -> Self:
        if not isinstance(vendor, str) or not vendor or not isinstance(annotator, str) or not annotator:
            raise ValueError(f"vendor and annotator must be non-empty strings, got {vendor!r}, {annotator!r}")
        if turn_id is not None and (not isinstance(turn_id, str) or not turn_id):
            raise ValueError(f"turn_id must be None or a non-empty string, got {turn_id!r}")
        start = self._bucket_of(ts)
        newest_end = self._windows.window_end
        if newest_end is not None and start >= newest_end:  # a new bucket: the window slides first, so the
            # slots it frees are free for this event (checked first: a refused event changes nothing)
            check_label(vendor, annotator, turnaround, gold, judge, consensus)
            self._windows.advance(ts)
            self._free_slots()
        slots: list[tuple[str, str, int | None]] = []
        vendor, annotator = self._fold(start, vendor, annotator, slots)
        dropped = self._windows.too_late
        self._windows.update(ts, vendor, annotator, turnaround, gold, judge, consensus)
        if self._windows.too_late > dropped:
            return self
        for owner, who, since in slots:
            self._seen.setdefault(owner, {}).setdefault(who, None)
            if since is not None:
                self._since.setdefault(owner, {})[who] = since
        rows = self._seen.setdefault(vendor, {})
        for who in (ALL, annotator):
            first = rows.get(who)
            if turnaround is not None and (first is None or ts < first):
                rows[who] = float(ts)
            else:
                rows.setdefault(who, None)
        if turn_id is not None and gold[0] < gold[1] and vendor != OTHER:
            self._miss_gold(float(ts), vendor, turn_id)
        return self

    def _miss_gold(self, ts: float, vendor: str, turn_id: str) -> None:
        """Keep ``turn_id`` among ``vendor``'s most recent misses, once (at its latest miss)."""
        kept = self._missed_gold.get(vendor, [])
        ts = max([ts, *(at for at, turn in kept if turn == turn_id)])
        kept = [miss for miss in kept if miss[1] != turn_id]
        newer = sum(at > ts for at, _ in kept)  # after those: at the same time, the one come last first
        kept.insert(newer, [ts, turn_id])
        self._missed_gold[vendor] = kept[:MISSED_GOLD_KEPT]

    def hold(self, vendors: set[str]) -> Self:
        """Keep the slots of ``vendors`` (those that have one) while the window holds none of their counts,
        until the next call: such a vendor keeps the time of its first label, so its labels per hour are
        over the whole window (0 when it has gone silent), and a label it sends again counts under its own
        name. Its annotators give up their slots as usual. Held slots count against ``max_vendors``."""
        if not isinstance(vendors, set | frozenset) or not all(isinstance(v, str) for v in vendors):
            raise ValueError(f"vendors must be a set of strings, got {vendors!r}")
        self._held = {vendor for vendor in vendors if vendor in self._seen and vendor != OTHER}
        return self

    def _free_slots(self) -> None:
        """Buckets left the window: vendors and annotators it holds no count of give up their slots (not one
        whose own name starts at a bucket not yet the window's oldest: it has had no chance yet, nor a vendor
        :meth:`hold` keeps)."""
        oldest = self._windows.window_start
        assert oldest is not None
        held: dict[str, set[str]] = {}
        for start in self._windows.bucket_starts:
            for vendor, rows in self._rows(start).items():
                held.setdefault(vendor, set()).update(rows)
        for vendor, rows in list(self._seen.items()):
            since = self._since.get(vendor, {})
            for who in list(rows):
                waiting = since.get(who, oldest) > oldest
                if who in since and not waiting:  # its own name in every bucket of the window
                    del since[who]
                kept = who == ALL and vendor in self._held
                if not waiting and not kept and who not in held.get(vendor, ()):
                    del rows[who]
            if ALL not in rows:  # no count of the vendor: none of its annotators either
                del self._seen[vendor]
                since.clear()
            if not since:
                self._since.pop(vendor, None)
        # only the window's (a vendor's misses leave it before its slot can: they are among its counts)
        for vendor, misses in list(self._missed_gold.items()):
            in_window = [miss for miss in misses if miss[0] >= oldest]
            if in_window:
                self._missed_gold[vendor] = in_window
            else:
                del self._missed_gold[vendor]

    def remove(self, ts: float, vendor: str, annotator: str, consensus: tuple[int, int]) -> Self:
        """Take out consensus comparisons ``update`` added at ``ts``, if they are still in the window (an
        item superseded by a later annotator's label); raises :class:`~detectors.NotHeldError`, changing
        nothing, if their bucket does not hold them. They are where ``update`` put them: a vendor or
        annotator without a slot now has no count in the window under its own name (it would have kept
        its slot), so its counts are under ``other``; and no slot is given here."""
        self._windows.remove(ts, *self._fold(self._bucket_of(ts), vendor, annotator, None), consensus)
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
        """Vendors with a slot (counts in the window, a slot just given, or held), sorted; ``other`` holds
        those past ``max_vendors``."""
        return sorted(self._seen)

    def annotators(self, vendor: str) -> list[str]:
        return sorted(a for a in self._seen.get(vendor, {}) if a != ALL)

    def missed_gold(self, vendor: str) -> list[str]:
        """The golden turns ``vendor`` most recently missed a gold item of (by label event time, newest
        first, each once, at most :data:`MISSED_GOLD_KEPT`), of those the window holds."""
        return [turn for _, turn in self._missed_gold.get(vendor, [])]

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
        ranges = turnaround_ranges(row) if annotator == ALL else None  # kept for vendors only
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
            ranges=None if ranges is None else tuple(None if r is None else (r[0], r[1]) for r in ranges),
            gold=(row["gold"][0], row["gold"][1]),
            judge=(row["judge"][0], row["judge"][1]),
            consensus=(row["consensus"][0], row["consensus"][1]),
            gold_clusters=tuple(clusters(row, "gold")),
            judge_clusters=tuple(clusters(row, "judge")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Parameters and state; the buckets' rows stored positionally (:mod:`detectors.tally_record`), their
        vendors and annotators as indices into ``_names``, the names the buckets hold."""
        starts, bounds = self._windows.bucket_starts, tuple(check_bounds(self.turnaround_bounds))
        names = list(
            dict.fromkeys(n for s in starts for v, rows in self._rows(s).items() for n in (v, *rows))
        )
        index = {name: at for at, name in enumerate(names)}
        ring = {
            k: copy.deepcopy(v)
            for k, v in vars(self._windows).items()
            if k.startswith("_") and k != "_buckets"
        }
        ring["_buckets"] = {
            str(start): {"_rows": stored_rows(self._rows(start), lambda row: kept_ranges(row, bounds), index)}
            for start in starts
        }
        seen, since = copy.deepcopy(self._seen), copy.deepcopy(self._since)
        state = {"_windows": ring, "_names": names, "_seen": seen, "_since": since}
        missed = copy.deepcopy(self._missed_gold)
        return self._dict_with({**state, "_held": sorted(self._held), "_missed_gold": missed})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        fields = ("_windows", "_names", "_seen", "_since", "_held", "_missed_gold")
        card, state = cls._new_from(data, fields)
        bounds = tuple(check_bounds(card.turnaround_bounds))
        names = state.get("_names")  # state written before rows were stored positionally has none
        buckets = {  # rows as dicts, ranges as now kept
            start: {"_rows": restored_rows(bucket["_rows"], bounds, names)}
            for start, bucket in state["_windows"]["_buckets"].items()
        }
        ring = {
            **copy.deepcopy({k: v for k, v in state["_windows"].items() if k != "_buckets"}),
            "_buckets": buckets,
        }
        # the rows just built are the ring's own: EventTimeWindows.from_dict would copy them all again
        # (about 40% of a restore at the caps)
        windows, _ = EventTimeWindows._new_from({**card._windows.to_dict(), "state": ring})
        windows.__dict__.update(ring)
        card._windows = windows
        card._seen = copy.deepcopy(state["_seen"])
        # state written before slots were given up has none: every id kept its slot for good
        card._since = copy.deepcopy(state.get("_since", {}))
        # state written before slots were held has none: the view holds them again at its next evaluation
        card._held = set(state.get("_held", []))
        # state written before missed golden turns were kept has none
        card._missed_gold = copy.deepcopy(state.get("_missed_gold", {}))
        return card
