"""Every Prometheus metric convowatch exports, built in one place on an injectable registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.labels import LabelGuard

SEGMENT_LABELS = ("journey", "model_version", "channel", "modality")


class Metrics:
    """The metrics of one convowatch process. Nothing registers on import: pass a fresh registry in tests.

    Label values are bounded: streams, reasons, topics, kinds and dimensions come from fixed sets or
    configuration; segment values and judge ids pass through a :class:`LabelGuard`.
    """

    def __init__(self, registry: CollectorRegistry | None = None, label_max_values: int = 20) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.guards = {
            name: LabelGuard(label_max_values) for name in (*SEGMENT_LABELS, "judge_id", "vendor_id")
        }
        self.guards["dimension"] = LabelGuard(max(label_max_values, 32))
        self.guards["intent"] = LabelGuard(label_max_values)

        self.records_in = Counter(
            "convowatch_records_in_total", "Records read from an input stream.", ["stream"], registry=r
        )
        self.records_valid = Counter(
            "convowatch_records_valid_total", "Records that parsed and validated.", ["stream"], registry=r
        )
        self.records_deadlettered = Counter(
            "convowatch_records_deadlettered_total",
            "Records sent to the dead-letter topic, by reason.",
            ["stream", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "convowatch_duplicates_total",
            "Verdicts or labels already seen for the same turn, source and dimension (counted once).",
            ["stream"],
            registry=r,
        )
        self.outputs = Counter(
            "convowatch_outputs_total", "Records published, by output topic.", ["topic"], registry=r
        )
        self.join_pending = Gauge(
            "convowatch_join_pending_turns",
            "Turns held in the join state, waiting for more events.",
            registry=r,
        )
        self.join_evictions = Counter(
            "convowatch_join_evictions_total",
            "Turns evicted from the join state, by reason (ttl or capacity).",
            ["reason"],
            registry=r,
        )
        self.last_event_time = Gauge(
            "convowatch_last_event_timestamp_seconds",
            "Event time of the newest record seen per stream (Unix seconds).",
            ["stream"],
            registry=r,
        )
        self.defects = Counter(
            "convowatch_defects_total",
            "Defects found, by dimension, category, source and segment.",
            ["dimension", "category", "source", *SEGMENT_LABELS],
            registry=r,
        )
        self.escalations = Counter(
            "convowatch_escalations_total",
            "Escalations published (first revision only), by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.agreement_ratio = Gauge(
            "convowatch_judge_agreement_ratio",
            "Share of turns where the judge's label equals the human label (cumulative).",
            ["judge_id", "dimension"],
            registry=r,
        )
        self.cohen_kappa = Gauge(
            "convowatch_judge_cohen_kappa",
            "Cohen's kappa between judge and human labels (cumulative; NaN when undefined).",
            ["judge_id", "dimension"],
            registry=r,
        )
        self.agreement_pairs = Gauge(
            "convowatch_judge_agreement_pairs",
            "Turns with both a judge and a human label behind the agreement figures.",
            ["judge_id", "dimension"],
            registry=r,
        )
        self.spike_active = Gauge(
            "convowatch_defect_spike_active",
            '1 while a defect-rate spike is open for the category and segment ("*": not part of the slice).',
            ["category", "journey", "model_version", "intent"],
            registry=r,
        )
        self.alertmanager_alerts = Counter(
            "convowatch_alertmanager_alerts_total",
            "Alerts handled by the Alertmanager sink, by result (sent, failed, dropped, expired, invalid).",
            ["result"],
            registry=r,
        )
        self.alertmanager_active = Gauge(
            "convowatch_alertmanager_active_alerts", "Escalations currently firing as alerts.", registry=r
        )
        self.processing_seconds = Histogram(
            "convowatch_processing_seconds",
            "Wall time to process one batch of input records.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        # -- worker health (Kafka transport) --
        self.broker_connected = Gauge(
            "convowatch_broker_connected",
            "1 while the Kafka broker answers the worker's periodic metadata probe, else 0.",
            registry=r,
        )
        self.broker_outages = Counter(
            "convowatch_broker_outages_total",
            "Times the Kafka broker stopped answering the worker's probe.",
            registry=r,
        )
        self.broker_last_outage_seconds = Gauge(
            "convowatch_broker_last_outage_seconds",
            "Duration of the last broker outage that ended (seconds, as seen by the probe).",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "convowatch_assigned_partitions",
            "Input partitions this worker owns after the last rebalance, by stream.",
            ["stream"],
            registry=r,
        )
        self.internal_errors = Counter(
            "convowatch_internal_errors_total",
            "Records an agent could not process because of a bug (logged with their position), by stage.",
            ["stage"],
            registry=r,
        )
        # -- divergence between humans, judges and the live model (streams/views: agreement, raters, gold,
        # calibration, ppi, live_model, label_flow). Figures are recomputed every
        # CONVOWATCH_DIVERGENCE_REFRESH_EVERY observations or _SECONDS of event time; NaN when undefined.
        jd = ["judge_id", "dimension"]
        self.gwet_ac1 = Gauge(
            "convowatch_judge_gwet_ac1",
            "Gwet's AC1 between judge and human labels (cumulative).",
            jd,
            registry=r,
        )
        self.agreement_bound = Gauge(
            "convowatch_judge_agreement_bound",
            "95% interval bounds of the cumulative judge/human figures; statistic is percent_agreement, "
            "cohen_kappa or gwet_ac1, bound lower or upper.",
            [*jd, "statistic", "bound"],
            registry=r,
        )
        jdw = [*jd, "window"]
        self.window_agreement_ratio = Gauge(
            "convowatch_judge_window_agreement_ratio",
            "Share of turns where judge and human agree, over a sliding event-time window of turn times.",
            jdw,
            registry=r,
        )
        self.window_cohen_kappa = Gauge(
            "convowatch_judge_window_cohen_kappa",
            "Cohen's kappa, judge vs human, over the window.",
            jdw,
            registry=r,
        )
        self.window_gwet_ac1 = Gauge(
            "convowatch_judge_window_gwet_ac1",
            "Gwet's AC1, judge vs human, over the window.",
            jdw,
            registry=r,
        )
        self.window_agreement_pairs = Gauge(
            "convowatch_judge_window_agreement_pairs",
            "Judge/human pairs whose turn falls in the window.",
            jdw,
            registry=r,
        )
        jds = [*jd, "segment", "segment_value"]
        self.segment_agreement_ratio = Gauge(
            "convowatch_judge_segment_agreement_ratio",
            "Judge/human agreement within one segment value (segment: journey, intent, model_version, "
            "channel, modality or vendor; cumulative).",
            jds,
            registry=r,
        )
        self.segment_cohen_kappa = Gauge(
            "convowatch_judge_segment_cohen_kappa", "Cohen's kappa within one segment value.", jds, registry=r
        )
        self.segment_gwet_ac1 = Gauge(
            "convowatch_judge_segment_gwet_ac1", "Gwet's AC1 within one segment value.", jds, registry=r
        )
        self.segment_agreement_pairs = Gauge(
            "convowatch_judge_segment_agreement_pairs", "Pairs within one segment value.", jds, registry=r
        )
        self.raters_alpha = Gauge(
            "convowatch_raters_krippendorff_alpha",
            "Krippendorff's alpha (nominal) over turns labelled by two or more annotators.",
            ["dimension"],
            registry=r,
        )
        self.raters_fleiss_kappa = Gauge(
            "convowatch_raters_fleiss_kappa",
            "Fleiss' kappa over the turns with the most common number of annotators.",
            ["dimension"],
            registry=r,
        )
        self.raters_items = Gauge(
            "convowatch_raters_items", "Turns labelled by two or more annotators.", ["dimension"], registry=r
        )
        self.raters_ties = Gauge(
            "convowatch_raters_consensus_ties",
            "Multi-annotator turns whose labels have no single most frequent value.",
            ["dimension"],
            registry=r,
        )
        self.vendor_consensus_ratio = Gauge(
            "convowatch_vendor_consensus_agreement_ratio",
            "Share of a vendor's labels equal to the other annotators' consensus on the same turn.",
            ["vendor_id", "dimension"],
            registry=r,
        )
        self.vendor_gold_accuracy = Gauge(
            "convowatch_vendor_gold_accuracy_ratio",
            'Accuracy of a vendor\'s labels on golden-set turns (dimension "*": all dimensions).',
            ["vendor_id", "dimension"],
            registry=r,
        )
        self.judge_gold_accuracy = Gauge(
            "convowatch_judge_gold_accuracy_ratio",
            'Accuracy of a judge\'s labels on golden-set turns (dimension "*": all dimensions).',
            jd,
            registry=r,
        )
        self.judge_sensitivity = Gauge(
            "convowatch_judge_sensitivity_ratio",
            "Share of human fails the judge also fails (recall of fail).",
            jd,
            registry=r,
        )
        self.judge_specificity = Gauge(
            "convowatch_judge_specificity_ratio",
            "Share of human passes the judge also passes.",
            jd,
            registry=r,
        )
        self.judge_calibration_bound = Gauge(
            "convowatch_judge_calibration_bound",
            "95% Wilson bounds of sensitivity and specificity (statistic), bound lower or upper.",
            [*jd, "statistic", "bound"],
            registry=r,
        )
        self.judge_ece = Gauge(
            "convowatch_judge_expected_calibration_error",
            "Expected calibration error of the judge's confidence in its label, against humans (0-1).",
            jd,
            registry=r,
        )
        jdj = [*jd, "journey"]
        self.calibrated_rate = Gauge(
            "convowatch_calibrated_defect_rate_ratio",
            "Defect rate of judged turns, prediction-powered: the judge on every turn, corrected by human "
            'labels (journey "*": all journeys).',
            jdj,
            registry=r,
        )
        self.calibrated_rate_bound = Gauge(
            "convowatch_calibrated_defect_rate_bound",
            "95% interval bounds (bound lower or upper) of the prediction-powered defect rate.",
            [*jdj, "bound"],
            registry=r,
        )
        self.live_intent_accuracy = Gauge(
            "convowatch_live_intent_accuracy_ratio",
            'Share of turns whose live-model intent equals the human intent label (model_version "*": all).',
            ["model_version"],
            registry=r,
        )
        self.live_intent_ece = Gauge(
            "convowatch_live_intent_expected_calibration_error",
            "Expected calibration error of the live model's intent_confidence against human intent labels.",
            ["model_version"],
            registry=r,
        )
        guardrail = ["source", "judge_id", "model_version"]
        self.guardrail_recall = Gauge(
            "convowatch_guardrail_recall_ratio",
            "Share of safety or compliance fails (source human, or a judge's: judge_id) that the live "
            'model\'s guardrails flagged (judge_id "" for humans; model_version "*": all).',
            guardrail,
            registry=r,
        )
        self.guardrail_precision = Gauge(
            "convowatch_guardrail_precision_ratio",
            "Share of guardrail-flagged turns that humans (or the judge) fail on safety or compliance.",
            guardrail,
            registry=r,
        )
        self.turns_judged = Counter(
            "convowatch_turns_judged_total",
            "Turns judged, per judge and journey (once per judge and turn, when verdict and turn meet).",
            ["judge_id", "journey"],
            registry=r,
        )
        self.turns_labelled = Counter(
            "convowatch_turns_labelled_total",
            "Turns judged by the judge that received a human label (once per annotator and turn): divided by "
            "convowatch_turns_judged_total, the labelling coverage.",
            ["judge_id", "journey"],
            registry=r,
        )
        self.human_labels = Counter(
            "convowatch_human_labels_total",
            "Turns labelled, per vendor (once per annotator and turn, when the label meets its turn).",
            ["vendor_id"],
            registry=r,
        )
        self.label_latency = Histogram(
            "convowatch_label_latency_seconds",
            "Delay from a turn's event time to its human label's event time, per vendor.",
            ["vendor_id"],
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 172800, 259200),
            registry=r,
        )

        # -- model-version comparison (streams/views/versions.py) --
        jv = ["judge_id", "journey", "control", "treatment"]
        self.version_lift = Gauge(
            "convowatch_version_lift",
            "Defect-rate lift of the treatment (newer) model version over the control on a journey, per "
            "judge (treatment minus control, ratio units).",
            jv,
            registry=r,
        )
        self.version_lift_bound = Gauge(
            "convowatch_version_lift_bound",
            "Always-valid confidence-sequence bounds (bound lower or upper) of convowatch_version_lift.",
            [*jv, "bound"],
            registry=r,
        )
        self.version_decision = Gauge(
            "convowatch_version_decision",
            "Go/No-Go of the treatment version: 0 continue (no decision yet), 1 better (go), -1 worse "
            "(no-go).",
            jv,
            registry=r,
        )
        self.version_p_value = Gauge(
            "convowatch_version_p_value",
            "Always-valid p-value of no difference between the two versions (non-increasing).",
            jv,
            registry=r,
        )
        self.version_turns = Gauge(
            "convowatch_version_turns",
            "Judged turns behind a version comparison, per arm (control or treatment).",
            [*jv, "arm"],
            registry=r,
        )

    def zero_known_children(self, streams: list[str], reasons: list[str], topics: list[str]) -> None:
        """Create the label children that are known in advance at 0, so ``increase()`` over a counter sees
        its first event and dashboards show 0 rather than no data."""
        for stream in streams:
            self.records_in.labels(stream)
            self.records_valid.labels(stream)
            self.duplicates.labels(stream)
            for reason in reasons:
                self.records_deadlettered.labels(stream, reason)
        for topic in topics:
            self.outputs.labels(topic)
        for reason in ("ttl", "capacity"):
            self.join_evictions.labels(reason)
        for kind in ("high_risk_failure", "defect_spike", "judge_drift", "volume_anomaly", "latency_anomaly"):
            for severity in ("critical", "high", "medium", "low"):
                self.escalations.labels(kind, severity)

    def label(self, name: str, value: str | None) -> str:
        """``value`` made safe for label ``name``."""
        return self.guards[name](value)
