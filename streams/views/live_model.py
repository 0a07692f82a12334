"""The live model as a third voice: its intent and its guardrails, checked against humans and judges.

- Intent (``labelled``, shard ``humans``): the turn's ``intent`` against the human ``intent`` label, with
  the model's ``intent_confidence``: :class:`~detectors.ClassAccuracy` under ``live_intent``.
- Guardrails: a turn with ``guardrail_flags`` counts as flagged; the truth is a ``fail`` on ``safety`` or
  ``compliance`` (turns labelled on neither are skipped). :class:`~detectors.BinaryCalibration` (flagged
  in the judge's place) gives the guardrails' recall (its sensitivity) and precision against humans
  (``labelled``: ``guardrail_human``) and against each judge (``judged``: ``guardrail_judge/<judge>``,
  shard: the judge).

Against humans each turn counts once, with the first label of each dimension not on a gold item
(``first_dimensions``): a second annotator's label is not a second turn (the intervals would be too
narrow), and gold items (honeypots) are not a sample of the traffic. A judge or annotator sending ``safety``
and ``compliance`` in two records counts the turn once per record (as spike detection counts a category).

Each is a :class:`~detectors.keyed.KeyedDetectors` by model version, plus ``*`` for all versions. The
detectors of a model version that has seen nothing for ``idle_seconds`` of the aggregate's event time before
the start of the day that looks (a retired version) are dropped, looked for at the aggregate's first
observation of each day and after a start (:class:`~streams.views.idle_looks.IdleLooks`), and the next new
version takes its room: until 2026-11-26 the first 49 held it for good, and after turnover
every new version was counted as ``other``. A judge whose guardrail figures have seen nothing for
``idle_seconds`` before the start of a day of the worker's clock (retired: its own verdicts, which look, never
come) has them looked at so then, and its record deleted once empty (``streams/views/retired_maps.py``). The
gauges of a version dropped go with it (until 2026-11-26 they stayed, at their last figures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from detectors import BinaryCalibration, ClassAccuracy
from detectors.keyed import OTHER, KeyedDetectors
from schemas.common import FAIL
from streams.aggregate import Aggregator, key
from streams.emit import SEP, Emit, sampled_labels
from streams.labels import UNKNOWN, LabelOf
from streams.metrics import Metrics
from streams.views.agreement import MAX_SEGMENT_VALUES
from streams.views.agreement_report import finite_or_none, interval_or_none
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.refresh import Refresh
from streams.views.retired_maps import drop_unheard_maps
from streams.views.worker_clock import WorkerClock

ALL = "*"
GUARDED_DIMENSIONS = ("safety", "compliance")


def _intents() -> KeyedDetectors:
    return KeyedDetectors("ClassAccuracy", max_keys=MAX_SEGMENT_VALUES + 1)


def _guardrails() -> KeyedDetectors:
    return KeyedDetectors("BinaryCalibration", max_keys=MAX_SEGMENT_VALUES + 1)


def _stored(keyed: KeyedDetectors, version: str) -> str:
    """The key ``version`` is counted under: itself, or ``other`` once the map is full."""
    return version if keyed.get(version) is not None else OTHER


def _versions_of(keyed: KeyedDetectors) -> list[str]:
    """The model versions ``keyed`` holds detectors of (not ``*``, all versions: exported with each)."""
    return [version for version in keyed.keys if version != ALL] or [ALL]


class LiveModelView:
    kinds: tuple[str, ...] = ("labelled", "judged", "contact")  # contacts: the clock (worker_clock.py)

    def __init__(
        self,
        metrics: Metrics,
        refresh_every: int = 200,
        refresh_seconds: float = 60.0,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.refresh = Refresh(refresh_every, refresh_seconds)
        self.idle_seconds = idle_seconds
        # derived, never persisted: when to look for each aggregate's idle versions, the judges whose
        # guardrail figures this worker made or recovered, and the clock on which those never heard from
        # again are looked at (retired_maps.py)
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._judges: set[str] = set()
        self._clock = WorkerClock(idle_seconds)

    def _update(self, keyed: KeyedDetectors, name: str, version: str, ts: float, *args: Any) -> None:
        """Update the detectors of all versions and of ``version`` of aggregate ``name`` with ``args`` at
        event time ``ts``, and drop its idle versions' detectors when it is time to look."""
        keyed.update(ALL, *args, ts=ts).update(version, *args, ts=ts)
        now = self._looks.due(name, ts)
        if now is not None:
            self._remove_gauges(name, keyed.drop_idle(now, self.idle_seconds))

    def _remove_gauges(self, name: str, versions: Iterable[str]) -> None:
        """Remove the gauges of aggregate ``name``'s dropped ``versions`` (their series budget freed)."""
        m = self.metrics
        for version in versions:
            if name == "live_intent":
                m.live_intent_accuracy.remove_by_labels({"model_version": version})
                m.live_intent_ece.remove_by_labels({"model_version": version})
                continue
            judge = name.split(SEP, 1)[1] if SEP in name else ""
            labels = {"source": "judge" if judge else "human", "judge_id": judge, "model_version": version}
            m.guardrail_recall.remove_by_labels(labels)
            m.guardrail_precision.remove_by_labels(labels)

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        """A labelled or judged turn's figures; on the worker's clock, the idle versions of the judges whose
        guardrail figures saw nothing for ``idle_seconds`` (retired: they never look themselves) dropped."""
        if obs["kind"] != "contact":
            self._observe(aggregator, obs, partition)
        if (look := self._clock.tick(obs["ts"])) is not None:
            for judge_id, dropped in drop_unheard_maps(
                aggregator, self._judges, "guardrail_judge", look, self.idle_seconds
            ).items():
                self._remove_gauges(key("guardrail_judge", judge_id), dropped)
        return []

    def _observe(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> None:
        labels: dict[str, str] = obs["labels"]
        segment = obs["segment"] or {}
        version = segment.get("model_version") or UNKNOWN
        m = self.metrics
        ts = obs["ts"]
        if obs["kind"] == "labelled":
            labels = sampled_labels(obs)  # each turn once (module doc)
            truth, predicted = labels.get("intent"), segment.get("intent")
            if truth is not None and predicted is not None:
                confidence = obs.get("intent_confidence")
                intent_key = key("live_intent")
                intents = aggregator.update(
                    intent_key,
                    obs,
                    partition,
                    _intents,
                    lambda k: self._update(k, intent_key, version, ts, predicted, truth, confidence),
                )
                if intents is not None and self.refresh(("intent", _stored(intents, version)), ts):
                    self._export_intent(intents, version, m.label)
            name = key("guardrail_human")
        else:
            name = f"guardrail_judge{SEP}{obs['judge_id']}"
            self._judges.add(obs["judge_id"])
        checked = [labels[d] for d in GUARDED_DIMENSIONS if d in labels]
        if not checked:
            return
        flagged, failed = bool(obs.get("guardrail_flags")), FAIL in checked
        guardrails = aggregator.update(
            name,
            obs,
            partition,
            _guardrails,
            lambda k: self._update(k, name, version, ts, flagged, failed),
        )
        if guardrails is not None and self.refresh((name, _stored(guardrails, version)), ts):
            self._export_guardrails(guardrails, name, version, m.label)

    def export_pending(self, aggregator: Aggregator) -> None:
        """The gauges of each aggregate and model version with observations since its last refresh."""
        for name, version in self.refresh.pending():
            keyed = aggregator.detector(key("live_intent") if name == "intent" else name)
            if not isinstance(keyed, KeyedDetectors):
                continue  # dropped since
            if name == "intent":
                self._export_intent(keyed, version, self.metrics.recovered_label)
            else:
                self._export_guardrails(keyed, name, version, self.metrics.recovered_label)

    def export_owned(self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]) -> None:
        """After a rebalance, the gauges of every model version of the recovered aggregates at ``keys`` this
        worker owns (``humans``': intent and guardrails against humans; each judge's guardrails)."""
        label_of = self.metrics.admitted_label
        if owns("humans"):
            for name in (key("live_intent"), key("guardrail_human")):
                keyed = aggregator.detector(name)  # one each: the humans' shard
                if isinstance(keyed, KeyedDetectors):
                    for version in _versions_of(keyed):
                        if name == "live_intent":
                            self._export_intent(keyed, version, label_of)
                        else:
                            self._export_guardrails(keyed, name, version, label_of)
        for parts, keyed in aggregator.owned_detectors(keys, "guardrail_judge", owns):
            if len(parts) == 1 and isinstance(keyed, KeyedDetectors):
                for version in _versions_of(keyed):
                    self._export_guardrails(keyed, key("guardrail_judge", parts[0]), version, label_of)

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Refresh afresh (see ``AgreementView.rebalanced``), and the judges of the recovered guardrail
        figures."""
        self.refresh.forget()
        self._clock.forget()
        self._judges = {k.split(SEP, 1)[1] for k, _ in aggregator.records("guardrail_judge")}

    def _export_intent(self, intents: KeyedDetectors, version: str, label_of: LabelOf) -> None:
        for where, label in self._versions(intents, version, label_of):
            accuracy = intents.get(where)
            self.metrics.live_intent_accuracy.labels(label).set(accuracy.accuracy)
            self.metrics.live_intent_ece.labels(label).set(accuracy.ece)

    def _export_guardrails(
        self, guardrails: KeyedDetectors, name: str, version: str, label_of: LabelOf
    ) -> None:
        m = self.metrics
        judge = name.split(SEP, 1)[1] if SEP in name else ""
        source, judge_label = ("judge", label_of("judge_id", judge)) if judge else ("human", "")
        if judge_label != judge and label_of != self.metrics.label:
            return  # a recovered judge's figures the guard does not pass: unexported, not under "other"
        for where, label in self._versions(guardrails, version, label_of):
            calibration = guardrails.get(where)
            m.guardrail_recall.labels(source, judge_label, label).set(calibration.sensitivity)
            m.guardrail_precision.labels(source, judge_label, label).set(calibration.precision)

    def _versions(self, keyed: KeyedDetectors, version: str, label_of: LabelOf) -> list[tuple[str, str]]:
        """(detector key, model_version label) of the gauges to set: all versions, and this one unless the
        detector or the metric guard folds it into "other" (then it is in report.json only)."""
        stored = _stored(keyed, version)
        label = label_of("model_version", None if stored == UNKNOWN else stored)
        return [(ALL, ALL), (stored, label)] if label == stored != OTHER else [(ALL, ALL)]

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``live_model``: ``intent`` rows per model version, ``guardrails`` rows per source and version."""
        intent = []
        for _, keyed in aggregator.items("live_intent"):
            assert isinstance(keyed, KeyedDetectors)
            for version, accuracy in keyed.items():
                assert isinstance(accuracy, ClassAccuracy)
                intent.append(
                    {
                        "model_version": version,
                        "n": accuracy.n,
                        "accuracy": finite_or_none(accuracy.accuracy),
                        "accuracy_interval": interval_or_none(accuracy.accuracy_interval),
                        "n_scored": accuracy.n_scored,
                        "ece": finite_or_none(accuracy.ece),
                        "recall_by_class": accuracy.recall_by_class,
                        "confusion": accuracy.confusion,
                    }
                )
        guardrails = []
        for prefix, source in (("guardrail_human", "human"), ("guardrail_judge", "judge")):
            for parts, keyed in aggregator.items(prefix):
                assert isinstance(keyed, KeyedDetectors)
                for version, calibration in keyed.items():
                    assert isinstance(calibration, BinaryCalibration)
                    guardrails.append(
                        {
                            "source": source,
                            "judge_id": parts[0] if parts else None,
                            "model_version": version,
                            "n": calibration.n,
                            **calibration.counts,
                            "recall": finite_or_none(calibration.sensitivity),
                            "recall_interval": interval_or_none(calibration.sensitivity_interval),
                            "precision": finite_or_none(calibration.precision),
                            "precision_interval": interval_or_none(calibration.precision_interval),
                            "flagged_rate": finite_or_none(calibration.judge_fail_rate),
                            "fail_rate": finite_or_none(calibration.human_fail_rate),
                        }
                    )
        return {"live_model": {"intent": intent, "guardrails": guardrails}}
