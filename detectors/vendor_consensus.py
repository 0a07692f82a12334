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
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from detectors.agreement_stats import cohen_kappa_with_se, wilson_interval
from detectors.exceptions import NotHeldError
from detectors.rater_vs_consensus import OTHER_RATERS, add_comparison, remove_comparisons

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
    its three fields back."""

    def __init__(
        self,
        max_vendors: int,
        tallies: dict[str, dict[str, Any]] | None = None,
        seen: dict[str, float] | None = None,
        dropped_before: float | None = None,
    ) -> None:
        self.max_vendors = max_vendors
        self._tallies: dict[str, dict[str, Any]] = copy.deepcopy(tallies or {})
        self._seen: dict[str, float] = dict(seen or {})  # tallies updated with an event time: the newest
        # the newest horizon of a drop_idle that dropped a vendor (None: none has): see remove
        self._dropped_before = dropped_before

    def state(self) -> dict[str, Any]:
        """The panel's fields of this part (a copy): ``_vendors``, ``_vendor_seen``,
        ``_vendors_dropped_before``."""
        return {
            "_vendors": copy.deepcopy(self._tallies),
            "_vendor_seen": dict(self._seen),
            "_vendors_dropped_before": self._dropped_before,
        }

    def add(self, comparisons: list[Comparison], ts: float | None) -> None:
        """Count one item's ``comparisons``, each of a vendor without a tally under ``other`` when the
        first ``max_vendors`` have theirs; with ``ts``, the item's event time, each keeps the newest one."""
        counted = []
        for vendor, label, agreed, tie in comparisons:
            # other's tally takes no room: once vendors are dropped, a new one takes the first place freed
            if (
                vendor not in self._tallies
                and len(self._tallies) - (OTHER_RATERS in self._tallies) >= self.max_vendors
            ):
                vendor = OTHER_RATERS
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
        """Take out one item's ``comparisons`` (as they were added); :class:`~detectors.NotHeldError`,
        changing nothing, if the tallies do not hold them. A vendor without a tally was pooled (out of
        ``other``), or, on an item older (``ts``) than the horizon of a drop, dropped: nothing of it."""
        dropped = ts is not None and self._dropped_before is not None and ts < self._dropped_before
        held = [
            (vendor if vendor in self._tallies else OTHER_RATERS, label, agreed, tie)
            for vendor, label, agreed, tie in comparisons
            if not (dropped and vendor not in self._tallies)
        ]
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
        ``now``; the dropped vendors, sorted. A tally with no event time (state from before 2026-11-26) is
        stamped ``now``: idle from then on."""
        for vendor in self._tallies.keys() - self._seen.keys():
            self._seen[vendor] = float(now)
        horizon = now - idle_seconds
        dropped = sorted(vendor for vendor, seen in self._seen.items() if seen < horizon)
        for vendor in dropped:
            del self._tallies[vendor], self._seen[vendor]
        if dropped and (self._dropped_before is None or horizon > self._dropped_before):
            self._dropped_before = horizon
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
