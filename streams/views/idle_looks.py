"""When a view looks for idle detectors: once per period of an owner's event time, and after a start."""

from __future__ import annotations

import math
from collections.abc import Hashable

#: Event time after which a view's detectors of a value that saw nothing are dropped (unless in alarm).
IDLE_SECONDS = 30 * 86400.0
#: Idle detectors are looked for once per this share of ``idle_seconds`` of an owner's event time (daily).
SWEEPS_PER_IDLE = 30


class IdleLooks:
    """Tells a view when to look for the idle detectors of an owner (a judge, a judge and dimension), and
    the event time to measure idleness against.

    Event time is cut into periods of ``every`` seconds, ``[k * every, (k + 1) * every)``; the first
    observation of an owner in a period later than its last look's is due a look, and so is its first after
    a start (nothing is persisted: :meth:`forget` after a rebalance). A look measures idleness against the
    start of its period, not the observation's time: a look after a restart, at any time in a period an
    earlier look has seen, drops nothing the period's first look kept, so a run restarted in the middle of a
    period ends as one that was not (looks every ``every`` seconds from each start would drop, and give a
    new value room, at other times).

    >>> looks = IdleLooks(every=10.0)
    >>> [looks.due("judge-a", ts) for ts in (3.0, 9.0, 12.0, 11.0, 25.0)]
    [0.0, None, 10.0, None, 20.0]
    >>> looks.forget()
    >>> looks.due("judge-a", 27.0)
    20.0
    """

    def __init__(self, every: float) -> None:
        if not every > 0:
            raise ValueError(f"every must be positive, got {every!r}")
        self.every = every
        self._next: dict[Hashable, float] = {}  # owner: the start of the period after its last look's

    @classmethod
    def per_idle(cls, idle_seconds: float) -> IdleLooks:
        """Looks :data:`SWEEPS_PER_IDLE` times per ``idle_seconds`` (a view's argument, checked here).

        >>> IdleLooks.per_idle(30 * 86400.0).every
        86400.0
        """
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds!r}")
        return cls(idle_seconds / SWEEPS_PER_IDLE)

    def due(self, owner: Hashable, ts: float) -> float | None:
        """The start of the period of ``ts`` if ``owner`` is due a look at ``ts`` (it is recorded as
        done), else None."""
        if ts < self._next.get(owner, -math.inf):
            return None
        start = math.floor(ts / self.every) * self.every
        self._next[owner] = start + self.every
        return start

    def forget(self) -> None:
        """Forget every look: each owner's next observation is due one (after a start or a rebalance)."""
        self._next.clear()
