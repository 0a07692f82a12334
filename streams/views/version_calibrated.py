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
A comparison's idle time counts from its newest judged turn (a label is dated by its turn): one a label made
for a journey whose turns it never saw holds nothing, and goes at the next look.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.calibrated_comparison import CalibratedComparison, CalibratedVersionComparison
from detectors.msprt import ARMS
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator
from streams.emit import SEP, Emit
from streams.labels import SettledOf
from streams.metrics import Metrics
from streams.views.idle_looks import IDLE_SECONDS
from streams.views.version_common import VersionPairView
from streams.views.version_regression import TestKey, regression_text

PREFIX = "version_calibrated"


class VersionCalibratedView(VersionPairView):
    kinds: tuple[str, ...] = ("judged", "pair", "contact")  # contacts: the clock (worker_clock.py)
    prefix = PREFIX
    gauge_prefix = "version_calibrated"
    scope_names = ("judge_id", "journey")
    figure_names = (
        "n_control",
        "n_treatment",
        "labels_control",
        "labels_treatment",
        "control_rate",
        "treatment_rate",
        "judge_lift",
        "lift",
        "interval",
        "p_value",
        "decision",
        "decided_at",
    )
    turn_labels = tuple((arm, sample) for sample in ("judged", "labelled") for arm in ARMS)  # as _turns

    def __init__(
        self,
        metrics: Metrics,
        horizon_seconds: float = 3600.0,
        alpha: float = 0.05,
        tau2: float = 1e-4,
        min_samples: int = 100,
        min_labels: int = 30,
        max_journeys: int = 50,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        super().__init__(metrics, horizon_seconds, alpha, tau2, min_samples, max_journeys, idle_seconds)
        self.min_labels = min_labels

    def _make(self) -> CalibratedVersionComparison:
        return CalibratedVersionComparison(
            **self._params(), min_labels=self.min_labels, max_dimensions=len(QUALITY_DIMENSIONS)
        )

    def _observe(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
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
        journey = self.journeys(judge_id, "journey")(segment.get("journey") if segment else None)
        key = f"{PREFIX}{SEP}{judge_id}{SEP}{journey}"
        comparison = aggregator.update(key, obs, partition, self._make, apply)
        emits = [] if comparison is None else self._after(comparison, (judge_id, journey), obs)
        self._looked(aggregator, judge_id, (key,), obs, partition)
        return emits

    # a pair has one test per dimension: the comparison's own tuples carry it already
    def _pair_tests(self, comparison: Any, control: str, treatment: str) -> dict[str, Any]:
        tests: dict[str, Any] = comparison.test(control, treatment)
        return tests

    def _events(self, comparison: Any) -> list[tuple[str, str, str, str]]:
        events: list[tuple[str, str, str, str]] = comparison.events
        return events

    def _all_tests(self, comparison: Any) -> list[tuple[str, str, str, Any]]:
        tests: list[tuple[str, str, str, Any]] = comparison.tests()
        return tests

    def _turns(self, test: CalibratedComparison) -> tuple[int, ...]:
        return (test.n_control, test.n_treatment, test.labels_control, test.labels_treatment)

    def _publish(self, at: TestKey, test: CalibratedComparison, recovered: bool = False) -> None:
        if not math.isnan(test.lift):  # an arm without labels yet
            super()._publish(at, test, recovered)

    def _scope_labels(self, at: TestKey, label_of: SettledOf) -> tuple[str | None, ...]:
        judge_id, journey = at.scope
        return (label_of("judge_id", judge_id), label_of("journey", journey), label_of("dimension", at.dim))

    def _escalation(self, at: TestKey, test: CalibratedComparison, obs: dict[str, Any], firing: bool) -> Emit:
        (judge_id, journey), dim = at.scope, at.dim
        where, closed = f" on {dim} (human-calibrated, judge {judge_id})", f"calibrated {dim} "
        note = f"; the judge alone sees {test.judge_lift:+.2%}"
        text = regression_text(test, at, journey, self.alpha, firing, where, closed, note=note)
        head = {"source": "calibrated", "judge_id": judge_id, "journey": journey, "dimension": dim}
        eid_key = f"calibrated|{judge_id}|{journey}|{dim}|{at.control}|{at.treatment}"
        return self._regression(eid_key, head, at, test, obs, firing, text)
