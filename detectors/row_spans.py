"""Where an item's comparisons are counted among rows that come and go: a rater's (or vendor's) own row,
``other``, or nowhere, decided by the item's event time so that ``remove`` finds what ``update`` added,
whatever rows were given or dropped in between.

A row given while ``other`` (or a dropped row of the same rater) may hold comparisons of its rater counts
only items later than all of those (its ``after``: ``other``'s newest item before it, the horizons of the
drops recorded); older items of the rater still count where they did. A dropped row leaves a record of
the items it held, its span: after its start, before the drop's horizon (each of its items was older than
the horizon, or it would not have been dropped). Its comparisons left with it, and comparisons of its
rater on items of that span count nowhere from then on, whether taken out or added late. ``other`` is a
row too (one that takes no place, and has no start). So the place of a comparison is a function of the
rater and the item's time that no later update, drop or new row changes: until 2026-11-26 ``remove``
inferred it from whether the rater had a row then, and took a pooled rater's comparison out of the row it
was given later.

Spans are recorded for ``idle_seconds`` after their drop, then forgotten into one horizon: comparisons of
items older than it, not in a row of their rater, count nowhere (an item replaced two idle periods on is
rare; such a comparison of a rater once pooled then stays in ``other``). State from before 2026-11-26
holds no start, span or horizon, and no row was ever freed there: a rater with a row held all its items,
any other was pooled (``other`` was made only once the rows were full, and no row is freed before the
first drop, ``idle_seconds`` after the look that stamps them). State of code of 2026-11-26 that dropped
rows without spans holds a horizon, with the rule it had: an item older than it gave up nothing for a
rater without a row.
"""

from __future__ import annotations

from typing import Any

#: Where raters (or vendors) beyond the cap are pooled
OTHER = "other"

#: A dropped row's span: ``[after, horizon]`` (``after`` None: from the first item), event times
Span = list[Any]


def _in_spans(spans: list[Span], ts: float) -> bool:
    return any((after is None or ts > after) and ts < horizon for after, horizon in spans)


class RowSpans:
    """The event-time records of one owner's rows, over its state fields (by reference; the horizon is
    read back from :attr:`dropped_before` after :meth:`drop_idle`): ``rows`` ``{who: tally}``, ``seen``
    ``{who: newest event time}``, ``after`` ``{who: start}``, ``gone`` ``{who: [span, ...]}``."""

    __slots__ = ("after", "dropped_before", "gone", "rows", "seen")

    def __init__(
        self,
        rows: dict[str, Any],
        seen: dict[str, float],
        after: dict[str, float],
        gone: dict[str, list[Span]],
        dropped_before: float | None,
    ) -> None:
        self.rows = rows
        self.seen = seen
        self.after = after
        self.gone = gone
        self.dropped_before = dropped_before

    def counted_in(self, who: str, ts: float | None) -> str | None:
        """Where a comparison of ``who`` on an item of event time ``ts`` is counted: ``who`` (its row),
        :data:`OTHER`, or None (nowhere: a dropped row's). Without ``ts``: its row if it has one, else
        ``other``."""
        if who in self.rows:
            after = self.after.get(who)
            if ts is None or after is None or ts > after:
                return who
        if ts is None:
            return OTHER
        gone = self.gone
        if (
            (self.dropped_before is not None and ts < self.dropped_before)
            or (who in gone and _in_spans(gone[who], ts))
            or (OTHER in gone and _in_spans(gone[OTHER], ts))
        ):
            return None
        return OTHER

    def count_in(self, who: str, ts: float | None, cap: int, other_seen: float | None) -> str | None:
        """Where ``update`` counts a comparison of ``who`` on an item of event time ``ts``: as
        :meth:`counted_in`, but ``who`` without a row is given one (its start recorded; the caller makes
        the row) unless ``cap`` rows are taken (``other``'s takes no place) or the item is not later than
        all ``who`` may have elsewhere (``other``'s newest item before this one, ``other_seen``, and the
        spans and horizon of drops)."""
        rows = self.rows
        if who in rows:
            if ts is None or who not in self.after or ts > self.after[who]:
                return who
        elif len(rows) - (OTHER in rows) < cap:
            bounds = [b for b in (other_seen, self.dropped_before) if b is not None]
            for spans in (self.gone.get(who, ()), self.gone.get(OTHER, ())):
                bounds.extend(horizon for _, horizon in spans)
            after = max(bounds) if bounds else None
            if after is None:
                return who
            if ts is None or ts > after:
                self.after[who] = after
                return who
        return self.counted_in(who, ts)

    def drop_idle(self, now: float, idle_seconds: float) -> list[str]:
        """Drop the rows (``other`` too) last seen more than ``idle_seconds`` before ``now``, recording
        their spans, and forget the spans recorded ``idle_seconds`` before the drop into
        :attr:`dropped_before`; the dropped, sorted. A row with no event time (updated without one, or
        state from before 2026-11-26) is stamped ``now``: idle from then on."""
        seen = self.seen
        for who in self.rows.keys() - seen.keys():
            seen[who] = float(now)
        horizon = now - idle_seconds
        dropped = sorted(who for who, last in seen.items() if last < horizon)
        for who in dropped:
            del self.rows[who], seen[who]
            self.gone.setdefault(who, []).append([self.after.pop(who, None), horizon])
        forget_before = horizon - idle_seconds
        for who in [w for w, spans in self.gone.items() if any(s[1] < forget_before for s in spans)]:
            spans = self.gone.pop(who)
            kept = [span for span in spans if span[1] >= forget_before]
            if kept:
                self.gone[who] = kept
            forgotten = max(span[1] for span in spans if span[1] < forget_before)
            if self.dropped_before is None or forgotten > self.dropped_before:
                self.dropped_before = forgotten
        return dropped
