"""The pipeline dashboard: the workers' throughput, lag, dead letters and state."""

from __future__ import annotations

from typing import Any

from panels import (
    CONNECTED,
    CONSUMER_LAG,
    DEAD_LETTERS,
    INSTANCE,
    LABELS_STALE,
    RUNBOOK_INDEX,
    STALE,
    WORKER_DOWN,
    dashboard,
    rate_sum,
    stat,
    target,
    ts,
)


def pipeline() -> dict[str, Any]:
    inst = 'instance=~"$instance"'
    return dashboard(
        "convowatch-pipeline",
        "convowatch / Pipeline health",
        "The workers: throughput, dead letters, batch time, join state, outputs and freshness.",
        [
            stat(
                "Workers up",
                target(f'sum(up{{job="convowatch", {inst}}})', "up"),
                description="Workers Prometheus can scrape.",
                links=[WORKER_DOWN],
            ),
            stat(
                "Pending turns",
                target(f"sum(convowatch_join_pending_turns{{{inst}}})", "pending"),
                description="Turns held in the join state waiting for verdicts or labels (all workers).",
                links=[RUNBOOK_INDEX],
            ),
            stat(
                "Newest event age",
                target(
                    f"time() - max by (stream) (convowatch_last_event_timestamp_seconds{{{inst}}})",
                    "{{stream}}",
                ),
                description="Wall-clock age of the newest event (by event time) per stream.",
                links=[STALE, LABELS_STALE],
                unit="s",
                thresholds=[("green", None), ("orange", 900)],
                w=12,
            ),
            ts(
                "Records per second by stream",
                target(
                    f"sum by (stream) (rate(convowatch_records_in_total{{{inst}}}[$__rate_interval]))",
                    "{{stream}} read",
                ),
                target(
                    f"sum by (stream) (rate(convowatch_records_valid_total{{{inst}}}[$__rate_interval]))",
                    "{{stream}} valid",
                ),
                target(
                    rate_sum("convowatch_records_deadlettered_total", inst, "stream"),
                    "{{stream}} dead-lettered",
                ),
                description="Read, valid and dead-lettered records per second.",
                links=[DEAD_LETTERS],
            ),
            ts(
                "Dead letters per second by stream and reason",
                target(
                    f"sum by (stream, reason) (rate(convowatch_records_deadlettered_total{{{inst}}}"
                    "[$__rate_interval]))",
                    "{{stream}} {{reason}}",
                ),
                description="Why records were rejected: invalid_json, not_an_object, too_large, "
                "unsupported_version, validation_error, internal_error.",
                links=[DEAD_LETTERS],
            ),
            ts(
                "Dead-letter ratio by stream (5m, all workers)",
                target("convowatch:deadletter:ratio5m", "{{stream}}"),
                description="Share of records rejected; the alert threshold is 1%. Not filtered by worker.",
                links=[DEAD_LETTERS],
                unit="percentunit",
                thresholds=[("green", None), ("orange", 0.01)],
                threshold_line=True,
                min_value=0,
            ),
            ts(
                "Consumer lag by topic (all workers)",
                target("convowatch:consumer_lag:sum", "{{topic}}"),
                description="Messages past the consumer group's committed offsets, per consumed topic "
                "(inputs and internal observations); the alert fires above 10,000 for 10 minutes. Not "
                "filtered by worker: every worker reports the whole group.",
                links=[CONSUMER_LAG],
                thresholds=[("green", None), ("orange", 10_000)],
                threshold_line=True,
                min_value=0,
            ),
            ts(
                "Consumer lag by partition",
                target(
                    f"max by (topic, partition) (convowatch_consumer_lag {CONNECTED})",
                    "{{topic}}[{{partition}}]",
                ),
                description="The partition a stuck or slow worker owns stands out here. A worker cut off "
                "from the broker is left out while another of its role reaches it (its last lag stays).",
                links=[CONSUMER_LAG],
                min_value=0,
            ),
            ts(
                "Batch processing time",
                *(
                    target(
                        f"histogram_quantile({q}, "
                        f"{rate_sum('convowatch_processing_seconds_bucket', inst, 'le')})",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.9, 0.99)
                ),
                description="Wall time to process one batch of input records (quantiles over all workers).",
                links=[RUNBOOK_INDEX],
                unit="s",
            ),
            ts(
                "Batches per second by worker",
                target(rate_sum("convowatch_processing_seconds_count", inst, "instance"), "{{instance}}"),
                description="Processed batches per second; batch size grows with load.",
                links=[RUNBOOK_INDEX],
            ),
            ts(
                "Join pending turns by worker",
                target(f"sum by (instance) (convowatch_join_pending_turns{{{inst}}})", "{{instance}}"),
                target(
                    f"sum by (instance) (convowatch_join_kept_for_review_turns{{{inst}}})",
                    "{{instance}} sent for review",
                ),
                description="Bounded by CONVOWATCH_JOIN_MAX_ENTRIES and the event-time TTL. Turns sent for "
                "human review are among them; the cap passes over the newest of them, up to half of it.",
                links=[RUNBOOK_INDEX],
            ),
            ts(
                "Aggregates held by kind",
                target(f"sum by (kind) (convowatch_aggregates{{{inst}}})", "{{kind}}"),
                description="Detectors and view records the workers hold (all workers), by kind: "
                "agreement, spike, drift, conversation (business outcomes), ... Counted every 10 s.",
                links=[RUNBOOK_INDEX],
            ),
            ts(
                "Join evictions per second by reason",
                target(
                    f"sum by (reason) (rate(convowatch_join_evictions_total{{{inst}}}[$__rate_interval]))",
                    "{{reason}}",
                ),
                target(
                    "sum(rate(convowatch_join_review_keeps_total"
                    f'{{result="gone", {inst}}}[$__rate_interval]))',
                    "review request after eviction",
                ),
                description="ttl: turns older than CONVOWATCH_JOIN_TTL_SECONDS; capacity: the oldest turns "
                "dropped at CONVOWATCH_JOIN_MAX_ENTRIES (raise it if this is not zero). Review requests "
                "after eviction: turns sent for review that the cap had dropped already (the aggregation far "
                "behind the join); their labels will meet nothing.",
                links=[RUNBOOK_INDEX],
            ),
            ts(
                "Outputs published per second by topic",
                target(
                    f"sum by (topic) (rate(convowatch_outputs_total{{{inst}}}[$__rate_interval]))",
                    "{{topic}}",
                ),
                description="Records published per output topic.",
                links=[RUNBOOK_INDEX],
            ),
            ts(
                "Duplicates and conflicts per second by stream",
                target(
                    f"sum by (stream) (rate(convowatch_duplicates_total{{{inst}}}[$__rate_interval]))",
                    "{{stream}} duplicates",
                ),
                target(
                    f"sum by (stream) (rate(convowatch_label_conflicts_total{{{inst}}}[$__rate_interval]))",
                    "{{stream}} conflicts",
                ),
                description="Duplicates: turns, verdicts or labels already seen (producer retries or replays "
                "after a restart). Conflicts: a judge or annotator labelling a turn's dimension again, "
                "differently; the first label stands (a re-run judge should use its own judge_id).",
                links=[RUNBOOK_INDEX],
            ),
            ts(
                "Worker up",
                target(f'up{{job="convowatch", {inst}}}', "{{instance}}"),
                description="1 while Prometheus can scrape the worker.",
                links=[WORKER_DOWN],
                min_value=0,
                max_value=1,
                w=24,
                h=6,
            ),
        ],
        [INSTANCE],
    )
