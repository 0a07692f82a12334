"""The worker's clock, on which a view looks for the owners of its aggregates never heard from again.

A view that drops an owner's idle detectors (a judge's journeys, model versions, segment values) looks for
them at the owner's own observations (:class:`~streams.views.idle_looks.IdleLooks`). A retired owner (a
judge replaced) sends none, so until 2026-11-26 its aggregates and their gauges stayed for good, and a
restart exported them again: an alert on them (``ConvowatchJudgeAgreementLow`` of a judge replaced for
disagreeing with humans) never stopped. The spike view measures silence on the worker's clock
(``streams/views/spike_silence.py``); the other views do as it does, with a clock each:

the newest event time of the observations the view has had, ``contact`` ones included. Contacts are keyed by
their conversation, so on Kafka every observation partition has them and every worker's clock runs, whatever
shards it holds (one holding a retired judge's shard and nothing else busy too). The view looks once per
:data:`~streams.views.idle_looks.SWEEPS_PER_IDLE` share of its idle period of the clock, measured from the
start of that share as :class:`~streams.views.idle_looks.IdleLooks` measures, and after a start at its first
observation: a restart, whose owners' newest times come from the recovered state, drops what a run without
it drops, when it does. An owner is unheard when its newest event time, read from its aggregates, is
``idle_seconds`` before the start of the look's share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from streams.views.idle_looks import IdleLooks


class WorkerClock:
    """The newest event time a view has seen, and when it is due a look for unheard owners.

    >>> clock = WorkerClock(idle_seconds=30.0)  # a look per second of the clock
    >>> [clock.tick(ts) for ts in (3.2, 3.9, 2.0, 4.1)]
    [3.0, None, None, 4.0]
    >>> clock.clock
    4.1
    """

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.clock = -math.inf
        self._looks = IdleLooks.per_idle(idle_seconds)

    def tick(self, ts: float) -> float | None:
        """Advance the clock to ``ts`` (never back); the start of its share of the idle period if a look is
        due (recorded as done), else None."""
        if ts > self.clock:
            self.clock = ts
        return self._looks.due(None, self.clock)

    def before(self, look: float) -> float:
        """Event time before which an owner last heard of is unheard, at the look starting at ``look``."""
        return look - self.idle_seconds

    def forget(self) -> None:
        """After a start or a rebalance: the next observation is due a look (the owners may have changed)."""
        self._looks.forget()


def unheard_since(seen: Iterable[float | None], before: float) -> bool:
    """Whether none of an owner's aggregates' newest event times ``seen`` is at or after ``before`` (one
    without: state from before 2026-11-26, which the look stamps).

    >>> unheard_since([3.0, None], 4.0), unheard_since([3.0, 5.0], 4.0), unheard_since([], 4.0)
    (True, False, True)
    """
    return max((ts for ts in seen if ts is not None), default=-math.inf) < before
