"""Open judge drifts of a judge that has gone silent: closed for want of traffic (``closed_without_traffic``).

A ``judge_drift`` resolves when pairs show the judge's disagreement with humans back at its usual rate, which
takes pairs. Until 2026-11-26 a drift open when its pairs stopped stayed open for good: a judge replaced
because of its drift (what one does about it) kept its detector in alarm (the idle drop keeps those), and the
escalation was sent to Alertmanager again after every restart.

Pairs come only as humans label, in batches and audits with holidays between, so their silence is no sign of a
retired judge: a first version of this (2026-11-26) closed a drift after 30 days without pairs, and with a
monthly audit an active judge's drift closed, its detector went with the idle drop, and the next detector
learned the drifted rate as its baseline: one page, then silence (the day's review). A drift therefore closes
only once its **judge** has gone silent on the dimension: no pair of the drift's detector and no verdict of
the judge on the dimension for :data:`SILENCE_SECONDS` (30 days, the idle period after which the judge's
other figures go). The verdicts are read from the judge and dimension's agreement aggregate, which stamps
their newest time into the state at most a day late
(:class:`~streams.views.agreement_heard.VerdictsHeard`; the same shard, the judge's): it counts as heard a
day after its stamp. Once the agreement view has dropped that aggregate (no pair and no verdict for 30 days:
a retired judge) the pairs alone count; while its stamp is unknown (state from before the stamp) the drift
stays open. A journey retired while its judge goes on judging the dimension keeps its drift open, as before:
its pairs' silence alone is not enough.

Silence is measured on the worker's clock (the newest event time of the pairs and contacts the drift view
has had), looked at once per :data:`~streams.views.spike_silence.SWEEP_SECONDS`; a restart recovers the
clock and the open drifts from the state, and the stamps are in it.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.agreement_breakdown import AgreementBreakdown
from detectors.defect_rate_spike import DefectRateSpike
from streams.aggregate import Aggregator, key
from streams.emit import SEP
from streams.views.agreement_heard import counted_heard_at
from streams.views.idle_looks import IDLE_SECONDS
from streams.views.spike_silence import SilentForPeriod

#: How long an open drift's judge has had no verdict on the dimension, and its detector no pair (their
#: newest event times, on the worker's clock), before the drift is closed.
SILENCE_SECONDS = IDLE_SECONDS


class SilentJudgeDrifts(SilentForPeriod):
    """The worker's clock, the judge-drift detectors in alarm, and which of them have had no pair, and their
    judge no verdict on the dimension, for ``silence_seconds``
    (:class:`~streams.views.spike_silence.SilentForPeriod`)."""

    kind = DefectRateSpike
    looks = "open judge drifts"

    def __init__(self, silence_seconds: float = SILENCE_SECONDS) -> None:
        super().__init__(silence_seconds)

    def arrival(self, aggregator: Aggregator, drift_key: str, detector: Any) -> float | None:
        """The newest of the detector's last pair and its judge's last verdict on the dimension (its
        agreement aggregate's stamp, a day after it; none once that aggregate is dropped; never while the
        stamp is unknown)."""
        last_pair: float | None = detector.last_seen
        if last_pair is None:
            return None
        _, judge_id, dimension, _ = drift_key.split(SEP)
        breakdown = aggregator.detector(key("agreement_detail", judge_id, dimension))
        if not isinstance(breakdown, AgreementBreakdown):
            return last_pair  # the judge's agreement figures dropped: neither pair nor verdict for 30 days
        if breakdown.heard is None:
            return math.inf  # not stamped yet (state from before the stamp): kept open until it is
        return max(last_pair, counted_heard_at(breakdown.heard))

    def arrived(self, detector: Any) -> float | None:
        last_seen: float | None = detector.last_seen
        return last_seen

    def stamp(self, detector: Any, now: float) -> None:
        detector.stamp(now)
