"""Model-version comparison on business outcomes: is the new version escalating more, completing less?

Per journey and outcome one :class:`~detectors.msprt.VersionComparison` (live versions within
``CONVOWATCH_VERSION_HORIZON_SECONDS`` of event time, one always-valid mSPRT per ordered pair, as in
``streams/views/versions.py``) over the ``turn`` observations (shard key: the journey), each carrying its
ChatTurn's ``outcome``. Outcomes, per turn:

- ``escalated_to_agent`` (lower is better) and ``contained`` (higher is better), as the turn reports them;
- ``task_completed`` (higher is better);
- ``thumbs_down`` (lower is better): among turns with ``user_feedback``, the share ``down``.

A turn that does not report an outcome (the field is missing) is not counted for it. When the new version
is significantly worse on an outcome, a ``version_regression`` escalation (high) fires once per journey,
outcome and pair (evidence: ``source`` ``outcome``, ``outcome``); it resolves when the two versions stop
serving the journey together. Gauges ``convowatch_version_outcome_*`` mirror ``convowatch_version_*``.
"""

from __future__ import annotations

from typing import Any

from detectors.msprt import MixtureSPRT, VersionComparison
from streams.aggregate import Aggregator, key
from streams.emit import UNKNOWN_SEGMENT, Emit, iso
from streams.labels import LabelGuard
from streams.metrics import Metrics
from streams.policy import escalation_id
from streams.views.versions import DECISION_VALUE, KIND, PUBLISH_EVERY, SEVERITY

#: Outcome -> higher is better.
OUTCOMES = {"escalated_to_agent": False, "thumbs_down": False, "contained": True, "task_completed": True}
PREFIX = "version_outcomes"


def outcome_values(outcome: dict[str, Any] | None) -> dict[str, bool]:
    """The outcomes a turn reports, as booleans (missing ones left out)."""
    outcome = outcome or {}
    values = {
        name: bool(outcome[name])
        for name in ("escalated_to_agent", "contained", "task_completed")
        if outcome.get(name) is not None
    }
    if outcome.get("user_feedback") in ("up", "down"):
        values["thumbs_down"] = outcome["user_feedback"] == "down"
    return values


class VersionOutcomeView:
    kinds: tuple[str, ...] = ("turn",)

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
        self.journeys = LabelGuard(max_journeys)  # aggregate keys stay bounded
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._since_publish: dict[tuple[str, str], int] = {}
        metrics.escalations.labels(KIND, SEVERITY)

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        segment = obs.get("segment") or {}
        version = segment.get("model_version")
        values = outcome_values(obs.get("outcome"))
        if not version or not values:
            return []
        journey = self.journeys(segment.get("journey"))
        emits: list[Emit] = []
        for outcome, value in values.items():

            def make(better: bool = OUTCOMES[outcome]) -> VersionComparison:
                return VersionComparison(
                    horizon_seconds=self.horizon_seconds,
                    alpha=self.alpha,
                    tau2=self.tau2,
                    min_samples=self.min_samples,
                    higher_is_better=better,
                )

            def apply(c: VersionComparison, value: bool = value) -> None:
                c.update(version, value, obs["ts"])

            comparison = aggregator.update(key(PREFIX, journey, outcome), obs, partition, make, apply)
            if comparison is not None:
                emits.extend(self._after(comparison, journey, outcome, obs))
        return emits

    def _after(
        self, comparison: VersionComparison, journey: str, outcome: str, obs: dict[str, Any]
    ) -> list[Emit]:
        since = self._since_publish.get((journey, outcome), 0) + 1
        if since >= PUBLISH_EVERY:  # refreshed every PUBLISH_EVERY turns and on decisions, as VersionView
            since = 0
            for control, treatment in comparison.live_pairs:
                self._publish(journey, outcome, control, treatment, comparison.test(control, treatment))
        self._since_publish[(journey, outcome)] = since
        emits = []
        for control, treatment, what in comparison.events:
            try:
                test = comparison.test(control, treatment)
            except KeyError:  # a version forgotten (too many versions): its test went with it
                continue
            if what != "ended":
                self._publish(journey, outcome, control, treatment, test)
            if what == "worse":
                emits.append(self._escalation(journey, outcome, control, treatment, test, obs, firing=True))
            elif what == "ended" and test.decision == "worse":
                emits.append(self._escalation(journey, outcome, control, treatment, test, obs, firing=False))
        return emits

    def _publish(self, journey: str, outcome: str, control: str, treatment: str, test: MixtureSPRT) -> None:
        m = self.metrics
        labels = (
            m.label("journey", journey),
            outcome,
            m.label("model_version", control),
            m.label("model_version", treatment),
        )
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                m.version_outcome_lift.labels(*labels),
                m.version_outcome_lift_bound.labels(*labels, "lower"),
                m.version_outcome_lift_bound.labels(*labels, "upper"),
                m.version_outcome_decision.labels(*labels),
                m.version_outcome_p_value.labels(*labels),
                m.version_outcome_turns.labels(*labels, "control"),
                m.version_outcome_turns.labels(*labels, "treatment"),
            )
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
        journey: str,
        outcome: str,
        control: str,
        treatment: str,
        test: MixtureSPRT,
        obs: dict[str, Any],
        firing: bool,
    ) -> Emit:
        eid = escalation_id(KIND, f"outcome|{journey}|{outcome}|{control}|{treatment}")
        low, high = test.interval
        if firing:
            self.metrics.escalations.labels(KIND, SEVERITY).inc()
            summary = (
                f"Model version {treatment} is worse than {control} in journey {journey} on {outcome}: "
                f"{test.treatment_rate:.2%} of turns against {test.control_rate:.2%}, lift {test.lift:+.2%} "
                f"(always-valid {1 - self.alpha:.0%} interval {low:+.2%} to {high:+.2%}), "
                f"p = {test.p_value:.2g}"
            )
        else:
            summary = (
                f"Model versions {control} and {treatment} no longer serve journey {journey} together: "
                f"{outcome} comparison closed ({treatment} was worse, lift {test.lift:+.2%})"
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
                "source": "outcome",
                "outcome": outcome,
                "higher_is_better": OUTCOMES[outcome],
                "journey": journey,
                "control": control,
                "treatment": treatment,
                **test.summary(),
                "alpha": self.alpha,
                "tau2": self.tau2,
            },
        }
        return Emit("escalations", eid, value)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``version_outcomes``: one row per journey, outcome and pair of versions."""
        rows = []
        for (journey, outcome), comparison in aggregator.items(PREFIX):
            assert isinstance(comparison, VersionComparison)
            live = comparison.live_pairs
            for control, treatment, test in comparison.tests():
                summary = test.summary()
                for name in ("control_rate", "treatment_rate", "lift"):  # NaN is not JSON
                    summary[name] = None if summary[name] != summary[name] else summary[name]
                rows.append(
                    {
                        "journey": journey,
                        "outcome": outcome,
                        "control": control,
                        "treatment": treatment,
                        "live": [control, treatment] in live,
                        **summary,
                    }
                )
        return {"version_outcomes": rows}
