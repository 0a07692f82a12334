"""Open judge drifts whose pairs have stopped: closed for want of traffic (``closed_without_traffic``).

A ``judge_drift`` resolves when pairs show the judge's disagreement with humans back at its usual rate, which
takes pairs. Until 2026-11-26 a drift open when its pairs stopped stayed open for good: a judge replaced
because of its drift (what one does about it), a journey retired, or a dimension humans no longer label,
kept its detector in alarm (the idle drop keeps those), and the escalation was sent to Alertmanager again
after every restart.

As for perceptual drifts (:mod:`streams.views.perceptual_silence`), silence is measured on the worker's clock
(the newest event time of the pairs and contacts the drift view has had) and is a fixed period,
:data:`SILENCE_SECONDS`, looked at once per :data:`~streams.views.spike_silence.SWEEP_SECONDS` of the clock;
a restart recovers the clock and the open drifts from the state. Unlike scores, pairs come only as humans
label, in batches, audits and with holidays between: a week without pairs is no sign of a retired judge, and
closing then would page again when the labels come back with the judge still off. The period is 30 days,
the idle period after which the judge's other figures go (its agreement figures, its idle detectors), and it
counts from the drift's last pair's event time (its turn's: the detectors keep no arrival time), as the idle
drop does, so that a closed drift is dropped at the next day's look.
"""

from __future__ import annotations

from typing import Any

from detectors.defect_rate_spike import DefectRateSpike
from streams.views.idle_looks import IDLE_SECONDS
from streams.views.spike_silence import SilentForPeriod

#: How long an open drift's detector has had no pair (its newest pair's turn time, on the worker's clock)
#: before the drift is closed.
SILENCE_SECONDS = IDLE_SECONDS


class SilentJudgeDrifts(SilentForPeriod):
    """The worker's clock, the judge-drift detectors in alarm, and which of them have had no pair for
    ``silence_seconds`` (:class:`~streams.views.spike_silence.SilentForPeriod`), counted from the newest
    pair's event time."""

    kind = DefectRateSpike
    looks = "open judge drifts"

    def __init__(self, silence_seconds: float = SILENCE_SECONDS) -> None:
        super().__init__(silence_seconds)

    def arrived(self, detector: Any) -> float | None:
        last_seen: float | None = detector.last_seen
        return last_seen

    def stamp(self, detector: Any, now: float) -> None:
        detector.stamp(now)
