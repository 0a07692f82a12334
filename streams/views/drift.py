"""Judge drift: a sustained rise in how often a judge disagrees with humans, per dimension and journey.

Each judge/human pair is one Bernoulli observation (1 = they disagree) for the judge and dimension, overall
and per journey, if its turn is in the uniform sample of the labelled turns
(``streams/views/uniform_labels.py``: a pair whose label review sampling requested with probability ``pi``
is kept with probability ``CONVOWATCH_REVIEW_MIN_PROBABILITY / pi``, the turns the human spikes keep; a
pair without ``pi`` always). A :class:`~detectors.DefectRateSpike` on that stream learns the usual
disagreement rate and alarms on a rise of unknown size; the alarm raises ``judge_drift`` naming judge,
dimension and segment with the disagreeing turns as evidence, and resolves when the rate is back. The
false-alarm budget is stated per day, all streams together (``CONVOWATCH_DRIFT_FALSE_ALARMS_PER_DAY`` at
``CONVOWATCH_DRIFT_PAIRS_PER_DAY`` pairs so kept), as the spike view's is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from detectors.defect_rate_spike import DefectRateSpike, arl0_for_budget
from streams.aggregate import Aggregator, key
from streams.emit import SEP, UNKNOWN_SEGMENT, Emit, iso
from streams.labels import SourceGuards
from streams.metrics import Metrics
from streams.policy import escalation_id
from streams.views.uniform_labels import UniformLabels


class JudgeDriftView:
    kinds: tuple[str, ...] = ("pair",)

    def __init__(
        self,
        metrics: Metrics,
        false_alarms_per_day: float = 1.0,
        pairs_per_day: float = 700_000.0,
        warmup: int = 200,
        uniform_probability: float = 0.001,
    ) -> None:
        self.metrics = metrics
        # the pairs of a uniform sample of the labelled turns, whatever review sampling requested
        self.uniform_labels = UniformLabels(uniform_probability)
        # every pair is one event of two streams (all journeys, and its own): the budget over both (Settings
        # checks the run length this gives with the same 2). Human
        # labels are a small sample: a short warm-up. (A fixed run length of 10^5 events per stream gave
        # about 14 false alarms a day at 700,000 pairs a day.)
        self.arl0 = arl0_for_budget(false_alarms_per_day, pairs_per_day, 2)
        self.warmup = warmup
        self.journeys = SourceGuards(50)  # per judge: see SourceGuards

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the journeys of the recovered drift detectors to fresh guards first (see
        ``SpikeView.rebalanced``)."""
        self.journeys = SourceGuards(self.journeys.max_values)
        journeys: dict[str, set[str]] = {}
        for drift_key, _ in aggregator.records("drift"):
            _, judge_id, _, journey = drift_key.split(SEP)
            if journey != "*":  # every journey's detector, not a journey
                journeys.setdefault(judge_id, set()).add(journey)
        for judge_id, values in journeys.items():
            self.journeys(judge_id, "journey").admit(values)

    def apply(self, aggregator: Aggregator, pair: dict[str, Any], partition: int | None) -> list[Emit]:
        # the join gives a pair of a turn judged high-risk pi 1, whatever its label copied
        if not self.uniform_labels.keeps(pair["turn_id"], pair.get("inclusion_probability")):
            return []
        judge_id, dimension = pair["judge_id"], pair["dimension"]
        disagree = pair["judge_label"] != pair["human_label"]
        segment = pair["segment"] or UNKNOWN_SEGMENT
        emits = []
        for journey in ("*", self.journeys(judge_id, "journey")(segment.get("journey"))):
            detector = aggregator.update(
                key("drift", judge_id, dimension, journey),
                pair,
                partition,
                lambda: DefectRateSpike(arl0=self.arl0, warmup=self.warmup),
                lambda d: d.retune(self.arl0).update(disagree, ref=pair["turn_id"]),  # the budget now
            )
            if detector is not None and (detector.drift_detected or detector.resolved):
                emits.append(self._escalation(detector, judge_id, dimension, journey, pair))
        return emits

    def open_escalations(
        self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool], at: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(shard key, escalation) of every drift open in the aggregates at ``keys`` of the judges this worker
        ``owns``, as if raised at ``at``: after a restart or a rebalance, for the Alertmanager sink to send
        again (nothing else re-sends them)."""
        for (judge_id, dimension, journey), detector in aggregator.owned_detectors(keys, "drift", owns):
            assert isinstance(detector, DefectRateSpike)
            if detector.in_alarm:
                yield judge_id, self._value(detector, judge_id, dimension, journey, at, firing=True)

    def _escalation(
        self, detector: DefectRateSpike, judge_id: str, dimension: str, journey: str, pair: dict[str, Any]
    ) -> Emit:
        firing = detector.drift_detected
        if firing:
            self.metrics.escalations.labels("judge_drift", "high").inc()
        value = self._value(detector, judge_id, dimension, journey, pair["ts"], firing)
        return Emit("escalations", value["escalation_id"], value)

    def _value(
        self, detector: DefectRateSpike, judge_id: str, dimension: str, journey: str, ts: float, firing: bool
    ) -> dict[str, Any]:
        where = "all journeys" if journey == "*" else f"journey {journey}"
        eid = escalation_id("judge_drift", f"{judge_id}|{dimension}|{journey}|{detector.n_alarms}")
        if firing:
            summary = (
                f"Judge drift: {judge_id} disagrees with humans on {dimension} in {where} "
                f"{detector.spike_rate:.1%} of the time, against a usual {detector.baseline:.1%}"
            )
        else:
            summary = (
                f"Judge drift over: {judge_id} on {dimension} in {where} is back near {detector.baseline:.1%}"
            )
        return {
            "schema_version": 1,
            "escalation_id": eid,
            "kind": "judge_drift",
            "severity": "high",
            "status": "firing" if firing else "resolved",
            "revision": 1 if firing else 2,
            "dimension": dimension,
            "segment": {**UNKNOWN_SEGMENT, "journey": None if journey == "*" else journey},
            "event_time": iso(ts),
            "turn_ids": [str(ref) for ref in detector.evidence],
            "summary": summary,
            "evidence": {
                "judge_id": judge_id,
                "baseline_disagreement": detector.baseline,
                "current_disagreement": detector.current_rate,
                "spike_disagreement": detector.spike_rate,
                "pairs_since_onset": detector.n - (detector.onset or 0),
                "episode": detector.n_alarms,
            },
        }
