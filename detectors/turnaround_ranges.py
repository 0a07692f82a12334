"""A vendor row's smallest and largest turnaround per histogram bin, in whole seconds: kept sparse on the
vendor's own row of a :class:`~detectors.label_tally.LabelTally` (``{bin: [min, max]}``), widened when tallies
merge, and read from the forms earlier state stored them in (none, dense on every row, sparse). A quantile
reads between the turnarounds its bin saw, not its edges: a point mass reads exactly.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from detectors.tally_record import ALL, RANGES, loaded_rows


def turnaround_ranges(row: dict[str, Any]) -> list[list[float] | None] | None:
    """``row``'s smallest and largest turnaround per histogram bin (``None`` in an empty bin), as a vendor
    row keeps them (:func:`kept_ranges`); ``None`` for a row with labels counted before they were kept
    (state from before 2026-11-26): their bins' edges."""
    ranges = row.get(RANGES)
    if ranges is None and not row["labels"]:
        return [None] * len(row["turnaround"])
    if isinstance(ranges, dict):
        return [ranges.get(str(at)) for at in range(len(row["turnaround"]))]
    return ranges


def kept_ranges(row: dict[str, Any], bounds: tuple[float, ...]) -> dict[str, list[float]] | None:
    """A vendor row's ranges as kept: ``{bin: [min, max]}`` of its non-empty bins in whole seconds (see
    :func:`seen_range`); ``{}`` for a row without labels, ``None`` for one counted without ranges. Dense
    ones (a list per bin, of every row, as written earlier on 2026-11-26: too large a record) are
    converted."""
    ranges = row.get(RANGES)
    if ranges is None:
        return None if row["labels"] else {}
    if isinstance(ranges, list):
        return {str(at): seen_range(bounds, at, *seen) for at, seen in enumerate(ranges) if seen is not None}
    return ranges


def compact_ranges(rows: dict[str, dict[str, dict[str, Any]]], bounds: tuple[float, ...]) -> None:
    """Keep ranges as :class:`LabelTally` now does, in place: on vendor rows only, sparse (state of
    2026-11-26 had them dense on every row)."""
    for by_who in rows.values():
        for who, row in by_who.items():
            if who != ALL:
                row.pop(RANGES, None)
            elif isinstance(row.get(RANGES), list):
                row[RANGES] = kept_ranges(row, bounds)


def restored_rows(
    stored: Any, bounds: tuple[float, ...], names: list[str] | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """Rows from their stored form, new ones: positional lists (:mod:`detectors.tally_record`; ``names``
    their names table), or dicts as written until 2026-11-26 (ranges kept as now, see
    :func:`compact_ranges`)."""
    if isinstance(stored, list):
        return loaded_rows(stored, names)
    rows = copy.deepcopy(stored)
    compact_ranges(rows, bounds)
    return rows


def seen_range(bounds: tuple[float, ...], at: int, low: float, high: float) -> list[float]:
    """``[low, high]`` in bin ``at`` to whole seconds (``low`` down, ``high`` up), within the bin's edges:
    a label at a whole second reads exactly that, and a limit at a bound counts exactly."""
    lower = bounds[at - 1] if at else 0.0
    upper = bounds[at] if at < len(bounds) else math.inf
    return [whole(max(math.floor(low), lower)), whole(min(math.ceil(high), upper))]


def whole(seconds: float) -> float:
    return int(seconds) if seconds == int(seconds) else seconds


def widest(a: list[float] | None, b: list[float] | None) -> list[float] | None:
    """The range covering both ``[min, max]`` ranges (``None``: empty)."""
    if a is None:
        return None if b is None else list(b)
    if b is None:
        return list(a)
    return [min(a[0], b[0]), max(a[1], b[1])]
