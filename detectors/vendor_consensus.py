"""Each vendor's agreement with the consensus: its annotators' leave-one-out comparisons, pooled by item.

The vendors' part of :class:`~detectors.rater_panel.RaterPanel`, which decides each comparison (the
annotator's vendor, its label against the others' consensus, folded on the panel's scale) and stores this
part's state among its own. Per vendor a confusion table and ties (as
:class:`~detectors.RaterVsConsensus` counts a rater), and per-item sums ``[items, m, a, a*a, a*m, m*m]`` of
its comparisons ``m`` and agreements ``a`` on each item: two annotators of one vendor on one item are
compared with nearly the same consensus, so the interval counts items (clusters), not comparisons, with the
cluster-robust variance of a ratio and the Wilson interval at the effective size it implies.

The first ``max_vendors`` vendors are counted apart and later ones as ``other``. Each vendor keeps the
newest event time of its comparisons, and :meth:`VendorConsensus.drop_idle` drops the vendors with none
for a while, so that new ones take their room (until 2026-11-26 the first ones ever seen kept it for good).
Where a vendor's comparisons on an item are counted (its tally, ``other``'s, or nowhere once its tally was
dropped) follows from the vendor and the item's time (:mod:`detectors.row_spans`), so ``remove`` takes out
what ``add`` counted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from detectors.agreement_stats import cohen_kappa_with_se, wilson_interval
from detectors.exceptions import NotHeldError
from detectors.rater_vs_consensus import add_comparison, remove_comparisons
from detectors.row_spans import OTHER, RowSpans, Span

#: A comparison: (vendor, annotator's label, the others' consensus or None, tied), as the panel folds it
Comparison = tuple[str, str, str | None, bool]


def _item_terms(comparisons: Iterable[Comparison]) -> dict[str, tuple[int, ...]]:
    """Per vendor, the terms one item adds to its sums: (1, m, a, a*a, a*m, m*m)."""
    on_item: dict[str, list[int]] = {}
    for vendor, label, agreed, _ in comparisons:
        if agreed is not None:
            counts = on_item.setdefault(vendor, [0, 0])
            counts[0] += 1
            counts[1] += int(label == agreed)
    return {v: (1, m, a, a * a, a * m, m * m) for v, (m, a) in on_item.items()}


class VendorConsensus:
    """The vendors' tallies of one panel (see the module); state in :meth:`state`, restored by passing
    its fields back."""

    def __init__(
        self,
        max_vendors: int,
        tallies: dict[str, dict[str, Any]] | None = None,
        seen: dict[str, float] | None = None,
        dropped_before: float | None = None,
        counts_after: dict[str, float] | None = None,
        gone: dict[str, list[Span]] | None = None,
    ) -> None:
        self.max_vendors = max_vendors
        self._tallies: dict[str, dict[str, Any]] = copy.deepcopy(tallies or {})
        self._seen: dict[str, float] = dict(seen or {})  # tallies updated with an event time: the newest
        # where comparisons are counted by the item's time (detectors.row_spans)
        self._counts_after: dict[str, float] = dict(counts_after or {})
        self._gone: dict[str, list[Span]] = copy.deepcopy(gone or {})
        self._dropped_before = dropped_before

    def state(self) -> dict[str, Any]:
        """The panel's fields of this part (a copy): ``_vendors``, ``_vendor_seen``,
        ``_vendors_dropped_before``, ``_vendors_counts_after``, ``_vendors_gone``."""
        return {
            "_vendors": copy.deepcopy(self._tallies),
            "_vendor_seen": dict(self._seen),
            "_vendors_dropped_before": self._dropped_before,
            "_vendors_counts_after": dict(self._counts_after),
            "_vendors_gone": copy.deepcopy(self._gone),
        }

    def _spans(self) -> RowSpans:
        return RowSpans(self._tallies, self._seen, self._counts_after, self._gone, self._dropped_before)

    def add(self, comparisons: list[Comparison], ts: float | None) -> None:
        """Count one item's ``comparisons``, each of a vendor without a tally under ``other`` when the
        first ``max_vendors`` have theirs (or where the item's time ``ts`` says: see the module); with
        ``ts`` each keeps the newest one."""
        spans, other_seen = self._spans(), self._seen.get(OTHER)  # other's before this item
        counted = []
        for vendor, label, agreed, tie in comparisons:
            # other's tally takes no room: once vendors are dropped, a new one takes the first place freed
            where = spans.count_in(vendor, ts, self.max_vendors, other_seen)
            if where is None:  # a vendor's comparison on an item of a dropped tally's span: gone with it
                continue
            vendor = where
            entry = self._tallies.setdefault(vendor, {"confusion": {}, "ties": 0, "sums": [0] * 6})
            add_comparison(entry, label, agreed, tie)
            counted.append((vendor, label, agreed, tie))
            if ts is not None:
                seen = self._seen.get(vendor)
                if seen is None or ts > seen:
                    self._seen[vendor] = float(ts)
        for vendor, item in _item_terms(counted).items():
            sums = self._tallies[vendor]["sums"]
            for i, term in enumerate(item):
                sums[i] += term

    def remove(self, comparisons: list[Comparison], ts: float | None) -> None:
        """Take out one item's ``comparisons`` (as they were added, with its time ``ts``), each from where
        ``add`` counted it: its vendor's tally, ``other``'s, or nowhere if that tally was dropped since;
        :class:`~detectors.NotHeldError`, changing nothing, if the tallies do not hold them."""
        spans = self._spans()
        held = []
        for vendor, label, agreed, tie in comparisons:
            where = spans.counted_in(vendor, ts)
            if where is not None:
                held.append((where, label, agreed, tie))
        terms = _item_terms(held)
        for vendor, item in terms.items():
            sums = self._tallies.get(vendor, {}).get("sums", [0] * 6)
            if any(have < term for have, term in zip(sums, item, strict=True)):
                raise NotHeldError(f"vendor {vendor!r} holds no such item to remove")
        remove_comparisons(self._tallies, held)
        for vendor, item in terms.items():
            sums = self._tallies[vendor]["sums"]
            for i, term in enumerate(item):
                sums[i] -= term

    def drop_idle(self, now: float, idle_seconds: float) -> list[str]:
        """Drop the tallies of the vendors (``other`` too) with no comparison for ``idle_seconds`` before
        ``now``, their comparisons with them; the dropped vendors, sorted. A tally with no event time (state
        from before 2026-11-26) is stamped ``now``: idle from then on."""
        spans = self._spans()
        dropped = spans.drop_idle(now, idle_seconds)
        self._dropped_before = spans.dropped_before
        return dropped

    def figures(self, confidence_level: float, annotators: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Per vendor, sorted: ``n`` (comparisons), ``items``, ``effective_n``, ``agreement``,
        ``agreement_interval`` (over items), ``kappa``, ``ties``, and ``annotators`` (given by vendor)."""
        result = {}
        for vendor, entry in sorted(self._tallies.items()):
            items, n, agree, a2, am, m2 = entry["sums"]
            p = agree / n if n else float("nan")
            effective = float(items)
            if items >= 2:
                # Σ(a - p m)² / (Σm)², with the small-sample factor items / (items - 1)
                variance = items / (items - 1) * (a2 - 2 * p * am + p * p * m2) / (n * n)
                if variance > 0:
                    effective = min(float(n), max(p * (1 - p) / variance, 1.0))
            result[vendor] = {
                "n": n,
                "items": items,
                "effective_n": effective,
                "agreement": p,
                "agreement_interval": list(
                    wilson_interval(p * effective if n else 0.0, effective, confidence_level)
                ),
                "kappa": cohen_kappa_with_se(entry["confusion"])[0],
                "ties": entry["ties"],
                "annotators": annotators.get(vendor, 0),
            }
        return result
