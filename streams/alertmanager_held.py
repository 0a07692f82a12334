"""The alerts :class:`streams.alertmanager.AlertmanagerSink` holds, by escalation id: which revision wins,
which alerts wait to be sent or are due again, which are dropped at the cap or expired, and when one is
forgotten (resolved and delivered).

No I/O, no threads, no lock: the sink calls :class:`HeldAlerts` under its own lock and decides when to send.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from streams.alertmanager_payload import alert_labels

#: Joins an escalation id and a version in the key of the resolve of labels a later revision replaced
SUPERSEDED = "#superseded-"


@dataclass(slots=True)
class _Active:
    """What the sink knows about one escalation."""

    escalation: dict[str, Any]
    revision: int
    resolved_at: datetime | None  # wall clock; None while firing
    touched: float  # monotonic time of the last update (the expiry clock)
    first_seen: datetime  # wall clock of the first publish: the latest startsAt, stable across re-sends
    version: int  # bumped on every change, to tell whether what was sent is still current
    last_sent: float = -math.inf  # monotonic time Alertmanager last accepted it
    source: Any = None  # what the escalation came from (a topic partition), for :meth:`HeldAlerts.forget`


class Outgoing(NamedTuple):
    """A snapshot of one alert to send, taken under the sink's lock."""

    eid: str
    version: int
    escalation: dict[str, Any]
    resolved_at: datetime | None
    first_seen: datetime


class HeldAlerts:
    """Alerts held (firing, or resolved and not yet delivered), least recently updated first.

    At most ``max_active`` are held. Firing alerts of ``expiring_kinds`` without an update for
    ``expire_after`` seconds (``None``: never) are resolved by :meth:`take`. Not thread-safe.
    """

    def __init__(self, max_active: int, expiring_kinds: frozenset[str], expire_after: float | None) -> None:
        self.max_active = max_active
        self.expiring_kinds = expiring_kinds
        self.expire_after = expire_after
        self._active: OrderedDict[str, _Active] = OrderedDict()  # least recently updated first
        self._done: OrderedDict[str, int] = OrderedDict()  # resolved id -> revision, to ignore replays
        self._dirty: set[str] = set()  # ids to send as soon as the batch delay is over

    def __len__(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        """Alerts waiting to be sent: new, changed, or to retry."""
        return len(self._dirty)

    def escalations(self) -> list[dict[str, Any]]:
        """The escalations held (latest revision each), least recently updated first."""
        return [entry.escalation for eid, entry in self._active.items() if SUPERSEDED not in eid]

    def record(self, value: dict[str, Any], labels: dict[str, str], source: Any, now: float) -> int | None:
        """Hold the escalation ``value`` (``labels``: its alert's) to be sent; ``None`` if it is re-delivered
        or out of date, else how many alerts were dropped to hold at most ``max_active``. ``now`` is
        monotonic."""
        eid = str(value["escalation_id"])
        revision = int(value.get("revision") or 1)
        resolved = value.get("status") == "resolved"
        current = self._active.get(eid)
        if current is not None and (
            revision < current.revision
            # the same revision again, unless it resolves what fires (a later one always applies)
            or (revision == current.revision and not (resolved and current.resolved_at is None))
        ):
            return None  # re-delivered or out of date (at-least-once delivery)
        if current is None and self._done.get(eid, 0) >= revision:
            return None  # already resolved at this revision or later
        if current is not None and current.resolved_at is None and alert_labels(current.escalation) != labels:
            # A later revision changes the alert's labels (the turn's segment came, the severity rose, a
            # second dimension failed): Alertmanager would hold the old ones as another alert until they
            # time out, paging twice. End it now: the old labels are sent once, resolved.
            superseded = f"{eid}{SUPERSEDED}{current.version}"
            self._active[superseded] = replace(current, resolved_at=datetime.now(UTC), version=1)
            self._dirty.add(superseded)
        self._active[eid] = _Active(
            escalation=value,
            revision=revision,
            resolved_at=datetime.now(UTC) if resolved else None,
            touched=now,
            first_seen=current.first_seen if current else datetime.now(UTC),
            version=current.version + 1 if current else 1,
            last_sent=current.last_sent if current else -math.inf,
            source=source if source is not None or current is None else current.source,
        )
        self._active.move_to_end(eid)
        self._dirty.add(eid)
        dropped = 0
        while len(self._active) > self.max_active:
            old = self._least_needed(eid)
            del self._active[old]
            self._dirty.discard(old)
            dropped += 1
        return dropped

    def forget(self, keep: Callable[[Any], bool]) -> int:
        """Drop the firing alerts whose ``source`` ``keep`` refuses, without resolving them; how many."""
        stale = [
            eid
            for eid, entry in self._active.items()
            if entry.resolved_at is None and entry.source is not None and not keep(entry.source)
        ]
        for eid in stale:
            del self._active[eid]
            self._dirty.discard(eid)
        return len(stale)

    def _least_needed(self, published: str) -> str:
        """The alert to drop at the cap: the least recently updated of a kind that expires anyway (a
        high-risk failure), else the least recently updated; ``published`` (the one just published) only if
        nothing else is held. An aggregate's alert (a defect spike) is published once and then not until it
        resolves: dropped first, it would lapse while still true."""
        others = [eid for eid in self._active if eid != published] or [published]
        for eid in others:
            if self._active[eid].escalation.get("kind") in self.expiring_kinds:
                return eid
        return others[0]

    def take(self, now: float, resend_before: float | None) -> tuple[list[Outgoing], int]:
        """What must be sent now, and how many alerts expired: the alerts waiting and, on a scan (given
        ``resend_before``), those last sent before it and those expiring now (resolved here). Monotonic
        times."""
        ids = set(self._dirty)
        self._dirty.clear()
        expired = 0
        if resend_before is not None:
            for eid, entry in self._active.items():
                if (
                    self.expire_after is not None
                    and entry.resolved_at is None
                    and entry.escalation.get("kind") in self.expiring_kinds
                    and now - entry.touched >= self.expire_after
                ):
                    entry.resolved_at = datetime.now(UTC)
                    entry.version += 1
                    expired += 1
                    ids.add(eid)
                elif entry.last_sent <= resend_before:
                    ids.add(eid)
        batch = [
            Outgoing(eid, e.version, e.escalation, e.resolved_at, e.first_seen)
            # resolves of superseded labels first: if the labels went back to them, the firing alert wins
            for eid in sorted(ids, key=lambda eid: SUPERSEDED not in eid)
            if (e := self._active.get(eid)) is not None
        ]
        return batch, expired

    def retry(self, eids: Iterable[str]) -> None:
        """Send these alerts again with the next batch (those still held)."""
        for eid in eids:
            if eid in self._active:
                self._dirty.add(eid)

    def done_with(self, chunk: Iterable[tuple[str, int, Any]], now: float) -> None:
        """Alertmanager accepted or rejected the ``(id, version, alert)`` of ``chunk`` at monotonic ``now``:
        an alert resolved at that version is forgotten, and its revision remembered to ignore replays."""
        for eid, version, _ in chunk:
            entry = self._active.get(eid)
            if entry is None:
                continue
            entry.last_sent = now
            if entry.version == version and entry.resolved_at is not None:
                del self._active[eid]  # resolved and delivered: forget it
                if SUPERSEDED in eid:
                    continue
                self._done[eid] = entry.revision
                self._done.move_to_end(eid)
                while len(self._done) > self.max_active:
                    self._done.popitem(last=False)
