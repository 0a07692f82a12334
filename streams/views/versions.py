"""Model-version comparison: a new version serving a journey next to an old one is tested against it.

Per judge and journey one :class:`~detectors.msprt.VersionComparison` tracks which model versions are live
(seen within ``CONVOWATCH_VERSION_HORIZON_SECONDS`` of event time) and runs an always-valid mSPRT per
ordered pair (control = the version first seen earlier, treatment = the newer one) on the judged turns
served while both were live. A judged turn is a defect when the judge fails any quality dimension. When
the new version is significantly worse, a ``version_regression`` escalation (severity high) fires once
per pair; it resolves when the two versions stop serving the journey together (a rollback or a completed
rollout). Gauges: lift with its bounds, the Go/No-Go decision, the p-value and turns per arm.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.msprt import MixtureSPRT, VersionComparison
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator, key
from streams.emit import UNKNOWN_SEGMENT, Emit, iso
from streams.labels import LabelGuard
from streams.metrics import Metrics
from streams.policy import escalation_id

KIND = "version_regression"
SEVERITY = "high"
DECISION_VALUE = {"continue": 0.0, "better": 1.0, "worse": -1.0}


#: Turns of one judge and journey between two refreshes of the version gauges.
PUBLISH_EVERY = 50


class VersionView:
    kinds: tuple[str, ...] = ("judged",)

    def __init__(
        self,
        metrics: Metrics,
        horizon_seconds: float = 3600.0,
        alpha: float = 0.05,
        tau2: float = 1e-4,
        min_samples: int = 100,
        max_journeys: int = 50,
    ) -> None:
        self.metrics = metrics
        self.horizon_seconds = horizon_seconds
        self.alpha = alpha
        self.tau2 = tau2
        self.min_samples = min_samples
        # aggregate keys stay bounded: rare journeys share one comparison
        self.journeys = LabelGuard(max_journeys)
        self._children: dict[tuple[str, str, str, str], tuple[Any, ...]] = {}
        self._since_publish: dict[tuple[str, str], int] = {}
        metrics.escalations.labels(KIND, SEVERITY)  # 0 from the start, so increase() sees the first one

    def _make(self) -> VersionComparison:
        return VersionComparison(
            horizon_seconds=self.horizon_seconds,
            alpha=self.alpha,
            tau2=self.tau2,
            min_samples=self.min_samples,
        )

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        version = obs["segment"].get("model_version")
        labels: dict[str, str] = obs["labels"]
        judged = [d for d in labels if d in QUALITY_DIMENSIONS]
        if not version or not judged:
            return []
        defect = any(labels[d] == FAIL for d in judged)
        judge_id = obs["judge_id"]
        journey = self.journeys(obs["segment"].get("journey"))
        comparison = aggregator.update(
            key("versions", judge_id, journey),
            obs,
            partition,
            self._make,
            lambda c: c.update(version, defect, obs["ts"]),
        )
        if comparison is None:
            return []
        # gauges are refreshed every PUBLISH_EVERY turns of a comparison (and on every decision), not on
        # every turn: with several live versions that would be most of the view's cost
        since = self._since_publish.get((judge_id, journey), 0) + 1
        if since >= PUBLISH_EVERY:
            since = 0
            for control, treatment in comparison.live_pairs:
                self._publish(judge_id, journey, control, treatment, comparison.test(control, treatment))
        else:
            for control, treatment, what in comparison.events:
                if what != "ended":
                    self._publish(judge_id, journey, control, treatment, comparison.test(control, treatment))
        self._since_publish[(judge_id, journey)] = since
        emits = []
        for control, treatment, what in comparison.events:
            if what == "worse":
                test = comparison.test(control, treatment)
                emits.append(self._escalation(judge_id, journey, control, treatment, test, obs, firing=True))
            elif what == "ended":
                test = self._ended_test(comparison, control, treatment)
                if test is not None and test.decision == "worse":
                    emits.append(
                        self._escalation(judge_id, journey, control, treatment, test, obs, firing=False)
                    )
        return emits

    @staticmethod
    def _ended_test(comparison: VersionComparison, control: str, treatment: str) -> MixtureSPRT | None:
        try:
            return comparison.test(control, treatment)
        except KeyError:  # a version forgotten (too many versions): its test went with it
            return None

    def _publish(self, judge_id: str, journey: str, control: str, treatment: str, test: MixtureSPRT) -> None:
        m = self.metrics
        labels = (  # the cache is keyed by the bounded label values, so it stays bounded too
            m.label("judge_id", judge_id),
            m.label("journey", journey),
            m.label("model_version", control),
            m.label("model_version", treatment),
        )
        children = self._children.get(labels)
        if children is None:
            children = (
                m.version_lift.labels(*labels),
                m.version_lift_bound.labels(*labels, "lower"),
                m.version_lift_bound.labels(*labels, "upper"),
                m.version_decision.labels(*labels),
                m.version_p_value.labels(*labels),
                m.version_turns.labels(*labels, "control"),
                m.version_turns.labels(*labels, "treatment"),
            )
            self._children[labels] = children
        lift, low, high, decision, p_value, n_control, n_treatment = children
        lift.set(test.lift)
        interval = test.interval
        low.set(interval[0])
        high.set(interval[1])
        decision.set(DECISION_VALUE[test.decision])
        p_value.set(test.p_value)
        n_control.set(test.n_control)
        n_treatment.set(test.n_treatment)

    def _escalation(
        self,
        judge_id: str,
        journey: str,
        control: str,
        treatment: str,
        test: MixtureSPRT,
        obs: dict[str, Any],
        firing: bool,
    ) -> Emit:
        eid = escalation_id(KIND, f"{judge_id}|{journey}|{control}|{treatment}")
        low, high = test.interval
        if firing:
            self.metrics.escalations.labels(KIND, SEVERITY).inc()
            summary = (
                f"Model version {treatment} is worse than {control} in journey {journey} (judge {judge_id}): "
                f"defect rate {test.treatment_rate:.2%} against {test.control_rate:.2%}, lift "
                f"{test.lift:+.2%} (always-valid {1 - self.alpha:.0%} interval {low:+.2%} to {high:+.2%}), "
                f"p = {test.p_value:.2g}"
            )
        else:
            summary = (
                f"Model versions {control} and {treatment} no longer serve journey {journey} together: "
                f"comparison closed ({treatment} was worse, lift {test.lift:+.2%})"
            )
        value = {
            "schema_version": 1,
            "escalation_id": eid,
            "kind": KIND,
            "severity": SEVERITY,
            "status": "firing" if firing else "resolved",
            "revision": 1 if firing else 2,
            "dimension": None,
            "segment": {**UNKNOWN_SEGMENT, "journey": journey, "model_version": treatment},
            "event_time": iso(obs["ts"]),
            "turn_ids": [obs["turn_id"]],
            "summary": summary,
            "evidence": {
                "judge_id": judge_id,
                "journey": journey,
                "control": control,
                "treatment": treatment,
                **_summary(test),
                "alpha": self.alpha,
                "tau2": self.tau2,
            },
        }
        return Emit("escalations", eid, value)

    # -- report.json ---------------------------------------------------------------------------------

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        rows = []
        for (judge_id, journey), comparison in aggregator.items("versions"):
            if not isinstance(comparison, VersionComparison):
                continue
            live = comparison.live_pairs
            for control, treatment, test in comparison.tests():
                rows.append(
                    {
                        "judge_id": judge_id,
                        "journey": journey,
                        "control": control,
                        "treatment": treatment,
                        "live": [control, treatment] in live,
                        **_summary(test),
                    }
                )
        return {"versions": rows}


def _summary(test: MixtureSPRT) -> dict[str, Any]:
    """The test's figures, JSON-safe (NaN becomes None)."""

    def safe(x: float) -> float | None:
        return None if math.isnan(x) else x

    low, high = test.interval
    return {
        "n_control": test.n_control,
        "n_treatment": test.n_treatment,
        "control_rate": safe(test.control_rate),
        "treatment_rate": safe(test.treatment_rate),
        "lift": safe(test.lift),
        "interval": [low, high],
        "p_value": test.p_value,
        "decision": test.decision,
        "decided_at": list(test.decided_at) if test.decided_at else None,
    }
