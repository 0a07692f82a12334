"""The labelling dashboard: human labels, gold accuracy, vendor scorecards."""

from __future__ import annotations

from typing import Any

from panels import (
    DEAD_LETTERS,
    JOURNEY,
    JUDGE,
    JUDGE_LOW,
    LABELS_STALE,
    MODEL_VERSION,
    SEGMENT,
    VENDOR,
    VENDOR_SLA,
    category_runbooks,
    dashboard,
    panel,
    rate_sum,
    stat,
    target,
    ts,
)


def labelling() -> dict[str, Any]:
    human = 'stream="human_labels"'
    return dashboard(
        "convowatch-labelling",
        "convowatch / Vendors and labelling flow",
        "Human labels: how many arrive, how late, how many are rejected or duplicated, and what they find. "
        "Per-vendor panels need vendor-labelled metrics (see the report of the on-call view).",
        [
            stat(
                "Human labels per minute",
                target(
                    f"sum(rate(convowatch_records_valid_total{{{human}}}[$__rate_interval])) * 60", "labels"
                ),
                description="Valid human labels per minute, all vendors.",
                links=[LABELS_STALE],
            ),
            stat(
                "Human labels per chat turn",
                target(
                    f"sum(rate(convowatch_records_valid_total{{{human}}}[$__rate_interval])) / "
                    'sum(rate(convowatch_records_valid_total{stream="chat_turns"}[$__rate_interval]))',
                    "coverage",
                ),
                description="Labelling coverage: human labels received per chat turn received.",
                links=[LABELS_STALE],
                unit="percentunit",
            ),
            stat(
                "Human labels behind chat turns",
                target(
                    'max(convowatch_last_event_timestamp_seconds{stream="chat_turns"}) - '
                    f"max(convowatch_last_event_timestamp_seconds{{{human}}})",
                    "behind",
                ),
                description="Event time of the newest chat turn minus that of the newest human label.",
                links=[LABELS_STALE],
                unit="s",
            ),
            stat(
                "Human label dead-letter ratio (5m)",
                target(f"convowatch:deadletter:ratio5m{{{human}}}", "dead-lettered"),
                description="Share of human label records rejected over 5 minutes.",
                links=[DEAD_LETTERS],
                unit="percentunit",
                thresholds=[("green", None), ("orange", 0.01)],
            ),
            ts(
                "Human label records per minute",
                target(f"sum(rate(convowatch_records_in_total{{{human}}}[$__rate_interval])) * 60", "read"),
                target(
                    f"sum(rate(convowatch_records_valid_total{{{human}}}[$__rate_interval])) * 60", "valid"
                ),
                target(
                    f"sum(rate(convowatch_duplicates_total{{{human}}}[$__rate_interval])) * 60", "duplicates"
                ),
                description="Read, valid and duplicate human labels (same turn, annotator source and "
                "dimension seen before).",
                links=[LABELS_STALE, DEAD_LETTERS],
            ),
            ts(
                "Human label dead letters per minute by reason",
                target(
                    rate_sum("convowatch_records_deadlettered_total", human, "reason", per_minute=True),
                    "{{reason}}",
                ),
                description="Why vendor deliveries were rejected.",
                links=[DEAD_LETTERS],
            ),
            ts(
                "Human-confirmed defects per minute by category",
                target(
                    f'sum by (category) (rate(convowatch_defects_total{{source="human", {SEGMENT}}}'
                    "[$__rate_interval])) * 60",
                    "{{category}}",
                ),
                description="Defects found by human labellers.",
                links=category_runbooks(),
            ),
            ts(
                "Judge/human pairs by dimension",
                target(
                    'max by (dimension) (convowatch_judge_agreement_pairs{judge_id=~"$judge"})',
                    "{{dimension}}",
                ),
                description="Turns with both a judge and a human label: the evidence behind agreement.",
                links=[JUDGE_LOW],
            ),
            ts(
                "Review requests per hour by reason",
                target(
                    rate_sum("convowatch_review_requests_total", 'journey=~"$journey"', "reason") + " * 3600",
                    "{{reason}}",
                ),
                target("max(convowatch_review_expected_requests_per_hour)", "expected (sampler)"),
                target("max(convowatch_review_budget_per_hour)", "budget"),
                description="Turns sent to human review (convowatch.review.requests), by why. The sampler "
                "holds expected requests at the budget per hour of event time; above it, high-risk turns "
                "alone exceed the budget (they are always requested).",
                links=[LABELS_STALE],
                min_value=0,
            ),
            *vendor_scorecards(),
        ],
        [JOURNEY, MODEL_VERSION, JUDGE, VENDOR],
    )


def vendor_scorecards() -> list[dict[str, Any]]:
    """Vendor scorecards and SLA state over the SLA window (streams/views/vendors.py, CONVOWATCH_VENDOR_SLA);
    ``max by`` keeps one series per vendor whichever worker holds the scorecard."""
    vendor = 'vendor_id=~"$vendor"'

    def per_vendor(metric: str, extra: str = "") -> str:
        return f"max by (vendor_id) ({metric}{{{vendor}{extra}}})"

    # what ConvowatchVendorSlaBreached reads (prometheus/rules/convowatch.yml)
    breached = f"last_over_time(convowatch:vendor_sla_breached:max{{{vendor}}}[6h])"
    columns = {
        "labels/h": per_vendor("convowatch_vendor_labels_per_hour"),
        "p90 turnaround": per_vendor("convowatch_vendor_turnaround_seconds", ', quantile="0.9"'),
        "gold accuracy": per_vendor("convowatch_vendor_window_gold_accuracy_ratio"),
        "judge agreement": per_vendor("convowatch_vendor_window_judge_agreement_ratio"),
        "consensus agreement": per_vendor("convowatch_vendor_window_consensus_agreement_ratio"),
        "SLAs breached": f"sum by (vendor_id) ({breached})",
    }
    rename = {f"Value #{chr(ord('A') + i)}": name for i, name in enumerate(columns)}
    units = {
        "p90 turnaround": "s",
        **dict.fromkeys(("gold accuracy", "judge agreement", "consensus agreement"), "percentunit"),
    }
    scorecards = panel(
        "table",
        "Vendor scorecards (SLA window)",
        [target(expr, name, instant=True, table=True) for name, expr in columns.items()],
        description="Per vendor, over the SLA window of label event time: labels per hour, p90 "
        "turnaround (turn to label), accuracy on golden-set turns, agreement with the judges and with "
        "the other annotators' consensus, and how many SLAs it breaches. Per-annotator rows are in "
        "report.json (vendors).",
        links=[VENDOR_SLA, LABELS_STALE],
        w=24,
        h=6,
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename}},
        ],
    )
    scorecards["fieldConfig"]["overrides"] = [  # seconds and ratios beside counts: a unit per column
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
        for name, unit in units.items()
    ]
    return [
        scorecards,
        stat(
            "Vendor SLA breaches",
            target(breached, "{{vendor_id}} {{sla}}"),
            description="1 while a vendor breaches an SLA of CONVOWATCH_VENDOR_SLA (a vendor_sla escalation "
            "is open), 0 within target or not judged yet (too few labels). As the backstop alert reads it: "
            "the last value any worker exported within 6 h (a rebalance moves the scorecard), a worker cut "
            "off from the broker left out.",
            links=[VENDOR_SLA],
            thresholds=[("green", None), ("red", 1)],
            w=18,
        ),
        stat(
            "Labels later than the SLA window",
            target("sum(increase(convowatch_vendor_labels_too_late_total[$__range]))", "labels"),
            description="Vendor scorecard items (labels, consensus comparisons) over the time range whose "
            "label event time was already older than the SLA window when they came: in no scorecard. Many "
            "of them: labels arrive later than the window is long (CONVOWATCH_VENDOR_SLA).",
            links=[VENDOR_SLA, LABELS_STALE],
            w=6,
        ),
        ts(
            "Vendor turnaround (SLA window)",
            target(
                "max by (vendor_id, quantile) (convowatch_vendor_turnaround_seconds{" + vendor + "})",
                "{{vendor_id}} q{{quantile}}",
            ),
            description="Median and 90th percentile of the delay from a turn to its human label, per vendor.",
            links=[VENDOR_SLA, LABELS_STALE],
            unit="s",
            min_value=0,
        ),
        ts(
            "Vendor gold accuracy and agreement (SLA window)",
            target(per_vendor("convowatch_vendor_window_gold_accuracy_ratio"), "{{vendor_id}} gold"),
            target(per_vendor("convowatch_vendor_window_judge_agreement_ratio"), "{{vendor_id}} judge"),
            target(
                per_vendor("convowatch_vendor_window_consensus_agreement_ratio"), "{{vendor_id}} consensus"
            ),
            description="Accuracy on golden-set turns (CONVOWATCH_GOLDEN), agreement with the judges' labels "
            "and with the other annotators' consensus, per vendor.",
            links=[VENDOR_SLA],
            unit="percentunit",
            max_value=1,
        ),
    ]
