"""Judge drift: a sustained rise in how often a judge disagrees with humans, per dimension and journey.

Each judge/human pair is one Bernoulli observation (1 = they disagree) for the judge and dimension, overall
and per journey, if its turn is in the uniform sample of the labelled turns
(``streams/views/uniform_labels.py``: a pair whose label review sampling requested with probability ``pi``
is kept with probability ``CONVOWATCH_REVIEW_MIN_PROBABILITY / pi``, the turns the human spikes keep; a
pair without ``pi`` always). A :class:`~detectors.DefectRateSpike` on that stream learns the usual
disagreement rate and alarms on a rise of unknown size; the alarm raises ``judge_drift`` naming judge,
dimension and segment with the disagreeing turns as evidence, and resolves when the rate is back (its id is
per judge, dimension, journey, episode and the event time the detector was made at,
:attr:`~detectors.DefectRateSpike.created`: not that of a detector from state written until 2026-11-26). The
false-alarm budget is stated per day, all streams together (``CONVOWATCH_DRIFT_FALSE_ALARMS_PER_DAY`` at
``CONVOWATCH_DRIFT_PAIRS_PER_DAY`` pairs so kept), as the spike view's is.

Per judge, ``max_journeys`` journeys get detectors of their own; later ones share ``other``. A detector that
has seen no pair for ``idle_seconds`` of the judge's event time (the pairs' turn times) before the start of
the day that looks (a retired journey; all journeys' ``*`` of a dimension no longer labelled) is dropped,
unless in alarm, and a journey none of the judge's detectors has left gives its room to the next new one
(:func:`~streams.views.idle_journeys.drop_idle`, looked for at the judge's first pair of each day and its
first after a start); not while one of the judge's ``other`` detectors is in alarm. A judge none of whose
detectors has seen a pair for ``idle_seconds`` before the start of a day of the worker's clock (retired: its
own pairs never come to look) has them looked at so then
(:class:`~streams.views.worker_clock.WorkerClock`). Until 2026-11-26 each
judge's first 50 journeys held their room for good, and after turnover every new journey was ``other``. A
drift in alarm whose pairs stopped (a judge replaced, a journey retired) closes once its detector has had no
pair for its silence period, 30 days of the worker's clock (``closed_without_traffic``:
``streams/views/drift_silence.py``), and is dropped when idle like any other; until 2026-11-26 it stayed in
alarm for good, its escalation sent again after every restart.
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
from streams.views.drift_silence import SILENCE_SECONDS, SilentJudgeDrifts
from streams.views.idle_journeys import drop_idle
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.spike_silence import source_partition
from streams.views.uniform_labels import UniformLabels
from streams.views.worker_clock import WorkerClock, unheard_since

ALL = "*"


class JudgeDriftView:
    kinds: tuple[str, ...] = ("pair", "contact")  # contacts: the clock (worker_clock.py)

    def __init__(
        self,
        metrics: Metrics,
        false_alarms_per_day: float = 1.0,
        pairs_per_day: float = 700_000.0,
        warmup: int = 200,
        uniform_probability: float = 0.001,
        max_journeys: int = 50,
        idle_seconds: float = IDLE_SECONDS,
        silence_seconds: float = SILENCE_SECONDS,
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
        self.journeys = SourceGuards(max_journeys)  # per judge: see SourceGuards
        self.idle_seconds = idle_seconds
        self.silence_seconds = silence_seconds
        # derived, never persisted: each judge's detector keys (those updated, and the recovered ones), and
        # when to look for its idle ones
        self._keys: dict[str, set[str]] = {}
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._clock = WorkerClock(idle_seconds)  # and of the judges never heard from again
        self._silence = SilentJudgeDrifts(silence_seconds)  # the open drifts, and another clock to close them

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the journeys of the recovered drift detectors to fresh guards first (see
        ``SpikeView.rebalanced``)."""
        self.journeys = SourceGuards(self.journeys.max_values)
        journeys: dict[str, set[str]] = {}
        self._keys = {}
        self._looks.forget()
        self._clock.forget()
        for drift_key, _ in aggregator.records("drift"):
            _, judge_id, _, journey = drift_key.split(SEP)
            self._keys.setdefault(judge_id, set()).add(drift_key)
            if journey != ALL:  # every journey's detector, not a journey
                journeys.setdefault(judge_id, set()).add(journey)
        for judge_id, values in journeys.items():
            self.journeys(judge_id, "journey").admit(values)
        self._silence.recover(aggregator, [k for keys in self._keys.values() for k in keys])

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        """A pair's disagreement; on the worker's clock, the open drifts of detectors with no pair for
        ``silence_seconds`` closed, and the idle detectors of the judges with no pair for ``idle_seconds``
        (retired: their own pairs, which look for them, never come) dropped."""
        self._silence.tick(obs["ts"])
        emits = self._pair(aggregator, obs, partition) if obs["kind"] == "pair" else []
        if (now := self._silence.due()) is not None:
            for drift_key, detector, silent_at in self._silence.close(aggregator, now):
                _, judge_id, dimension, journey = drift_key.split(SEP)
                value = self._value(detector, judge_id, dimension, journey, silent_at, False, silent=True)
                emits.append(Emit("escalations", value["escalation_id"], value))
        if (look := self._clock.tick(obs["ts"])) is not None:
            self._drop_unheard(aggregator, look)
        return emits

    def _drop_unheard(self, aggregator: Aggregator, look: float) -> None:
        before = self._clock.before(look)
        for judge_id, keys in sorted(self._keys.items()):
            seen = []
            for drift_key in keys:
                detector = aggregator.detector(drift_key)
                seen.append(detector.last_seen if isinstance(detector, DefectRateSpike) else None)
            if not unheard_since(seen, before):
                continue
            partition = source_partition(aggregator, judge_id)
            self._drop_idle(
                aggregator, judge_id, look, _changed_stamp(aggregator, partition, look), partition
            )
            if not keys:
                del self._keys[judge_id]

    def _pair(self, aggregator: Aggregator, pair: dict[str, Any], partition: int | None) -> list[Emit]:
        # the join gives a pair of a turn judged high-risk pi 1, whatever its label copied
        if not self.uniform_labels.keeps(pair["turn_id"], pair.get("inclusion_probability")):
            return []
        judge_id, dimension = pair["judge_id"], pair["dimension"]
        disagree = pair["judge_label"] != pair["human_label"]
        segment = pair["segment"] or UNKNOWN_SEGMENT
        ts = pair["ts"]
        keys = self._keys.get(judge_id) or self._keys.setdefault(judge_id, set())
        emits = []
        for journey in (ALL, self.journeys(judge_id, "journey")(segment.get("journey"))):
            drift_key = key("drift", judge_id, dimension, journey)
            keys.add(drift_key)
            detector = aggregator.update(
                drift_key,
                pair,
                partition,
                self._make,
                lambda d: d.retune(self.arl0).update(disagree, ref=pair["turn_id"], ts=ts),  # the budget now
            )
            if detector is not None and (detector.drift_detected or detector.resolved):
                emits.append(self._escalation(detector, judge_id, dimension, journey, pair))
                if detector.drift_detected:
                    self._silence.opened(drift_key)
        now = self._looks.due(judge_id, ts)
        if now is not None:

            def stamp(drift_key: str, _: DefectRateSpike) -> DefectRateSpike | None:
                return aggregator.update(drift_key, pair, partition, self._make, lambda d: d.stamp(now))

            self._drop_idle(aggregator, judge_id, now, stamp, partition)
        return emits

    def _make(self) -> DefectRateSpike:
        return DefectRateSpike(arl0=self.arl0, warmup=self.warmup)

    def _drop_idle(
        self,
        aggregator: Aggregator,
        judge_id: str,
        now: float,
        stamp: Callable[[str, DefectRateSpike], DefectRateSpike | None],
        partition: int | None,
    ) -> None:
        """Drop ``judge_id``'s idle detectors not in alarm (:func:`~streams.views.idle_journeys.drop_idle`;
        those from before 2026-11-26 stamped ``now`` by ``stamp``), and give up the room of the journeys none
        is left of, unless an ``other`` one is in alarm."""
        kept = drop_idle(
            aggregator,
            self._keys.get(judge_id, set()),
            now,
            self.idle_seconds,
            partition,
            _journey,
            lambda d: d.in_alarm,
            stamp,
        ).kept
        if kept is not None:
            self.journeys(judge_id, "journey").retain(kept)

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
        self,
        detector: DefectRateSpike,
        judge_id: str,
        dimension: str,
        journey: str,
        ts: float,
        firing: bool,
        silent: bool = False,
    ) -> dict[str, Any]:
        """The escalation of the drift of ``detector``, firing or resolved at event time ``ts``, or closed at
        ``ts`` because its pairs stopped (``silent``)."""
        where = "all journeys" if journey == "*" else f"journey {journey}"
        subject = f"{judge_id}|{dimension}|{journey}|{detector.n_alarms}"
        eid = escalation_id("judge_drift", subject, detector.created)  # a detector made again: ids of its own
        if firing:
            summary = (
                f"Judge drift: {judge_id} disagrees with humans on {dimension} in {where} "
                f"{detector.spike_rate:.1%} of the time, against a usual {detector.baseline:.1%}"
            )
        elif silent:  # at ts, its silence period after its last pair
            summary = (
                f"Judge drift closed without traffic: no pairs or verdicts of {judge_id} on {dimension} "
                f"in {where} for "
                f"{self.silence_seconds / 86400:.1f} days; it disagreed with humans "
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
                "closed_without_traffic": silent,
            },
        }


def _changed_stamp(
    aggregator: Aggregator, partition: int | None, now: float
) -> Callable[[str, DefectRateSpike], Any]:
    """A stamp for :func:`~streams.views.idle_journeys.drop_idle` outside any pair: written as a change."""

    def stamp(drift_key: str, _: DefectRateSpike) -> Any:
        return aggregator.change(drift_key, partition, lambda d: d.stamp(now))

    return stamp


def _journey(drift_key: str) -> str | None:
    """The journey of a drift detector's key (None: all journeys' ``*``)."""
    journey = drift_key.rsplit(SEP, 1)[1]
    return None if journey == ALL else journey
