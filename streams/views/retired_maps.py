"""An owner's map of detectors (:class:`~detectors.keyed.KeyedDetectors`) looked at on the worker's clock.

The human-calibrated defect rates (``ppi/<judge>``) and the guardrail figures against a judge
(``guardrail_judge/<judge>``) keep one map per judge, whose idle keys the view drops at the judge's own
observations. A retired judge sends none, so until 2026-11-26 its map and its gauges stayed for good. At
each look of the view's :class:`~streams.views.worker_clock.WorkerClock`, a judge none of whose keys has seen
anything for ``idle_seconds`` before the start of the look has its idle keys dropped as its own look would
(those from before 2026-11-26, without a time, stamped: idle from then on), the change written to its shard's
changelog partition, and the map deleted once empty.
"""

from __future__ import annotations

from functools import partial

from detectors.keyed import KeyedDetectors
from streams.aggregate import Aggregator, key
from streams.views.spike_silence import source_partition
from streams.views.worker_clock import unheard_since


def drop_unheard_maps(
    aggregator: Aggregator, owners: set[str], kind: str, look: float, idle_seconds: float
) -> dict[str, list[str]]:
    """For each owner of ``owners`` whose map at ``kind/<owner>`` has seen nothing at or after ``look -
    idle_seconds``: its idle keys dropped (``KeyedDetectors.drop_idle`` at ``look``), the map deleted once
    empty (the owner leaves ``owners``, as do those this worker holds no map of); the keys dropped, by
    owner."""
    dropped: dict[str, list[str]] = {}
    for owner in sorted(owners):
        at = key(kind, owner)
        keyed = aggregator.detector(at)
        if not isinstance(keyed, KeyedDetectors):
            owners.discard(owner)  # dropped, or its shard moved to another worker
            continue
        if not unheard_since(keyed.last_seen.values(), look - idle_seconds):
            continue
        partition = source_partition(aggregator, owner)
        gone: list[str] = []
        changed = aggregator.change(at, partition, partial(_drop_idle, gone, look, idle_seconds))
        if isinstance(changed, KeyedDetectors) and not changed.keys:
            aggregator.delete(at, partition)
            owners.discard(owner)
        dropped[owner] = gone
    return dropped


def _drop_idle(gone: list[str], look: float, idle_seconds: float, keyed: KeyedDetectors) -> None:
    gone.extend(keyed.drop_idle(look, idle_seconds))
