"""Metrics of labelling vendors (scorecards, SLAs) and of review sampling."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.series_budget import ONE_LABEL, CappedCounter, CappedGauge


class LabellingMetrics:
    """Part of :class:`streams.metrics.Metrics`."""

    def _build_labelling_metrics(self, r: CollectorRegistry) -> None:
        # -- vendor scorecards and SLAs (streams/views/vendors.py): over the SLA window of label event time
        # (CONVOWATCH_VENDOR_SLA), recomputed at each SLA evaluation; per-annotator figures: report.json only
        self.vendor_labels_per_hour = CappedGauge(
            "convowatch_vendor_labels_per_hour",
            "Human labels per hour of label event time from a vendor, over the SLA window.",
            ["vendor_id"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.vendor_turnaround = CappedGauge(
            "convowatch_vendor_turnaround_seconds",
            "Quantile (0.5, 0.9) of a vendor's turnaround, turn to label, over the SLA window (from the "
            "scorecard's histogram, between the smallest and largest turnaround of the quantile's bin).",
            ["vendor_id", "quantile"],
            registry=r,
            combinations=ONE_LABEL,
            per_combination=["quantile"],
        )
        self.vendor_window_gold_accuracy = CappedGauge(
            "convowatch_vendor_window_gold_accuracy_ratio",
            "Accuracy of a vendor's labels on golden-set turns, all dimensions, over the SLA window.",
            ["vendor_id"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.vendor_window_judge_agreement = CappedGauge(
            "convowatch_vendor_window_judge_agreement_ratio",
            "Share of a vendor's labels equal to the judges' label on the same turn and dimension, over the "
            "SLA window.",
            ["vendor_id"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.vendor_window_consensus_agreement = CappedGauge(
            "convowatch_vendor_window_consensus_agreement_ratio",
            "Share of a vendor's labels equal to the other annotators' consensus, over the SLA window.",
            ["vendor_id"],
            registry=r,
            combinations=ONE_LABEL,
        )
        self.vendor_sla_breached = CappedGauge(
            "convowatch_vendor_sla_breached",
            "1 while a vendor breaches an SLA (sla: labels_per_hour, turnaround, gold_accuracy, "
            "judge_agreement, consensus_agreement), else 0; only SLAs with a target for the vendor.",
            ["vendor_id", "sla"],
            registry=r,
            combinations=ONE_LABEL,
            per_combination=["sla"],
        )
        # counted as the scorecard applies labels (not at evaluations); one count for all vendors: the
        # scorecard keeps no per-vendor figure of them
        self.vendor_labels_too_late = Counter(
            "convowatch_vendor_labels_too_late_total",
            "Vendor scorecard items (labels, a golden-set label's gold items, consensus comparisons) dropped "
            "because their label event time was already older than the SLA window; all vendors (report.json "
            "vendors.window.too_late: the total since the scorecard began).",
            registry=r,
        )

        # -- review sampling (streams/views/review.py) --
        self.review_requests = CappedCounter(
            "convowatch_review_requests_total",
            "Human review requests published to convowatch.review.requests, by reason and journey.",
            ["reason", "journey"],
            registry=r,
            combinations=ONE_LABEL,
            per_combination=["reason"],
        )
        self.review_expected_per_hour = Gauge(
            "convowatch_review_expected_requests_per_hour",
            "Review requests per hour of event time the sampler expects at the recent judged traffic "
            "(segment floors aside): above the budget when high-risk turns alone exceed it.",
            registry=r,
        )
        self.review_budget_per_hour = Gauge(
            "convowatch_review_budget_per_hour",
            "The configured review budget (CONVOWATCH_REVIEW_BUDGET_PER_HOUR), requests per hour.",
            registry=r,
        )
