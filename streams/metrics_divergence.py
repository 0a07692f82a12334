"""Metrics of divergence between humans, judges and the live model, and of the label flow."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from streams.series_budget import (
    JUDGE_DIMENSIONS,
    JUDGE_JOURNEYS,
    JUDGE_VERSIONS,
    ONE_LABEL,
    SEGMENT_AGREEMENT,
    CappedCounter,
    CappedGauge,
    CappedHistogram,
)


class DivergenceMetrics:
    """Part of :class:`streams.metrics.Metrics`."""

    def _build_divergence_metrics(self, r: CollectorRegistry) -> None:
        # -- divergence between humans, judges and the live model (streams/views: agreement, raters, gold,
        # calibration, ppi, live_model, label_flow). Figures are recomputed every
        # CONVOWATCH_DIVERGENCE_REFRESH_EVERY observations or _SECONDS of event time; NaN when undefined.
        jd = ["judge_id", "dimension"]
        self.gwet_ac1 = CappedGauge(
            "convowatch_judge_gwet_ac1",
            "Gwet's AC1 between judge and human labels (cumulative).",
            jd,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.agreement_bound = CappedGauge(
            "convowatch_judge_agreement_bound",
            "95% interval bounds of the cumulative judge/human figures; statistic is percent_agreement, "
            "cohen_kappa or gwet_ac1, bound lower or upper.",
            [*jd, "statistic", "bound"],
            registry=r,
            combinations=JUDGE_DIMENSIONS,
            per_combination=["statistic", "bound"],
        )
        jdw = [*jd, "window"]
        self.window_agreement_ratio = CappedGauge(
            "convowatch_judge_window_agreement_ratio",
            "Share of turns where judge and human agree, over a sliding event-time window of turn times.",
            jdw,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
            per_combination=["window"],
        )
        self.window_cohen_kappa = CappedGauge(
            "convowatch_judge_window_cohen_kappa",
            "Cohen's kappa, judge vs human, over the window.",
            jdw,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
            per_combination=["window"],
        )
        self.window_gwet_ac1 = CappedGauge(
            "convowatch_judge_window_gwet_ac1",
            "Gwet's AC1, judge vs human, over the window.",
            jdw,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
            per_combination=["window"],
        )
        self.window_agreement_pairs = CappedGauge(
            "convowatch_judge_window_agreement_pairs",
            "Judge/human pairs whose turn falls in the window.",
            jdw,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
            per_combination=["window"],
        )
        jds = [*jd, "segment", "segment_value"]
        self.segment_agreement_ratio = CappedGauge(
            "convowatch_judge_segment_agreement_ratio",
            "Judge/human agreement within one segment value (segment: journey, intent, model_version, "
            "channel, modality or vendor; cumulative).",
            jds,
            registry=r,
            combinations=SEGMENT_AGREEMENT,
        )
        self.segment_cohen_kappa = CappedGauge(
            "convowatch_judge_segment_cohen_kappa",
            "Cohen's kappa within one segment value.",
            jds,
            registry=r,
            combinations=SEGMENT_AGREEMENT,
        )
        self.segment_gwet_ac1 = CappedGauge(
            "convowatch_judge_segment_gwet_ac1",
            "Gwet's AC1 within one segment value.",
            jds,
            registry=r,
            combinations=SEGMENT_AGREEMENT,
        )
        self.segment_agreement_pairs = CappedGauge(
            "convowatch_judge_segment_agreement_pairs",
            "Pairs within one segment value.",
            jds,
            registry=r,
            combinations=SEGMENT_AGREEMENT,
        )
        self.raters_alpha = CappedGauge(
            "convowatch_raters_krippendorff_alpha",
            "Krippendorff's alpha (nominal) over turns labelled by two or more annotators.",
            ["dimension"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.raters_fleiss_kappa = CappedGauge(
            "convowatch_raters_fleiss_kappa",
            "Fleiss' kappa over the turns with the most common number of annotators.",
            ["dimension"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.raters_items = CappedGauge(
            "convowatch_raters_items",
            "Turns labelled by two or more annotators.",
            ["dimension"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.raters_ties = CappedGauge(
            "convowatch_raters_consensus_ties",
            "Multi-annotator turns whose labels have no single most frequent value.",
            ["dimension"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.vendor_consensus_ratio = CappedGauge(
            "convowatch_vendor_consensus_agreement_ratio",
            "Share of a vendor's labels equal to the other annotators' consensus on the same turn.",
            ["vendor_id", "dimension"],
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.vendor_gold_accuracy = CappedGauge(
            "convowatch_vendor_gold_accuracy_ratio",
            'Accuracy of a vendor\'s labels on golden-set turns (dimension "*": all dimensions).',
            ["vendor_id", "dimension"],
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.judge_gold_accuracy = CappedGauge(
            "convowatch_judge_gold_accuracy_ratio",
            'Accuracy of a judge\'s labels on golden-set turns (dimension "*": all dimensions).',
            jd,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.gold_items_suspect = Gauge(
            "convowatch_gold_items_suspect",
            "Golden-set items (turn and dimension) most of whose human labels, at least 2, miss the expected "
            "label: likely wrong expected answers (report.json gold.items: with the judges' verdicts too).",
            registry=r,
        )
        self.judge_sensitivity = CappedGauge(
            "convowatch_judge_sensitivity_ratio",
            "Share of human fails the judge also fails (recall of fail).",
            jd,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.judge_specificity = CappedGauge(
            "convowatch_judge_specificity_ratio",
            "Share of human passes the judge also passes.",
            jd,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.judge_calibration_bound = CappedGauge(
            "convowatch_judge_calibration_bound",
            "95% Wilson bounds of sensitivity and specificity (statistic), bound lower or upper.",
            [*jd, "statistic", "bound"],
            registry=r,
            combinations=JUDGE_DIMENSIONS,
            per_combination=["statistic", "bound"],
        )
        self.judge_ece = CappedGauge(
            "convowatch_judge_expected_calibration_error",
            "Expected calibration error of the judge's confidence in its label, against humans (0-1).",
            jd,
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        jdj = [*jd, "journey"]
        self.calibrated_rate = CappedGauge(
            "convowatch_calibrated_defect_rate_ratio",
            "Defect rate of judged turns, prediction-powered: the judge on every turn, corrected by human "
            'labels (journey "*": all journeys).',
            jdj,
            registry=r,
            combinations=JUDGE_JOURNEYS,
        )
        self.calibrated_rate_bound = CappedGauge(
            "convowatch_calibrated_defect_rate_bound",
            "95% interval bounds (bound lower or upper) of the prediction-powered defect rate.",
            [*jdj, "bound"],
            registry=r,
            combinations=JUDGE_JOURNEYS,
            per_combination=["bound"],
        )
        self.live_intent_accuracy = CappedGauge(
            "convowatch_live_intent_accuracy_ratio",
            'Share of turns whose live-model intent equals the human intent label (model_version "*": all).',
            ["model_version"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.live_intent_ece = CappedGauge(
            "convowatch_live_intent_expected_calibration_error",
            "Expected calibration error of the live model's intent_confidence against human intent labels.",
            ["model_version"],
            registry=r,
            combinations=ONE_LABEL,
        )
        guardrail = ["source", "judge_id", "model_version"]
        self.guardrail_recall = CappedGauge(
            "convowatch_guardrail_recall_ratio",
            "Share of safety or compliance fails (source human, or a judge's: judge_id) that the live "
            'model\'s guardrails flagged (judge_id "" for humans; model_version "*": all).',
            guardrail,
            registry=r,
            combinations=JUDGE_VERSIONS,
            per_combination=["source"],
        )
        self.guardrail_precision = CappedGauge(
            "convowatch_guardrail_precision_ratio",
            "Share of guardrail-flagged turns that humans (or the judge) fail on safety or compliance.",
            guardrail,
            registry=r,
            combinations=JUDGE_VERSIONS,
            per_combination=["source"],
        )
        self.turns_judged = CappedCounter(
            "convowatch_turns_judged_total",
            "Turns judged, per judge and journey (once per judge and turn, when verdict and turn meet).",
            ["judge_id", "journey"],
            registry=r,
            combinations=JUDGE_JOURNEYS,
        )
        self.turns_labelled = CappedCounter(
            "convowatch_turns_labelled_total",
            "Turns judged by the judge that also have a human label not on a gold item (once per judge and "
            "turn, whichever came first): divided by convowatch_turns_judged_total, the labelling coverage.",
            ["judge_id", "journey"],
            registry=r,
            combinations=JUDGE_JOURNEYS,
        )
        self.human_labels = CappedCounter(
            "convowatch_human_labels_total",
            "Turns labelled, per vendor (once per annotator and turn, when the label meets its turn).",
            ["vendor_id"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.label_latency = CappedHistogram(
            "convowatch_label_latency_seconds",
            "Delay from a turn's event time to its human label's event time, per vendor.",
            ["vendor_id"],
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 172800, 259200),
            registry=r,
            combinations=ONE_LABEL,
        )
