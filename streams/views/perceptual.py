"""Perceptual scores of multimodal outputs: their distributions, and drift in them (``perceptual_drift``).

A judge's verdict on an image, audio, video or 3D turn may carry numeric perceptual scores (``scores`` of
:class:`~schemas.JudgeVerdict`: a VLM's artifact, prompt-alignment or CLIP-style scores); the ``judged``
observation carries them with the turn's segment. Per judge, modality, model version and score name one
:class:`~detectors.ScoreDrift` compares the latest scores with a reference sample of the first ones (a
two-sample Kolmogorov-Smirnov test, so a change of spread or shape at the same mean counts as much as a
shifted mean). The judge is part of the key because two judges' scores are not on the same scale, and
because ``judged`` observations are sharded by judge. A drift raises ``perceptual_drift`` (firing), which
resolves when the recent scores match the reference again, or closes once the detector has had no score for
its silence period (``closed_without_traffic``: a rolled-back model version, a replaced judge;
``streams/views/perceptual_silence.py``). Its ``escalation_id`` is stable per judge,
modality, model version and score: a later episode re-publishes it with the next revisions (firing
``2k - 1``, resolved ``2k`` for the k-th episode). A detector dropped when idle (below) and made again
starts at episode 1 under an id of its own: the id includes the event time it was made at
(:attr:`~detectors.ScoreDrift.created`; not that of a detector from state written until 2026-11-26).

Scores are expected in [0, 1]: ``convowatch_perceptual_score`` counts values outside in its edge buckets (the
detector sees them unchanged). State is bounded: per judge, the first ``max_keys`` model versions and the
first ``max_keys`` score names seen get detectors of their own; later ones share ``other``. A judge's detector
that has seen nothing for ``idle_seconds`` of the judge's event time (a retired model version) is dropped,
unless in alarm, with its metric series, and a model version or score name none of the judge's detectors has
left gives up its room to the next new one: looked for daily (:class:`~streams.views.idle_looks.IdleLooks`)
and at the judge's first observation after a start; for a judge none of whose detectors has seen a score for
``idle_seconds`` (retired: its own observations never come), daily on the worker's clock
(:class:`~streams.views.worker_clock.WorkerClock`; until 2026-11-26 its detectors and series stayed for good).
Until 2026-11-26 the first 20 held their room for good, and after turnover every new model version shared
``other``. Not while one of the judge's ``other`` detectors of that label is in alarm: the values it folds
would take the room and leave it, and it would never resolve; the idle detectors of the values that keep their
room are kept too, so that a restart, which admits the values of the recovered detectors, keeps the room as
full.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from detectors.score_drift import ScoreDrift
from streams.aggregate import Aggregator
from streams.emit import SEP, Emit
from streams.labels import OTHER, UNKNOWN, SourceGuards
from streams.metrics import Metrics
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.label_cache import LabelCache
from streams.views.perceptual_escalation import KIND, SEVERITY, drift_value
from streams.views.perceptual_silence import SILENCE_SECONDS, SilentDrifts
from streams.views.spike_silence import source_partition
from streams.views.worker_clock import WorkerClock, unheard_since

#: The guarded parts of a detector's key (after ``perceptual``, the judge and the modality).
GUARDED = ("model_version", "score")


class _Children:
    """One score's metric children, each created on first use (a series appears when first set)."""

    def __init__(self, metrics: Metrics, labels: tuple[str, ...]) -> None:
        self.metrics = metrics
        self.labels = labels

    @functools.cached_property
    def score(self) -> Any:
        return self.metrics.perceptual_score.labels(*self.labels)

    @functools.cached_property
    def statistic(self) -> Any:
        return self.metrics.perceptual_drift_statistic.labels(*self.labels)


class PerceptualView:
    kinds: tuple[str, ...] = ("judged", "contact")  # contacts: the clock (perceptual_silence.py)

    def __init__(
        self,
        metrics: Metrics,
        reference_size: int = 500,
        window_size: int = 200,
        check_every: int = 50,
        false_alarms: float = 0.01,
        horizon: int = 100_000,
        max_keys: int = 20,
        idle_seconds: float = IDLE_SECONDS,
        silence_seconds: float = SILENCE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        self.silence_seconds = silence_seconds
        self.params: dict[str, Any] = {
            "reference_size": reference_size,
            "window_size": window_size,
            "check_every": check_every,
            "alpha": false_alarms,
            "horizon": horizon,
        }
        try:
            ScoreDrift(**self.params)
        except ValueError as exc:
            raise ValueError(f"CONVOWATCH_PERCEPTUAL_* settings: {exc}") from None
        # detector keys stay bounded too (each holds 900 floats, ~12 KB as JSON with the default sizes):
        # past ``max_keys`` model versions or score names, the rest share an "other" detector
        self.guards = SourceGuards(max_keys)  # per judge: see SourceGuards
        self._cache = LabelCache(self._new_children)
        # derived, never persisted: each judge's detector keys (from those built and the recovered state),
        # and when to look for its idle ones
        self._keys: dict[str, set[str]] = {}
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._silence = SilentDrifts(silence_seconds)  # the worker's clock and its open drifts
        self._clock = WorkerClock(idle_seconds)  # and the looks for the judges never heard from again
        # the label values of the metric series each detector's scores were exported under (in this
        # process): for closing its open flag, and for removing its series when it is dropped
        self._series: dict[str, set[tuple[str, ...]]] = {}

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the model versions and score names of the recovered detectors first (see
        ``SpikeView.rebalanced``), to fresh guards."""
        seen: dict[tuple[str, str], set[str]] = {}
        self.guards = SourceGuards(self.guards.max_values)
        self._keys = {}
        for perceptual_key, _ in aggregator.records("perceptual"):
            judge_id, parts = _guarded(perceptual_key)
            self._keys.setdefault(judge_id, set()).add(perceptual_key)
            for name, value in parts:
                seen.setdefault((judge_id, name), set()).add(value)
        for (judge_id, name), values in seen.items():
            self.guards(judge_id, name).admit(values)
        self._cache = LabelCache(self._new_children)
        self._looks.forget()
        self._clock.forget()
        self._silence.recover(aggregator, [k for keys in self._keys.values() for k in keys])

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        """A judged turn's scores; on the clock of every observation, the open drifts of silent detectors
        closed, and the idle detectors of the judges with no score for ``idle_seconds`` (retired: their own
        observations, which look, never come) dropped as their own look would."""
        arrival = self._silence.tick(obs["ts"])
        emits = self._observe(aggregator, obs, partition, arrival) if obs["kind"] == "judged" else []
        if (now := self._silence.due()) is not None:
            for perceptual_key, detector, silent_at in self._silence.close(aggregator, now):
                _, judge_id, modality, model_version, score = perceptual_key.split(SEP)
                where = (judge_id, modality, model_version, score)
                for labels in self._series.get(perceptual_key, ()):
                    self.metrics.perceptual_open.set(labels, where, False)
                value = drift_value(detector, where, silent_at, None, firing=False, silent=True)
                emits.append(Emit("escalations", value["escalation_id"], value))
        if (look := self._clock.tick(obs["ts"])) is not None:
            self._drop_unheard(aggregator, look)
        return emits

    def _drop_unheard(self, aggregator: Aggregator, look: float) -> None:
        before = self._clock.before(look)
        for judge_id, keys in sorted(self._keys.items()):
            seen = [getattr(aggregator.detector(k), "last_seen", None) for k in keys]
            if unheard_since(seen, before):
                partition = source_partition(aggregator, judge_id)
                change = functools.partial(aggregator.change, partition=partition, apply=_stamp(look))
                self._drop_idle(aggregator, judge_id, look, change, partition)
                if not keys:
                    del self._keys[judge_id]

    def _observe(
        self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None, arrival: float
    ) -> list[Emit]:
        scores: dict[str, float] = obs.get("scores") or {}
        if not scores:
            return []
        judge_id, segment, ts = obs["judge_id"], obs["segment"], obs["ts"]
        modality = segment.get("modality") or UNKNOWN
        model_version = self.guards(judge_id, "model_version")(segment.get("model_version"))
        keys = self._keys.get(judge_id) or self._keys.setdefault(judge_id, set())
        emits: list[Emit] = []
        for name, value in sorted(scores.items()):
            score = self.guards(judge_id, "score")(name)
            perceptual_key = f"perceptual{SEP}{judge_id}{SEP}{modality}{SEP}{model_version}{SEP}{score}"
            keys.add(perceptual_key)
            detector = aggregator.update(
                perceptual_key,
                obs,
                partition,
                self._make,
                functools.partial(ScoreDrift.update, x=value, ts=ts, arrival=arrival),
            )
            if detector is None:  # a replay: already counted
                continue
            children = self._children(perceptual_key, judge_id, modality, segment.get("model_version"), name)
            children.score.observe(min(max(value, 0.0), 1.0))
            if detector.checked:
                children.statistic.set(detector.statistic)
                self.metrics.perceptual_open.set(
                    children.labels, (judge_id, modality, model_version, score), detector.in_alarm
                )
            if detector.drift_detected or detector.resolved:
                emits.append(self._escalation(detector, judge_id, modality, model_version, score, obs))
                if detector.drift_detected:
                    self._silence.opened(perceptual_key)
        now = self._looks.due(judge_id, ts)
        if now is not None:

            def stamp(perceptual_key: str) -> Any:  # with ``obs``: None on its replay (stamped later)
                return aggregator.update(perceptual_key, obs, partition, self._make, _stamp(now))

            self._drop_idle(aggregator, judge_id, now, stamp, partition)
        return emits

    def _make(self) -> ScoreDrift:
        return ScoreDrift(**self.params)

    def _drop_idle(
        self,
        aggregator: Aggregator,
        judge_id: str,
        now: float,
        stamp: Callable[[str], Any],
        partition: int | None,
    ) -> None:
        """Drop ``judge_id``'s detectors that saw nothing for ``idle_seconds`` before ``now`` and are not in
        alarm (their deletions to the changelog ``partition`` of the judge's observations; a detector
        without an event time stamped ``now`` by ``stamp``: key -> the detector written, or None on a
        replay), and release the guard room of the model versions and score names none of its detectors
        has left. Not while an ``other`` detector of that
        label is in alarm: a value it folds could take the room and leave it, so the idle detectors of the
        values that keep their room are kept too, until the first look after it resolves (the state a
        restart recovers the guards from must name every value the room is kept for)."""
        keys = self._keys.get(judge_id, set())
        detectors: list[tuple[str, ScoreDrift, tuple[tuple[str, str], ...]]] = []
        open_other: set[str] = set()  # labels one of whose "other" detectors is in alarm
        for perceptual_key in sorted(keys):
            detector = aggregator.detector(perceptual_key)
            if not isinstance(detector, ScoreDrift):
                keys.discard(perceptual_key)  # never made (a replay), or dropped by an earlier look
                continue
            if detector.last_seen is None:  # state from before 2026-11-26: idle from now on, written so
                detector = stamp(perceptual_key) or detector
            _, values = _guarded(perceptual_key)
            if detector.in_alarm:
                open_other.update(name for name, value in values if value == OTHER)
            detectors.append((perceptual_key, detector, values))
        kept: set[tuple[str, str]] = set()  # (label, value) of the detectors kept
        dropped: list[str] = []
        for perceptual_key, detector, values in detectors:
            last_seen = detector.last_seen
            if (
                detector.in_alarm
                or last_seen is None
                or last_seen >= now - self.idle_seconds
                or any(name in open_other and value != OTHER for name, value in values)
            ):
                kept.update(values)
            else:
                aggregator.delete(perceptual_key, partition)
                keys.discard(perceptual_key)
                dropped.append(perceptual_key)
        for name in GUARDED:
            if name not in open_other:
                self.guards(judge_id, name).retain(value for n, value in kept if n == name)
        if dropped:
            self._remove_series(dropped)

    def _remove_series(self, dropped: list[str]) -> None:
        """Remove the metric series of the ``dropped`` detectors that no other detector's scores were
        exported under (a value folded by a metric label guard shares ``other``), and build the metric
        children afresh (a removed child, still cached, would be set unexported)."""
        gone = set().union(*(self._series.pop(perceptual_key, ()) for perceptual_key in dropped))
        gone.difference_update(*self._series.values())
        m = self.metrics
        for labels in gone:
            for family in (m.perceptual_score, m.perceptual_drift_statistic, m.perceptual_drift_active):
                family.remove(*labels)
        self._cache = LabelCache(self._new_children)

    def open_escalations(
        self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool], at: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(shard key, escalation) of every drift open in the detectors at ``keys`` of the judges this worker
        ``owns``: after a restart or a rebalance, for the Alertmanager sink to send again (nothing else does
        before the drift resolves). Each has the id, revision, labels, severity and status of the record its
        episode fired with; a detector keeps neither the figures of the check that fired nor the turn: the
        statistic, p-value and window (and so the summary's figures) are its latest check's, which may be
        below the alarm threshold though still above the resolve threshold (the summary then says so), the
        event time is ``at`` and there is no turn id."""
        for parts, detector in aggregator.owned_detectors(keys, "perceptual", owns):
            assert isinstance(detector, ScoreDrift)
            if detector.in_alarm:
                judge_id, modality, model_version, score = parts
                where = (judge_id, modality, model_version, score)
                yield judge_id, drift_value(detector, where, at, None, firing=True)

    def _children(
        self, perceptual_key: str, judge_id: str, modality: str, version: str | None, name: str
    ) -> _Children:
        """The metric children of a score kept by the detector at ``perceptual_key``, cached by it and the
        raw values (a guard maps a value the same way from its first call on; the children are created when
        first used, as ``.labels()`` would)."""
        children: _Children = self._cache[perceptual_key, judge_id, modality, version, name]
        return children

    def _new_children(self, raw: tuple[str, str, str, str | None, str]) -> _Children:
        perceptual_key, judge_id, modality, version, name = raw
        m = self.metrics
        labels = (
            m.label("judge_id", judge_id),
            m.label("modality", modality),
            m.label("model_version", version),
            m.label("score", name),
        )
        self._series.setdefault(perceptual_key, set()).add(labels)
        return _Children(m, labels)

    def _escalation(
        self,
        detector: ScoreDrift,
        judge_id: str,
        modality: str,
        model_version: str,
        score: str,
        obs: dict[str, Any],
    ) -> Emit:
        firing = detector.drift_detected
        if firing:
            self.metrics.escalations.labels(KIND, SEVERITY).inc()
        where = (judge_id, modality, model_version, score)
        value = drift_value(detector, where, obs["ts"], obs["turn_id"], firing)
        return Emit("escalations", value["escalation_id"], value)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``perceptual``: one row per judge, modality, model version and score name."""
        rows = []
        for (judge_id, modality, model_version, score), detector in aggregator.items("perceptual"):
            assert isinstance(detector, ScoreDrift)
            summary = detector.summary()
            rows.append(
                {
                    "judge_id": judge_id,
                    "modality": modality,
                    "model_version": model_version,
                    "score": score,
                    "n": detector.n,
                    "checks": detector.checks,
                    "statistic": detector.statistic,
                    "threshold": detector.threshold,
                    "p_value": detector.p_value,
                    "in_alarm": detector.in_alarm,
                    "episodes": detector.n_alarms,
                    "reference": summary["reference"],
                    "window": summary["window"],
                }
            )
        return {"perceptual": rows}


def _guarded(perceptual_key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The judge of a detector key, and its guarded parts: (label, value) of each of :data:`GUARDED`."""
    _, judge_id, _, model_version, score = perceptual_key.split(SEP)
    return judge_id, (("model_version", model_version), ("score", score))


def _stamp(ts: float) -> Callable[[ScoreDrift], ScoreDrift]:
    return lambda detector: detector.stamp(ts)
