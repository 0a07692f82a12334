"""An owner's idle aggregates of one journey each dropped, and what is left for its journey guard to keep.

The views that keep an aggregate per journey (with a judge, a dimension or an outcome: judge drift, the
model-version tests, the volume and latency watches) look for idle aggregates as the spike view does
(:class:`~streams.views.idle_looks.IdleLooks`), over an *owner*'s keys: the judge whose guard admits the
journeys, or the observation partition for the views sharded by the journey itself. Until 2026-11-26 each
owner's first journeys held their aggregates and their room for good, and after turnover every new journey
(a campaign a week) was ``other`` for good, whatever the restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from streams.aggregate import Aggregator
from streams.labels import OTHER, shown


class Swept(NamedTuple):
    """What :func:`drop_idle` did: the keys it dropped, and the journeys of the aggregates kept for the
    owner's guard to retain (None: the room is kept whole, an ``other`` aggregate being open)."""

    dropped: list[str]
    kept: set[str] | None


def drop_idle(
    aggregator: Aggregator,
    keys: set[str],
    now: float,
    idle_seconds: float,
    partition: int | None,
    journey_of: Callable[[str], str | None],
    is_open: Callable[[Any], bool],
    stamp: Callable[[str, Any], Any] | None = None,
) -> Swept:
    """Drop the aggregates at ``keys`` (one owner's; the dropped and the missing leave the set) whose
    detector's ``last_seen`` is before ``now - idle_seconds`` and that are not open (``is_open``: in alarm,
    or a test decided worse whose escalation is open), their deletions to the changelog ``partition``.
    ``journey_of`` gives a key's journey (None: the key has none, e.g. all journeys' ``*``). A detector
    without ``last_seen`` (state from before 2026-11-26) is stamped ``now`` by ``stamp`` (key, detector ->
    the detector stamped and written, None on a replay: kept, stamped at the next look); without ``stamp``
    it has seen nothing, and is idle. While an aggregate of a folded journey (``other``, ``other#<p>``) is
    open, no room is given up (a journey it folds would take the room and leave it, and it would never
    resolve), and the idle aggregates of every journey are kept until the first look after it closes, so
    that a restart, which admits the journeys of the recovered aggregates, keeps the room as full."""
    looked: list[tuple[str, Any, str | None, bool]] = []
    open_other = False
    for key in sorted(keys):
        detector: Any = aggregator.detector(key)
        if detector is None:  # never made (a replay), or dropped by an earlier look
            keys.discard(key)
            continue
        if stamp is not None and detector.last_seen is None:
            detector = stamp(key, detector) or detector
        journey = journey_of(key)
        opened = bool(is_open(detector))
        open_other = open_other or (opened and journey is not None and shown(journey) == OTHER)
        looked.append((key, detector, journey, opened))
    since = now - idle_seconds
    dropped: list[str] = []
    kept: set[str] = set()
    for key, detector, journey, opened in looked:
        last_seen = detector.last_seen
        if (
            opened
            or (last_seen is None and stamp is not None)
            or (last_seen is not None and last_seen >= since)
            or (open_other and journey is not None)
        ):
            if journey is not None:
                kept.add(journey)
        else:
            aggregator.delete(key, partition)
            keys.discard(key)
            dropped.append(key)
    return Swept(dropped, None if open_other else kept)
