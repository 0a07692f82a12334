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

from typing import Any

from detectors.score_drift import ScoreDrift
from streams.views.spike_silence import SilentForPeriod

#: How long an open drift's detector has had no score before the drift is closed (the worker's clock)
SILENCE_SECONDS = 7 * 86400.0


class SilentDrifts(SilentForPeriod):
    """The worker's clock, the perceptual detectors in alarm, and which of them have gone silent for
    ``silence_seconds`` (:class:`~streams.views.spike_silence.SilentForPeriod`). Silence counts from a
    detector's last arrival on the clock: a judge whose verdicts lag the turns' contacts by hours is not
    silent."""

    kind = ScoreDrift
    looks = "open drifts"

    def __init__(self, silence_seconds: float = SILENCE_SECONDS) -> None:
        super().__init__(silence_seconds)

    def recovered_arrival(self, detector: Any) -> float | None:
        """Its last arrival, or event time for state from before arrivals were kept."""
        return detector.last_arrival if detector.last_arrival is not None else detector.last_seen

    def stamp(self, detector: Any, now: float) -> None:
        detector.arrive(now)
