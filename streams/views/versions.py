"""Model-version comparison: a new version serving a journey next to an old one is tested against it.

Per judge and journey one :class:`~detectors.msprt.VersionComparison` tracks which model versions are live
(seen within ``CONVOWATCH_VERSION_HORIZON_SECONDS`` of event time) and runs an always-valid mSPRT per
ordered pair (control = the version first seen earlier, treatment = the newer one) on the judged turns
served while both were live. A judged turn is a defect when the judge fails any quality dimension of its
first verdict on the turn that has one (a judge sending a turn's dimensions in several verdicts: its later
ones do not make the turn a second unit, and a unit cannot be taken back once counted). When
the new version is significantly worse, a ``version_regression`` escalation (severity high) fires once
per pair; it resolves when the two versions stop serving the journey together (a rollback or a completed
rollout). Gauges: lift with its bounds, the Go/No-Go decision, the p-value and turns per arm. What the
three model-version views share (gauges, escalation, report rows, the journeys kept apart per judge and
the comparisons of idle ones dropped) is in ``version_common.py`` and ``version_regression.py``.
"""

from __future__ import annotations

from typing import Any

from detectors.msprt import MixtureSPRT, VersionComparison
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator
from streams.emit import SEP, Emit
from streams.labels import SettledOf
from streams.views.version_common import VersionPairView
from streams.views.version_regression import TestKey, regression_text


class VersionView(VersionPairView):
    kinds: tuple[str, ...] = ("judged", "contact")  # contacts: the clock (worker_clock.py)
    prefix = "versions"
    gauge_prefix = "version"
    scope_names = ("judge_id", "journey")

    def _make(self) -> VersionComparison:
        return VersionComparison(**self._params())

    def _observe(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        version = obs["segment"].get("model_version")
        labels: dict[str, str] = obs["labels"]
        # a turn is one unit: the judge's first verdict on it with a quality dimension decides it
        if not version or obs.get("quality_before"):
            return []
        judged, defect = False, False
        for d, label in labels.items():
            if d in QUALITY_DIMENSIONS:
                judged = True
                if label == FAIL:
                    defect = True
                    break
        if not judged:
            return []
        judge_id = obs["judge_id"]
        journey = self.journeys(judge_id, "journey")(obs["segment"].get("journey"))
        key = f"{self.prefix}{SEP}{judge_id}{SEP}{journey}"
        comparison = aggregator.update(
            key, obs, partition, self._make, lambda c: c.update(version, defect, obs["ts"])
        )
        emits = [] if comparison is None else self._after(comparison, (judge_id, journey), obs)
        self._looked(aggregator, judge_id, (key,), obs, partition)
        return emits

    def _scope_labels(self, at: TestKey, label_of: SettledOf) -> tuple[str | None, ...]:
        judge_id, journey = at.scope
        return (label_of("judge_id", judge_id), label_of("journey", journey))

    def _escalation(self, at: TestKey, test: MixtureSPRT, obs: dict[str, Any], firing: bool) -> Emit:
        judge_id, journey = at.scope
        text = regression_text(test, at, journey, self.alpha, firing, where=f" (judge {judge_id})")
        head = {"judge_id": judge_id, "journey": journey}
        eid_key = f"{judge_id}|{journey}|{at.control}|{at.treatment}"
        return self._regression(eid_key, head, at, test, obs, firing, text)
