"""Open perceptual drifts whose scores have stopped: closed for want of traffic (``closed_without_traffic``).

A drift resolves when a test of new scores finds them back at the reference, which takes scores. Until
2026-11-26 a drift open when its scores stopped stayed open for good: a canary model version rolled back
because of its drift (what one does about it), or a judge replaced, left
``convowatch_perceptual_drift_active`` at 1, and the escalation sent to Alertmanager again after every
restart (the sink never expires a drift).

As the spike view does (:mod:`streams.views.spike_silence`), silence is measured on the worker's clock: the
newest event time of the observations the perceptual view has had (judged turns, and every turn's
``contact``, so that a worker holding a retired judge's shard has a clock that runs), on which each score
arrives as it comes (:attr:`~detectors.score_drift.ScoreDrift.last_arrival`: a judge whose verdicts lag the
turns by hours is not silent). The silence period is fixed, :data:`SILENCE_SECONDS` (a week), not the spike
view's rhythm of the slice's traffic: a review of a first version that took an hour and 5 typical gaps of the
detector's scores found a still-drifted version closing and firing again, a page each time, every quiet
night (7 times in 10 days at 5% of the day's traffic by night), at each round of a backlog's chunks (18 times
in 48 h of backlog at 0.5 turns a second: one partition's contacts move the clock hours past another's
scores), and daily on detectors from state written before the first score's time was kept. A week is longer
than any night, weekend or backlog's spread. Open drifts are looked at once per
:data:`~streams.views.spike_silence.SWEEP_SECONDS` of the clock, measured from the start of that stretch,
and a restart recovers the clock and the open drifts from the state, so it closes what a run without it
closes, when it does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from detectors.score_drift import ScoreDrift
from streams.aggregate import Aggregator
from streams.emit import SEP
from streams.views.idle_looks import IdleLooks
from streams.views.spike_silence import SWEEP_SECONDS, source_partition

#: How long an open drift's detector has had no score before the drift is closed (the worker's clock)
SILENCE_SECONDS = 7 * 86400.0


class SilentDrifts:
    """The worker's clock, the perceptual detectors in alarm, and which of them have gone silent.

    :meth:`tick` each observation (its event time advances the clock, which it returns: the arrival to give
    the detectors it updates), :meth:`opened` the keys whose detector alarms, and when :meth:`due`, close
    the silent ones (:meth:`close`)."""

    def __init__(self, silence_seconds: float = SILENCE_SECONDS) -> None:
        self.silence_seconds = silence_seconds
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
        """After a start or a rebalance: the open drifts of the detectors at ``keys``, and the clock from
        their last arrivals (or event times, for state from before arrivals were kept)."""
        self._open = set()
        self._sweeps.forget()
        for key in keys:
            detector = aggregator.detector(key)
            if isinstance(detector, ScoreDrift):
                if detector.in_alarm:
                    self._open.add(key)
                arrived = detector.last_arrival if detector.last_arrival is not None else detector.last_seen
                if arrived is not None:
                    self.tick(arrived)

    def due(self) -> float | None:
        """The start of the clock's stretch of :data:`SWEEP_SECONDS` if its open drifts are due a look."""
        return self._sweeps.due("open drifts", self.clock)

    def close(self, aggregator: Aggregator, now: float) -> Iterator[tuple[str, ScoreDrift, float]]:
        """Close the open drifts silent for ``silence_seconds`` at clock ``now``, each written to its
        judge's changelog partition: (key, detector, when its silence was complete) of each. Silence counts
        from the detector's last arrival on the clock (a judge whose verdicts lag the turns' contacts by
        hours is not silent); a detector from before arrivals were kept (2026-11-26) has its silence counted
        from ``now`` (written so)."""
        for key in sorted(self._open):
            detector = aggregator.detector(key)
            if not isinstance(detector, ScoreDrift) or not detector.in_alarm:
                self._open.discard(key)  # dropped, or resolved by a score
                continue
            partition = source_partition(aggregator, key.split(SEP, 2)[1])
            arrived = detector.last_arrival
            if arrived is None:
                aggregator.change(key, partition, lambda d: d.arrive(now))
                continue
            silence = self.silence_seconds
            if now - arrived >= silence:
                closed = aggregator.change(key, partition, ScoreDrift.close)
                assert isinstance(closed, ScoreDrift)
                self._open.discard(key)
                yield key, closed, arrived + silence
