"""Model-version comparison on human-calibrated defect rates, per judge, journey and quality dimension.

The judge-only comparison (``streams/views/versions.py``) measures what the judge sees; a judge that misses
the new version's kind of defect under-states a regression, one that over-flags over-states it. Here the
judge's verdicts are corrected by the human labels of the same turns (prediction-powered inference, see
:mod:`detectors.calibrated_comparison`): per judge and journey one
:class:`~detectors.calibrated_comparison.CalibratedVersionComparison` (shard: the judge) gets every
``judged`` observation (the judge's fail per quality dimension; it also decides which versions are live)
and every ``pair`` observation (a human label meeting the judge's on one turn and dimension, weighted by
``1 / inclusion_probability`` when the label carries one). Each live pair of versions gets one always-valid
test per dimension, which tests once each version has ``CONVOWATCH_VERSION_MIN_SAMPLES`` judged and
``CONVOWATCH_VERSION_MIN_LABELS`` labelled turns.

When the new version's calibrated defect rate on a dimension is significantly higher, a
``version_regression`` escalation (high, ``dimension`` set, evidence ``source`` ``calibrated``) fires once
per judge, journey, dimension and pair; it resolves when the versions stop serving the journey together.
Gauges ``convowatch_version_calibrated_*`` (labels add ``dimension``; turns per ``arm`` and ``sample``).
"""

from __future__ import annotations

import math
from typing import Any

from detectors.calibrated_comparison import CalibratedComparison, CalibratedVersionComparison
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator, key
from streams.emit import UNKNOWN_SEGMENT, Emit, iso
from streams.labels import LabelGuard
from streams.metrics import Metrics
from streams.policy import escalation_id
from streams.views.versions import DECISION_VALUE, KIND, PUBLISH_EVERY, SEVERITY

PREFIX = "version_calibrated"


class VersionCalibratedView:
    kinds: tuple[str, ...] = ("judged", "pair")

    def __init__(
        self,
        metrics: Metrics,
        horizon_seconds: float = 3600.0,
        alpha: float = 0.05,
        tau2: float = 1e-4,
        min_samples: int = 100,
        min_labels: int = 30,
        max_journeys: int = 50,
    ) -> None:
        self.metrics = metrics
        self.horizon_seconds = horizon_seconds
        self.alpha = alpha
        self.tau2 = tau2
        self.min_samples = min_samples
        self.min_labels = min_labels
        self.journeys = LabelGuard(max_journeys)  # aggregate keys stay bounded
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._since_publish: dict[tuple[str, str], int] = {}
        metrics.escalations.labels(KIND, SEVERITY)

    def _make(self) -> CalibratedVersionComparison:
        return CalibratedVersionComparison(
            horizon_seconds=self.horizon_seconds,
            alpha=self.alpha,
            tau2=self.tau2,
            min_samples=self.min_samples,
            min_labels=self.min_labels,
            max_dimensions=len(QUALITY_DIMENSIONS),
        )

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        segment = obs.get("segment")
        version = segment.get("model_version") if segment else None
        if not version:  # a pair whose turn never arrived has no version
            return []
        ts = obs["ts"]
        if obs["kind"] == "judged":
            labels: dict[str, str] = obs["labels"]
            fails = {d: labels[d] == FAIL for d in labels if d in QUALITY_DIMENSIONS}
            if not fails:
                return []

            def apply(c: CalibratedVersionComparison) -> None:
                c.update(version, fails, ts)

        else:
            dim = obs["dimension"]
            if dim not in QUALITY_DIMENSIONS:
                return []
            f, y = obs["judge_label"] == FAIL, obs["human_label"] == FAIL
            pi = obs.get("inclusion_probability")
            weight = 1.0 / pi if pi else 1.0

            def apply(c: CalibratedVersionComparison) -> None:
                c.add_label(version, dim, f, y, ts, weight)

        judge_id = obs["judge_id"]
        journey = self.journeys(segment.get("journey") if segment else None)
        comparison = aggregator.update(key(PREFIX, judge_id, journey), obs, partition, self._make, apply)
        if comparison is None:
            return []
        since = self._since_publish.get((judge_id, journey), 0) + 1
        if since >= PUBLISH_EVERY:  # refreshed every PUBLISH_EVERY observations and on decisions
            since = 0
            for control, treatment in comparison.live_pairs:
                for dim, test in comparison.test(control, treatment).items():
                    self._publish(judge_id, journey, dim, control, treatment, test)
        self._since_publish[(judge_id, journey)] = since
        emits: list[Emit] = []
        for control, treatment, dim, what in comparison.events:
            try:
                tests = comparison.test(control, treatment)
            except KeyError:  # a version forgotten (too many versions): its tests went with it
                continue
            if what == "ended":
                emits.extend(
                    self._escalation(judge_id, journey, d, control, treatment, test, obs, firing=False)
                    for d, test in sorted(tests.items())
                    if test.decision == "worse"
                )
                continue
            self._publish(judge_id, journey, dim, control, treatment, tests[dim])
            if what == "worse":
                emits.append(
                    self._escalation(judge_id, journey, dim, control, treatment, tests[dim], obs, firing=True)
                )
        return emits

    def _publish(
        self, judge_id: str, journey: str, dim: str, control: str, treatment: str, test: CalibratedComparison
    ) -> None:
        if math.isnan(test.lift):  # an arm without labels yet
            return
        m = self.metrics
        labels = (
            m.label("judge_id", judge_id),
            m.label("journey", journey),
            m.label("dimension", dim),
            m.label("model_version", control),
            m.label("model_version", treatment),
        )
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                m.version_calibrated_lift.labels(*labels),
                m.version_calibrated_lift_bound.labels(*labels, "lower"),
                m.version_calibrated_lift_bound.labels(*labels, "upper"),
                m.version_calibrated_decision.labels(*labels),
                m.version_calibrated_p_value.labels(*labels),
                m.version_calibrated_turns.labels(*labels, "control", "judged"),
                m.version_calibrated_turns.labels(*labels, "treatment", "judged"),
                m.version_calibrated_turns.labels(*labels, "control", "labelled"),
                m.version_calibrated_turns.labels(*labels, "treatment", "labelled"),
            )
        lift, low, high, decision, p_value, n_c, n_t, l_c, l_t = children
        lift.set(test.lift)
        interval = test.interval
        low.set(interval[0])
        high.set(interval[1])
        decision.set(DECISION_VALUE[test.decision])
        p_value.set(test.p_value)
        n_c.set(test.n_control)
        n_t.set(test.n_treatment)
        l_c.set(test.labels_control)
        l_t.set(test.labels_treatment)

    def _escalation(
        self,
        judge_id: str,
        journey: str,
        dim: str,
        control: str,
        treatment: str,
        test: CalibratedComparison,
        obs: dict[str, Any],
        firing: bool,
    ) -> Emit:
        eid = escalation_id(KIND, f"calibrated|{judge_id}|{journey}|{dim}|{control}|{treatment}")
        low, high = test.interval
        if firing:
            self.metrics.escalations.labels(KIND, SEVERITY).inc()
            summary = (
                f"Model version {treatment} is worse than {control} in journey {journey} on {dim} "
                f"(human-calibrated, judge {judge_id}): defect rate {test.treatment_rate:.2%} against "
                f"{test.control_rate:.2%}, lift {test.lift:+.2%} (always-valid {1 - self.alpha:.0%} interval "
                f"{low:+.2%} to {high:+.2%}; the judge alone sees {test.judge_lift:+.2%}), "
                f"p = {test.p_value:.2g}"
            )
        else:
            summary = (
                f"Model versions {control} and {treatment} no longer serve journey {journey} together: "
                f"calibrated {dim} comparison closed ({treatment} was worse, lift {test.lift:+.2%})"
            )
        value = {
            "schema_version": 1,
            "escalation_id": eid,
            "kind": KIND,
            "severity": SEVERITY,
            "status": "firing" if firing else "resolved",
            "revision": 1 if firing else 2,
            "dimension": dim,
            "segment": {**UNKNOWN_SEGMENT, "journey": journey, "model_version": treatment},
            "event_time": iso(obs["ts"]),
            "turn_ids": [obs["turn_id"]],
            "summary": summary,
            "evidence": {
                "source": "calibrated",
                "judge_id": judge_id,
                "journey": journey,
                "dimension": dim,
                "control": control,
                "treatment": treatment,
                **calibrated_summary(test),
                "alpha": self.alpha,
                "tau2": self.tau2,
            },
        }
        return Emit("escalations", eid, value)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``version_calibrated``: one row per judge, journey, pair of versions and dimension."""
        rows = []
        for (judge_id, journey), comparison in aggregator.items(PREFIX):
            assert isinstance(comparison, CalibratedVersionComparison)
            live = comparison.live_pairs
            for control, treatment, dim, test in comparison.tests():
                rows.append(
                    {
                        "judge_id": judge_id,
                        "journey": journey,
                        "dimension": dim,
                        "control": control,
                        "treatment": treatment,
                        "live": [control, treatment] in live,
                        **calibrated_summary(test),
                    }
                )
        return {"version_calibrated": rows}


def calibrated_summary(test: CalibratedComparison) -> dict[str, Any]:
    """The test's figures, JSON-safe (NaN becomes None)."""

    def safe(x: float) -> float | None:
        return None if math.isnan(x) else x

    low, high = test.interval
    return {
        "n_control": test.n_control,
        "n_treatment": test.n_treatment,
        "labels_control": test.labels_control,
        "labels_treatment": test.labels_treatment,
        "control_rate": safe(test.control_rate),
        "treatment_rate": safe(test.treatment_rate),
        "judge_lift": safe(test.judge_lift),
        "lift": safe(test.lift),
        "interval": [low, high],
        "p_value": test.p_value,
        "decision": test.decision,
        "decided_at": list(test.decided_at) if test.decided_at else None,
    }
