"""The stored form of :class:`~detectors.label_tally.LabelTally` rows: each a positional list, not a dict of
field names. A vendor scorecard's record holds thousands of rows (one per vendor and annotator in each of
its 24 buckets), and with their field names it outgrew a changelog record (``MAX_WRITE_BYTES``).

A row is stored as ``[vendor, who, labels, turnaround, gold agreeing, gold total, judge agreeing, judge
total, consensus agreeing, consensus total, gold_clusters, judge_clusters]`` (``turnaround``: the bin
counts; a clusters field ``None``: not counted), and a vendor's row (``who`` is ``*``) adds its turnaround
ranges, ``[bin, min, max, ...]`` of its non-empty bins (``None``: counted without them). ``vendor`` and
``who`` are names, or indices into a names table the caller keeps (a scorecard's, shared by its buckets).
In memory rows stay dicts (see ``LabelTally._reset``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detectors.exceptions import StateError

#: A vendor's own row (all its annotators together)
ALL = "*"
#: A vendor row's per-bin turnaround ranges (:func:`~detectors.label_tally.kept_ranges`)
RANGES = "turnaround_range"
PAIRS = ("gold", "judge", "consensus")
#: The pairs also summed by label record: ``<pair>_clusters`` is [records, Σa², Σam, Σm²] of their agreeing
#: (a) and compared (m) counts
CLUSTERED = ("gold", "judge")
_SIZE = 4 + 2 * len(PAIRS) + len(CLUSTERED)


def stored_rows(
    rows: dict[str, dict[str, dict[str, Any]]],
    kept_ranges: Callable[[dict[str, Any]], dict[str, list[float]] | None],
    index: dict[str, int] | None = None,
) -> list[list[Any]]:
    """``rows`` (vendor -> who -> row) as positional lists, new ones; ``kept_ranges`` gives a vendor row's
    sparse ranges, ``index`` (if given) the position of each name in the names table."""
    stored = []
    for vendor, by_who in rows.items():
        for who, row in by_who.items():
            entry: list[Any] = [vendor, who] if index is None else [index[vendor], index[who]]
            entry += [row["labels"], list(row["turnaround"])]
            for pair in PAIRS:
                entry += row[pair]
            for pair in CLUSTERED:
                counted = row.get(f"{pair}_clusters")
                entry.append(None if counted is None else list(counted))
            if who == ALL:
                ranges = kept_ranges(row)
                flat = (
                    None if ranges is None else [x for at, seen in ranges.items() for x in (int(at), *seen)]
                )
                entry.append(flat)
            stored.append(entry)
    return stored


def loaded_rows(stored: list[Any], names: list[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Rows (vendor -> who -> row, new dicts) from :func:`stored_rows`' lists; ``names`` is the table their
    indices point into. Raises :class:`~detectors.StateError` on a list of the wrong shape."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in stored:
        if not isinstance(entry, list) or len(entry) < _SIZE:
            raise StateError(f"a stored tally row must be a list of at least {_SIZE} items, got {entry!r}")
        vendor, who = (_name(at, names) for at in entry[:2])
        if len(entry) != _SIZE + (who == ALL):
            raise StateError(f"stored tally row of {vendor!r} / {who!r} has {len(entry)} items")
        row: dict[str, Any] = {"labels": entry[2], "turnaround": list(entry[3])}
        for at, pair in enumerate(PAIRS):
            row[pair] = entry[4 + 2 * at : 6 + 2 * at]
        for at, pair in enumerate(CLUSTERED, start=4 + 2 * len(PAIRS)):
            if entry[at] is not None:
                row[f"{pair}_clusters"] = list(entry[at])
        if who == ALL and entry[-1] is not None:
            flat = entry[-1]
            row[RANGES] = {str(flat[at]): flat[at + 1 : at + 3] for at in range(0, len(flat), 3)}
        rows.setdefault(vendor, {})[who] = row
    return rows


def _name(at: Any, names: list[str] | None) -> str:
    if names is None and isinstance(at, str):
        return at
    if names is not None and isinstance(at, int) and not isinstance(at, bool) and 0 <= at < len(names):
        return names[at]
    raise StateError(f"a stored tally row names {at!r}, not in its names table")
