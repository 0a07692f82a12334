"""The judges dashboard: agreement with humans, drift, perceptual scores."""

from __future__ import annotations

from typing import Any

from panels import (
    CONNECTED,
    DIMENSION,
    JOURNEY,
    JUDGE,
    JUDGE_DRIFT,
    JUDGE_LOW,
    LABELS_STALE,
    MODEL_VERSION,
    RUNBOOKS,
    SEGMENT,
    VERSION_REGRESSION,
    category_runbooks,
    dashboard,
    link,
    panel,
    stat,
    target,
    ts,
)


def judges() -> dict[str, Any]:
    sel = 'judge_id=~"$judge", dimension=~"$dimension"'

    def per_dimension(metric: str) -> str:
        """``metric`` per judge and dimension, whichever worker owns the judge (a cut-off one left out)."""
        return f"max by (judge_id, dimension) ({metric}{{{sel}}} {CONNECTED})"

    version_sel = 'journey=~"$journey", treatment=~"$model_version"'
    return dashboard(
        "convowatch-judges",
        "convowatch / Judge calibration and divergence",
        "How far each LLM judge agrees with human labels, per dimension, and where they diverge.",
        [
            stat(
                "Pair-weighted agreement",
                target('convowatch:judge_agreement_ratio:pair_weighted{judge_id=~"$judge"}', "{{judge_id}}"),
                description="Share of judge/human pairs that agree, over all dimensions, weighted by pairs.",
                links=[JUDGE_LOW],
                unit="percentunit",
                w=8,
            ),
            stat(
                "Worst kappa (>= 50 pairs)",
                target('convowatch:judge_cohen_kappa:min{judge_id=~"$judge"}', "{{judge_id}}"),
                description="Lowest Cohen's kappa over the judge's dimensions with at least 50 pairs; a "
                "kappa below 0.4 counts with at least 10 disagreements behind it.",
                links=[JUDGE_LOW],
                thresholds=[("red", None), ("orange", 0.4), ("green", 0.6)],
                w=8,
            ),
            stat(
                "Judge/human pairs",
                target(
                    f"max by (judge_id) (convowatch_judge_agreement_pairs{{{sel}}} {CONNECTED})",
                    "{{judge_id}}",
                ),
                description="Turns with both a judge and a human label behind the figures, in the dimension "
                "with the most (a sum over dimensions counted each turn once per dimension).",
                links=[LABELS_STALE],
                w=8,
            ),
            ts(
                "Agreement ratio by judge and dimension",
                target(
                    per_dimension("convowatch_judge_agreement_ratio"),
                    "{{judge_id}} {{dimension}}",
                ),
                description="Share of turns where the judge's label equals the human label (cumulative since "
                "the worker started). High agreement on a rare class can hide a judge that never flags it: "
                "read it with kappa.",
                links=[JUDGE_LOW],
                unit="percentunit",
                min_value=0,
                max_value=1,
            ),
            ts(
                "Cohen's kappa by judge and dimension",
                target(
                    per_dimension("convowatch_judge_cohen_kappa"),
                    "{{judge_id}} {{dimension}}",
                ),
                description="Chance-corrected agreement (cumulative). Gaps mean undefined (only one class "
                "seen). ConvowatchJudgeAgreementLow fires below 0.4 with at least 50 pairs and 10 "
                "disagreements (one disagreement on a dimension one side never fails puts kappa at 0).",
                links=[JUDGE_LOW, JUDGE_DRIFT],
                thresholds=[("red", None), ("green", 0.4)],
                threshold_line=True,
                min_value=-1,
                max_value=1,
            ),
            panel(
                "table",
                "Calibration by judge and dimension",
                [
                    target(
                        per_dimension("convowatch_judge_cohen_kappa"),
                        instant=True,
                        table=True,
                    ),
                    target(
                        per_dimension("convowatch_judge_agreement_ratio"),
                        instant=True,
                        table=True,
                    ),
                    target(
                        per_dimension("convowatch_judge_agreement_pairs"),
                        instant=True,
                        table=True,
                    ),
                ],
                description="Latest kappa, agreement and pairs side by side.",
                links=[JUDGE_LOW],
                transformations=[
                    {"id": "merge", "options": {}},
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {"Time": True},
                            "renameByName": {
                                "judge_id": "judge",
                                "Value #A": "kappa",
                                "Value #B": "agreement",
                                "Value #C": "pairs",
                            },
                        },
                    },
                ],
            ),
            ts(
                "New judge/human pairs per minute",
                target(
                    f"sum by (judge_id, dimension) (deriv(convowatch_judge_agreement_pairs{{{sel}}}"
                    "[$__rate_interval])) * 60",
                    "{{judge_id}} {{dimension}}",
                ),
                description="How fast calibration evidence accumulates; flat means no human labels arrive.",
                links=[LABELS_STALE],
            ),
            ts(
                "Judge vs human defects per minute by dimension",
                target(
                    f'sum by (source, dimension) (rate(convowatch_defects_total{{dimension=~"$dimension", '
                    f"{SEGMENT}}}[$__rate_interval])) * 60",
                    "{{source}} {{dimension}}",
                ),
                description="Defects found by the judge and by human labellers. Humans label a sample of "
                "turns, so compare shapes, not levels.",
                links=category_runbooks(),
            ),
            ts(
                "Human-calibrated defect-rate lift of the newer model version",
                target(
                    "max by (judge_id, journey, dimension, control, treatment) "
                    f"(convowatch_version_calibrated_lift{{{sel}, {version_sel}}})",
                    "{{judge_id}} {{journey}} {{dimension}}: {{treatment}} - {{control}}",
                ),
                target(
                    "max by (judge_id, journey, dimension, control, treatment, bound) "
                    f"(convowatch_version_calibrated_lift_bound{{{sel}, {version_sel}}})",
                    "{{bound}} {{judge_id}} {{journey}} {{dimension}}: {{treatment}} - {{control}}",
                ),
                description="When two model versions serve a journey at once: the newer one's defect rate "
                "minus the older one's, per judge and dimension, each rate the judge's corrected by the "
                "human labels of the same turns (prediction-powered), with the always-valid interval. Above "
                "0 is worse; a significant lift raises version_regression. Wide while few turns are "
                "labelled.",
                links=[VERSION_REGRESSION, JUDGE_LOW],
                unit="percentunit",
            ),
            *perceptual_panels(),
        ],
        [JUDGE, DIMENSION, JOURNEY, MODEL_VERSION],
    )


def perceptual_panels() -> list[dict[str, Any]]:
    """Judges' perceptual scores of image, audio, video and 3D outputs (streams/views/perceptual.py)."""
    sel = 'judge_id=~"$judge", model_version=~"$model_version"'
    runbook = [link("Runbook: perceptual drift", f"{RUNBOOKS}/escalations/perceptual-drift")]
    buckets = f"sum by (modality, le) (rate(convowatch_perceptual_score_bucket{{{sel}}}[$__rate_interval]))"
    return [
        ts(
            "Perceptual score quantiles by modality",
            *(
                target(f"histogram_quantile({q}, {buckets})", f"{{{{modality}}}} p{round(q * 100):02d}")
                for q in (0.1, 0.5, 0.9)
            ),
            description="10th, 50th and 90th percentiles of the judges' perceptual scores (artifact, prompt "
            "alignment, CLIP-style...; all score names together), per modality. Scores are expected in 0-1. "
            "A shape change can leave the median where it was and move the outer percentiles.",
            links=runbook,
            min_value=0,
            max_value=1,
        ),
        ts(
            "Perceptual drift: KS distance to the reference",
            target(
                f"max by (modality, model_version, score) (convowatch_perceptual_drift_statistic{{{sel}}})",
                "{{modality}} {{model_version}} {{score}}",
            ),
            description="Largest gap between the CDF of each score's latest window and of its reference "
            "sample (0 = same distribution, 1 = disjoint), at the last test. perceptual_drift fires above "
            "the threshold in its evidence (about 0.2 with the default sizes and false-alarm budget).",
            links=runbook,
            min_value=0,
            max_value=1,
            w=16,
        ),
        stat(
            "Open perceptual drift escalations",
            # one per score, whichever worker reports it (a folded judge "other" may be reported by several)
            target(
                "count(max by (judge_id, modality, model_version, score) "
                f"(convowatch_perceptual_drift_active{{{sel}}}) == 1) or vector(0)"
            ),
            description="Scores (per judge, modality and model version) with a perceptual_drift escalation "
            "firing now.",
            links=runbook,
            thresholds=[("green", None), ("red", 1)],
            w=8,
            h=8,
        ),
    ]
