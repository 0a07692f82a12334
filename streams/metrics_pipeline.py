"""Metrics of the pipeline itself: records, outputs, join state, escalations, worker health."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.labels import OpenFlags
from streams.series_budget import (
    DEFECT_COMBINATIONS,
    JUDGE_DIMENSIONS,
    SPIKE_SLICES,
    CappedCounter,
    CappedGauge,
)

SEGMENT_LABELS = ("journey", "model_version", "channel", "modality")


class PipelineMetrics:
    """Part of :class:`streams.metrics.Metrics`."""

    def _build_pipeline_metrics(self, r: CollectorRegistry) -> None:
        self.records_in = Counter(
            "convowatch_records_in_total", "Records read from an input stream.", ["stream"], registry=r
        )
        self.records_valid = Counter(
            "convowatch_records_valid_total", "Records that parsed and validated.", ["stream"], registry=r
        )
        self.records_miskeyed = Counter(
            "convowatch_records_miskeyed_total",
            "Valid records whose Kafka key is not their turn_id (signals: conversation_id): processed, but "
            "with several workers they may miss the other records of their turn.",
            ["stream"],
            registry=r,
        )
        self.records_misrouted = Counter(
            "convowatch_records_misrouted_total",
            "Valid records keyed by their turn_id on another partition than Java's partitioner (murmur2) "
            "gives that key: their producer partitions otherwise. Processed, but with several workers they "
            "may miss the other records of their turn.",
            ["stream"],
            registry=r,
        )
        self.records_clock_ahead = Counter(
            "convowatch_records_clock_ahead_total",
            "Valid records dated further ahead of the worker's clock than CONVOWATCH_CLOCK_SKEW_SECONDS: "
            "processed at the worker's clock plus that (their producer's clock is ahead).",
            ["stream"],
            registry=r,
        )
        self.records_deadlettered = Counter(
            "convowatch_records_deadlettered_total",
            "Records sent to the dead-letter topic, by reason.",
            ["stream", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "convowatch_duplicates_total",
            "Verdicts or labels equal to one already seen for the same turn, source and dimension.",
            ["stream"],
            registry=r,
        )
        self.label_conflicts = Counter(
            "convowatch_label_conflicts_total",
            "Verdicts or labels that differ from the same judge's or annotator's first label on the same "
            "turn and dimension: the first is kept.",
            ["stream"],
            registry=r,
        )
        self.outputs = Counter(
            "convowatch_outputs_total",
            "Records published, by output topic (internal observations: counted one by one, sent in packs).",
            ["topic"],
            registry=r,
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
        self.join_unmatched = Counter(
            "convowatch_join_unmatched_total",
            "Verdicts and human labels evicted from the join without ever meeting their turn (it never "
            "came, or was evicted before them), by stream.",
            ["stream"],
            registry=r,
        )
        self.join_kept_for_review = Gauge(
            "convowatch_join_kept_for_review_turns",
            "Turns held in the join state because they were sent for human review or escalated as "
            "high-risk failures: the size cap passes over the newest of them, up to half of it, so their "
            "labels still meet them and update their escalation.",
            registry=r,
        )
        self.join_review_keeps = Counter(
            "convowatch_join_review_keeps_total",
            "Review requests the join received for its turns, by result: kept, or gone (the turn was "
            "evicted before its request came).",
            ["result"],
            registry=r,
        )
        self.last_event_time = Gauge(
            "convowatch_last_event_timestamp_seconds",
            "Event time of the newest record seen per stream (Unix seconds).",
            ["stream"],
            registry=r,
        )
        self.defects = CappedCounter(
            "convowatch_defects_total",
            "Defects found, by dimension, category, source and segment.",
            ["dimension", "category", "source", *SEGMENT_LABELS],
            registry=r,
            combinations=DEFECT_COMBINATIONS,
            per_combination=["source"],
        )
        self.escalations = Counter(
            "convowatch_escalations_total",
            "Escalations published (first revision only), by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.escalations_overturned = Counter(
            "convowatch_escalations_overturned_total",
            "Escalations resolved by human review after they fired (once per escalation), by kind and the "
            "severity convowatch_escalations_total counted them with.",
            ["kind", "severity"],
            registry=r,
        )
        self.agreement_ratio = CappedGauge(
            "convowatch_judge_agreement_ratio",
            "Share of turns where the judge's label equals the human label (cumulative).",
            ["judge_id", "dimension"],
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.cohen_kappa = CappedGauge(
            "convowatch_judge_cohen_kappa",
            "Cohen's kappa between judge and human labels (cumulative; NaN when undefined).",
            ["judge_id", "dimension"],
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.agreement_pairs = CappedGauge(
            "convowatch_judge_agreement_pairs",
            "Turns with both a judge and a human label behind the agreement figures.",
            ["judge_id", "dimension"],
            registry=r,
            combinations=JUDGE_DIMENSIONS,
        )
        self.spike_active = CappedGauge(
            "convowatch_defect_spike_active",
            '1 while a defect-rate spike is open for the category and segment ("*": not part of the slice), '
            'by source: a judge id, or "humans"; severity: the category\'s, from the taxonomy.',
            ["category", "journey", "model_version", "intent", "source", "severity"],
            registry=r,
            combinations=SPIKE_SLICES,
            per_combination=["severity"],  # the category's: one per combination, kept when it folds
            kept_on_fold=["category", "journey"],  # and "*": the backstop alert and its inhibit rules
            overflow="fold",
        )
        self.spike_open = OpenFlags(self.spike_active)  # set through this (see OpenFlags)
        self.spike_budget_turns = Gauge(
            "convowatch_spike_budget_turns_per_day",
            "The traffic the defect-spike false-alarm budget is stated for, by source: judged turns times "
            'judges ("judges"), human-labelled turns ("humans"); above it, false alarms rise in proportion.',
            ["source"],
            registry=r,
        )
        self.spike_turns = Counter(
            "convowatch_spike_turns_total",
            "Turns the defect-spike detectors took, by source (judges: once per judge; humans), each as the "
            "share of the categories it brought: the traffic convowatch_spike_budget_turns_per_day is for.",
            ["source"],
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
        self.worker_role = Gauge(
            "convowatch_worker_role",
            "1 for the role this worker runs (all, join or aggregate): which stages the scraped workers "
            "cover.",
            ["role"],
            registry=r,
        )
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
        self.aggregates = Gauge(
            "convowatch_aggregates",
            "Aggregates (detectors and view records) this process holds, by kind.",
            ["kind"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "convowatch_consumer_lag",
            "Messages on a consumed topic partition past the consumer group's committed offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.consumer_lag_checked = Gauge(
            "convowatch_consumer_lag_checked_timestamp_seconds",
            "Wall-clock time the consumer lag was last measured (Unix seconds; 0 before the first time).",
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
        self.state_oversized = Counter(
            "convowatch_state_oversized_total",
            "State entries too large for a changelog record, kept in memory but not written (a restart "
            "recovers their previous value), by table.",
            ["table"],
            registry=r,
        )
