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

    def label(self, name: str, value: str | None) -> str:
        """``value`` made safe for label ``name``."""
        return self.guards[name](value)


def alert_metrics(registry: CollectorRegistry) -> tuple[Counter, Gauge]:
    """Metrics of the Alertmanager sink (registered only when one is configured)."""
    alerts = Counter(
        "convowatch_alertmanager_alerts_total",
        "Alerts handled by the Alertmanager sink, by result (sent, failed, dropped, expired, invalid).",
        ["result"],
        registry=registry,
    )
    active = Gauge(
        "convowatch_alertmanager_active_alerts", "Escalations currently firing as alerts.", registry=registry
    )
    return alerts, active
