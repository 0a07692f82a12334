"""Open defect spikes whose slice has gone silent: closed for want of traffic (``closed_without_traffic``).

A spike resolves once its slice's rate is shown back at the baseline, which takes turns. Until 2026-11-26 a
slice that got none any more kept its spike open for good: a model version rolled back while its spike was
open, or a judge replaced (its whole shard silent), which is what one does about a spike, left
``convowatch_defect_spike_active`` at 1, the alert paging, and the escalation sent to Alertmanager again
after every restart.

Silence is measured on the worker's clock: the newest event time of the observations the spike view has had
(judged and labelled turns, and every turn's ``contact``), which keeps running while a source is silent, and
on which a source's observations arrive as they come (human labels carry their turns' time, hours behind the
judges', and never move it back). Contacts are keyed by their conversation, so on Kafka every observation
partition has them and every worker's clock runs, whatever shards it holds: until 2026-11-26 it ran on
``turn`` observations, keyed by journey, and a worker holding a retired judge's shard and no busy journey's
had its clock stop with the judge, and the judge's spikes open for good. Each slice's detector keeps the clock
at its last observation and the typical gap between its observations on it
(:attr:`~detectors.category_spikes.CategorySpikes.typical_gap`) and its longest recent gap (a weekend); an
open spike closes once its slice has had nothing for its silence period, :func:`silence_seconds`. Open spikes
are looked at once per :data:`SWEEP_SECONDS` of the clock, measured from the start of that stretch (as
:class:`~streams.views.idle_looks.IdleLooks` measures), so a restart, which recovers the clock and the open
spikes from the state, closes what a run without it closes, when it does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from detectors.category_spikes import CategorySpikes
from streams.aggregate import Aggregator
from streams.emit import SEP
from streams.views.idle_looks import IdleLooks

#: A slice's silence period is at least an hour: a busy slice that stops (a rolled-back model version)
#: closes an hour after its last turn.
SILENCE_FLOOR_SECONDS = 3600.0
#: ... and this many typical gaps between its observations: arrivals at random (a typical gap of twice the
#: mean) are that silent by chance once in e^10, about 22,000 gaps, and a slice of a turn every 2 hours
#: waits about 20 hours (8 seeded runs of 240 such turns in a spike: 5 gaps closed none, 4 gaps one of
#: them once, 3 gaps four of them once, the hour alone each 9 to 12 times, opening a new spike after each);
#: nights and a labelling vendor's daily batches are in the typical gap as the time they take.
SILENCE_GAPS = 5.0
#: ... and this many times its longest gap of the last 7 to 14 days
#: (:attr:`~detectors.category_spikes.CategorySpikes.longest_gap`): a pause that recurs, longer than the
#: typical gap makes of it (each gap counts a day there), does not close it. A slice of weekday traffic has
#: a weekend of 62 hours: 93 hours, which a long weekend (86 hours from Friday 18:00 to Tuesday 08:00) does
#: not reach; 5 typical gaps were 54.5 hours, and its spike closed each Sunday and opened again on Monday.
LONGEST_GAP_MARGIN = 1.5
#: Open spikes are looked at once per this much of the worker's clock.
SWEEP_SECONDS = 600.0


def silence_seconds(spikes: CategorySpikes) -> float:
    """How long a slice has nothing before its open spike closes: :data:`SILENCE_GAPS` times its typical gap
    between observations, and :data:`LONGEST_GAP_MARGIN` times its longest recent one, at least
    :data:`SILENCE_FLOOR_SECONDS` (the floor alone while it has no gap)."""
    typical, longest = spikes.typical_gap or 0.0, spikes.longest_gap or 0.0
    return max(SILENCE_FLOOR_SECONDS, SILENCE_GAPS * typical, LONGEST_GAP_MARGIN * longest)


class SilentAlarms:
    """The worker's clock, the aggregates of detector type :attr:`kind` in alarm, and which of them have gone
    silent: what the spike view and the perceptual view (:mod:`streams.views.perceptual_silence`) share.

    :meth:`tick` each observation (its event time advances the clock, which it returns: the arrival to give
    the detectors it updates), :meth:`opened` the keys whose detector alarms, and when :meth:`due`, close
    the silent ones (:meth:`close`). A subclass names :attr:`kind`, says how long its detectors' silence
    period is (:meth:`silence`; :class:`SilentForPeriod`: a fixed one), what time on the clock a detector
    last had something (:meth:`arrived`) and how to give one from before arrivals were kept one
    (:meth:`stamp`)."""

    #: the detector type of the aggregates watched (by default it has ``in_alarm``, ``close()`` and
    #: ``last_arrival``: see :meth:`is_open`, :meth:`end` and :meth:`arrived`)
    kind: type[Any] = object
    #: the name its looks are due under (:class:`~streams.views.idle_looks.IdleLooks`)
    looks = "open alarms"

    def __init__(self) -> None:
        self.clock = -math.inf
        self._open: set[str] = set()
        self._sweeps = IdleLooks(SWEEP_SECONDS)

    def tick(self, ts: float) -> float:
        if ts > self.clock:
            self.clock = ts
        return self.clock

    def opened(self, key: str) -> None:
        self._open.add(key)

    def recover(self, aggregator: Aggregator, keys: Iterable[str]) -> None:
        """After a start or a rebalance: the open alarms of the aggregates at ``keys``, and the clock from
        their last arrivals (:meth:`recovered_arrival`: the newest event time they had, what the clock was or
        so little behind it that a later observation brings it back)."""
        self._open = set()
        self._sweeps.forget()
        for key in keys:
            detector = aggregator.detector(key)
            if isinstance(detector, self.kind):
                if self.is_open(detector):
                    self._open.add(key)
                if (arrived := self.recovered_arrival(detector)) is not None:
                    self.tick(arrived)

    def due(self) -> float | None:
        """The start of the clock's stretch of :data:`SWEEP_SECONDS` if its open alarms are due a look."""
        return self._sweeps.due(self.looks, self.clock)

    def close(self, aggregator: Aggregator, now: float) -> Iterator[tuple[str, Any, float]]:
        """Close the open alarms silent for their silence period at clock ``now``, each written to its shard's
        changelog partition: (key, detector, when its silence was complete) of each. Silence counts from the
        detector's last arrival on the clock; a detector from before arrivals were kept (2026-11-26) has its
        silence counted from ``now`` (written so)."""
        for key in sorted(self._open):
            detector = aggregator.detector(key)
            if not isinstance(detector, self.kind) or not self.is_open(detector):
                self._open.discard(key)  # dropped, or resolved by an observation
                continue
            partition = self.partition(aggregator, key)
            arrived = self.arrival(aggregator, key, detector)
            if arrived is None:
                aggregator.change(key, partition, lambda d: self.stamp(d, now))
                continue
            silence = self.silence(detector)
            if now - arrived >= silence:
                closed = aggregator.change(key, partition, self.end)
                assert isinstance(closed, self.kind)
                self._open.discard(key)
                yield key, closed, arrived + silence

    def is_open(self, detector: Any) -> bool:
        """Whether ``detector`` has an alarm open."""
        return bool(detector.in_alarm)

    def end(self, detector: Any) -> None:
        """Close ``detector``'s open alarms."""
        detector.close()

    def partition(self, aggregator: Aggregator, key: str) -> int | None:
        """The changelog partition of the aggregate at ``key``: its shard's, the key's first part."""
        return source_partition(aggregator, key.split(SEP, 2)[1])

    def arrival(self, aggregator: Aggregator, key: str, detector: Any) -> float | None:
        """When on the clock the alarm of ``detector`` (at ``key``) last had something: by default
        :meth:`arrived`; a subclass may read other aggregates too."""
        return self.arrived(detector)

    def arrived(self, detector: Any) -> float | None:
        """When on the clock ``detector`` last had something (None: state from before it was kept)."""
        last_arrival: float | None = detector.last_arrival
        return last_arrival

    def recovered_arrival(self, detector: Any) -> float | None:
        return self.arrived(detector)

    def silence(self, detector: Any) -> float:
        raise NotImplementedError

    def stamp(self, detector: Any, now: float) -> None:
        raise NotImplementedError


class SilentForPeriod(SilentAlarms):
    """:class:`SilentAlarms` whose alarms all close after the same silence period, ``silence_seconds``,
    whatever their detector's rhythm (perceptual drifts, version regressions)."""

    def __init__(self, silence_seconds: float) -> None:
        super().__init__()
        self.silence_seconds = silence_seconds

    def silence(self, detector: Any) -> float:
        return self.silence_seconds


class SilentSpikes(SilentAlarms):
    """The worker's clock, the spike aggregates in alarm, and which of them have gone silent
    (:class:`SilentAlarms`); :meth:`resolved` the keys whose detector resolves."""

    kind = CategorySpikes
    looks = "open spikes"

    def resolved(self, key: str, spikes: CategorySpikes) -> None:
        if not spikes.in_alarm:
            self._open.discard(key)

    def silence(self, detector: Any) -> float:
        return silence_seconds(detector)

    def stamp(self, detector: Any, now: float) -> None:
        detector.update([], [], arrival=now)

    def unheard(self, aggregator: Aggregator, keys: dict[str, set[str]], before: float) -> list[str]:
        """The sources (of ``keys``: spike keys by source) none of whose detectors had an observation at or
        after clock time ``before`` (their event time, for one from before arrivals were kept): a judge
        retired, whose own observations never come to look for its idle detectors."""
        sources = []
        for source, source_keys in sorted(keys.items()):
            latest = -math.inf
            for key in source_keys:
                spikes = aggregator.detector(key)
                if isinstance(spikes, CategorySpikes):
                    seen = spikes.last_arrival if spikes.last_arrival is not None else spikes.last_seen
                    latest = max(latest, -math.inf if seen is None else seen)
            if source_keys and latest < before:
                sources.append(source)
        return sources


def closed_summary(spikes: CategorySpikes, category: str, where: str, closed_at: float) -> str:
    """The summary of the resolution of ``category``'s spike in ``spikes``, closed at ``closed_at``."""
    detector = spikes.detector(category)
    quiet = (closed_at - (spikes.last_arrival or closed_at)) / 3600
    return (
        f"Defect spike closed without traffic: no turns in {where} for {quiet:.1f} h; {category} was at "
        f"{detector.spike_rate:.1%} against a baseline of {detector.baseline:.1%}"
    )


def source_partition(aggregator: Aggregator, source: str) -> int | None:
    """The changelog partition of the spike aggregates of ``source`` (their shard key), None without
    partitions (embedded)."""
    partition_of = aggregator.partition_of
    return None if partition_of is None else partition_of(source)
