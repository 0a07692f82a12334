"""Metrics of model versions (comparisons) and of multimodal perceptual scores."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.labels import OpenFlags
from streams.series_budget import (
    OUTCOME_COMPARISONS,
    PERCEPTUAL_SCORES,
    VERSION_COMPARISONS,
    CappedGauge,
    CappedHistogram,
)


class ModelMetrics:
    """Part of :class:`streams.metrics.Metrics`."""

    def _build_model_metrics(self, r: CollectorRegistry) -> None:
        # -- model-version comparison (streams/views/versions.py) --
        jv = ["judge_id", "journey", "control", "treatment"]
        self.version_lift = CappedGauge(
            "convowatch_version_lift",
            "Defect-rate lift of the treatment (newer) model version over the control on a journey, per "
            "judge (treatment minus control, ratio units).",
            jv,
            registry=r,
            combinations=VERSION_COMPARISONS,
        )
        self.version_lift_bound = CappedGauge(
            "convowatch_version_lift_bound",
            "Always-valid confidence-sequence bounds (bound lower or upper) of convowatch_version_lift.",
            [*jv, "bound"],
            registry=r,
            combinations=VERSION_COMPARISONS,
            per_combination=["bound"],
        )
        self.version_decision = CappedGauge(
            "convowatch_version_decision",
            "Go/No-Go of the treatment version: 0 continue (no decision yet), 1 better (go), -1 worse "
            "(no-go).",
            jv,
            registry=r,
            combinations=VERSION_COMPARISONS,
        )
        self.version_p_value = CappedGauge(
            "convowatch_version_p_value",
            "Always-valid p-value of no difference between the two versions (non-increasing).",
            jv,
            registry=r,
            combinations=VERSION_COMPARISONS,
        )
        self.version_turns = CappedGauge(
            "convowatch_version_turns",
            "Judged turns behind a version comparison, per arm (control or treatment).",
            [*jv, "arm"],
            registry=r,
            combinations=VERSION_COMPARISONS,
            per_combination=["arm"],
        )
        # outcome rates per version (streams/views/version_outcomes.py); outcome: escalated_to_agent,
        # thumbs_down (lower is better), contained, task_completed (higher is better)
        ov = ["journey", "outcome", "control", "treatment"]
        self.version_outcome_lift = CappedGauge(
            "convowatch_version_outcome_lift",
            "Outcome-rate lift of the treatment model version over the control on a journey (treatment "
            "minus control, ratio units; outcome escalated_to_agent, thumbs_down, contained or "
            "task_completed).",
            ov,
            registry=r,
            combinations=OUTCOME_COMPARISONS,
            per_combination=["outcome"],
        )
        self.version_outcome_lift_bound = CappedGauge(
            "convowatch_version_outcome_lift_bound",
            "Always-valid confidence-sequence bounds (bound lower or upper) of "
            "convowatch_version_outcome_lift.",
            [*ov, "bound"],
            registry=r,
            combinations=OUTCOME_COMPARISONS,
            per_combination=["outcome", "bound"],
        )
        self.version_outcome_decision = CappedGauge(
            "convowatch_version_outcome_decision",
            "Go/No-Go of the treatment version on an outcome: 0 continue, 1 better (go), -1 worse (no-go).",
            ov,
            registry=r,
            combinations=OUTCOME_COMPARISONS,
            per_combination=["outcome"],
        )
        self.version_outcome_p_value = CappedGauge(
            "convowatch_version_outcome_p_value",
            "Always-valid p-value of no outcome-rate difference between the two versions (non-increasing).",
            ov,
            registry=r,
            combinations=OUTCOME_COMPARISONS,
            per_combination=["outcome"],
        )
        self.version_outcome_turns = CappedGauge(
            "convowatch_version_outcome_turns",
            "Turns reporting the outcome behind a version comparison, per arm (control or treatment).",
            [*ov, "arm"],
            registry=r,
            combinations=OUTCOME_COMPARISONS,
            per_combination=["outcome", "arm"],
        )
        # human-calibrated defect rates per version (streams/views/version_calibrated.py)
        cv = ["judge_id", "journey", "dimension", "control", "treatment"]
        self.version_calibrated_lift = CappedGauge(
            "convowatch_version_calibrated_lift",
            "Human-calibrated (prediction-powered) defect-rate lift of the treatment model version over the "
            "control on a journey, per judge and dimension (treatment minus control, ratio units).",
            cv,
            registry=r,
            combinations=VERSION_COMPARISONS,
        )
        self.version_calibrated_lift_bound = CappedGauge(
            "convowatch_version_calibrated_lift_bound",
            "Always-valid confidence-sequence bounds (bound lower or upper) of "
            "convowatch_version_calibrated_lift.",
            [*cv, "bound"],
            registry=r,
            combinations=VERSION_COMPARISONS,
            per_combination=["bound"],
        )
        self.version_calibrated_decision = CappedGauge(
            "convowatch_version_calibrated_decision",
            "Go/No-Go of the treatment version on a human-calibrated defect rate: 0 continue, 1 better (go), "
            "-1 worse (no-go).",
            cv,
            registry=r,
            combinations=VERSION_COMPARISONS,
        )
        self.version_calibrated_p_value = CappedGauge(
            "convowatch_version_calibrated_p_value",
            "Always-valid p-value of no calibrated defect-rate difference between the two versions.",
            cv,
            registry=r,
            combinations=VERSION_COMPARISONS,
        )
        self.version_calibrated_turns = CappedGauge(
            "convowatch_version_calibrated_turns",
            "Turns behind a calibrated version comparison, per arm (control or treatment) and sample "
            "(judged: judge verdicts, labelled: human labels).",
            [*cv, "arm", "sample"],
            registry=r,
            combinations=VERSION_COMPARISONS,
            per_combination=["arm", "sample"],
        )

        # -- perceptual scores of multimodal outputs (streams/views/perceptual.py); scores are expected in
        # [0, 1]: values outside are counted in the edge buckets (0.05 and 1.0)
        mms = ["judge_id", "modality", "model_version", "score"]  # one judge's scores are not another's
        self.perceptual_score = CappedHistogram(
            "convowatch_perceptual_score",
            "Judges' perceptual scores of multimodal outputs (expected in 0-1; values outside are clamped "
            "into the edge buckets), per judge, modality, model version and score name.",
            mms,
            buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
            registry=r,
            combinations=PERCEPTUAL_SCORES,
        )
        self.perceptual_drift_statistic = CappedGauge(
            "convowatch_perceptual_drift_statistic",
            "Kolmogorov-Smirnov distance (0-1) between a score's recent window and its reference sample, "
            "at the last test.",
            mms,
            registry=r,
            combinations=PERCEPTUAL_SCORES,
        )
        self.perceptual_drift_active = CappedGauge(
            "convowatch_perceptual_drift_active",
            "1 while a perceptual_drift escalation is open for the modality, model version and score.",
            mms,
            registry=r,
            combinations=PERCEPTUAL_SCORES,
            overflow="fold",
        )
        self.perceptual_open = OpenFlags(self.perceptual_drift_active)  # set through this (see OpenFlags)
