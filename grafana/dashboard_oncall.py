"""The on-call dashboard: what is failing now, high-risk escalations, and business outcomes."""

from __future__ import annotations

from typing import Any

from panels import (
    DATASOURCE,
    DEAD_LETTERS,
    DEFECT_SPIKE,
    HIGH_RISK,
    JOURNEY,
    JUDGE_DRIFT,
    JUDGE_LOW,
    LABELS_STALE,
    MODEL_VERSION,
    OUTCOMES_RUNBOOK,
    SEGMENT,
    STALE,
    VERSION_REGRESSION,
    WORKER_DOWN,
    category_runbooks,
    critical_categories,
    dashboard,
    rate_sum,
    stat,
    target,
    ts,
)


def business_outcomes() -> list[dict[str, Any]]:
    """The business-outcome panels of the on-call overview (semantics: streams/views/outcomes.py)."""

    def ratio(numerator: str, denominator: str, only: str = "") -> str:
        """Increase of ``numerator`` over that of ``denominator`` in range (absent rather than 0/0)."""
        num = f"sum(increase({numerator}{{{only}{SEGMENT}}}[$__range]))"
        return f"{num} / (sum(increase({denominator}{{{SEGMENT}}}[$__range])) > 0)"

    conversations = "convowatch_conversations_total"
    percent = {"unit": "percentunit", "min_value": 0, "max_value": 1, "links": [OUTCOMES_RUNBOOK]}
    stats = [
        (
            "Containment",
            ratio("convowatch_conversations_contained_total", "convowatch_conversations_closed_total"),
            "Share of conversations closed in range (idle for CONVOWATCH_CONVERSATION_IDLE_SECONDS) that "
            "never reached a human agent.",
            [("red", None), ("orange", 0.6), ("green", 0.75)],
        ),
        (
            "Escalation to agents",
            ratio("convowatch_conversations_escalated_total", conversations),
            "Conversations handed to a human agent (turn outcome or agent_handoff signal), per conversation "
            "started in range.",
            [("green", None), ("orange", 0.2), ("red", 0.3)],
        ),
        (
            "Task completion",
            ratio("convowatch_conversations_task_completed_total", conversations),
            "Conversations with a turn that completed the user's task, per conversation started in range.",
            [("red", None), ("orange", 0.6), ("green", 0.75)],
        ),
        (
            "Thumbs-up share",
            ratio("convowatch_user_feedback_total", "convowatch_user_feedback_total", 'feedback="up", '),
            "Share of user feedback (turn outcomes and thumbs signals) that is a thumbs up.",
            [("red", None), ("orange", 0.6), ("green", 0.8)],
        ),
    ]
    panels = [
        stat(title, target(expr, "ratio"), description=text, thresholds=steps, **percent)
        for title, expr, text, steps in stats
    ]
    panels += [
        stat(
            "First-contact resolution",
            target(
                ratio(
                    "convowatch_conversations_resolved_first_contact_total",
                    "convowatch_conversations_settled_total",
                ),
                "ratio",
            ),
            description="Conversations with no recontact (signal, or a new turn after the close) within "
            "CONVOWATCH_RECONTACT_WINDOW_SECONDS, of those whose window ended in range.",
            thresholds=[("red", None), ("orange", 0.7), ("green", 0.85)],
            w=8,
            **percent,
        ),
        stat(
            "Average handle time",
            target(
                ratio("convowatch_handle_time_seconds_sum", "convowatch_handle_time_seconds_count"), "avg"
            ),
            description="Average handling time reported by handle_time signals in range.",
            links=[OUTCOMES_RUNBOOK],
            unit="s",
            w=8,
        ),
        stat(
            "Contacts per order",
            target(ratio(conversations, "convowatch_orders_total"), "contacts/order"),
            description="Conversations started per order placed (purchase signals) in range; lower is "
            "better.",
            links=[OUTCOMES_RUNBOOK],
            w=8,
        ),
        ts(
            "Escalation and task completion by model version",
            target(
                f"sum by (model_version) (rate(convowatch_conversations_escalated_total{{{SEGMENT}}}[1h])) / "
                f"(sum by (model_version) (rate({conversations}{{{SEGMENT}}}[1h])) > 0)",
                "escalated {{model_version}}",
            ),
            target(
                "sum by (model_version) "
                f"(rate(convowatch_conversations_task_completed_total{{{SEGMENT}}}[1h])) / "
                f"(sum by (model_version) (rate({conversations}{{{SEGMENT}}}[1h])) > 0)",
                "task completed {{model_version}}",
            ),
            description="Business outcomes of each model version over the last hour, to read next to its "
            "judge-detected defects: a version that fails more should escalate more and complete less.",
            links=[OUTCOMES_RUNBOOK, DEFECT_SPIKE],
            unit="percentunit",
            min_value=0,
            max_value=1,
        ),
        ts(
            "Outcome lift of the newer model version (always-valid interval)",
            target(
                "max by (journey, outcome, control, treatment) "
                '(convowatch_version_outcome_lift{journey=~"$journey", treatment=~"$model_version"})',
                "{{journey}} {{outcome}}: {{treatment}} - {{control}}",
            ),
            target(
                "max by (journey, outcome, control, treatment, bound) "
                '(convowatch_version_outcome_lift_bound{journey=~"$journey", treatment=~"$model_version"})',
                "{{bound}} {{journey}} {{outcome}}: {{treatment}} - {{control}}",
            ),
            description="When two model versions serve a journey at once: the newer one's outcome rate minus "
            "the older one's, per turn outcome, with the always-valid interval (safe to watch continuously). "
            "Escalated and thumbs-down: above 0 is worse; contained and task completed: below 0 is worse. "
            "A significant worsening raises version_regression (convowatch_version_outcome_decision -1).",
            links=[VERSION_REGRESSION, OUTCOMES_RUNBOOK],
            unit="percentunit",
        ),
        ts(
            "Containment and first-contact resolution by journey",
            target('convowatch:containment:ratio_rate1h{journey=~"$journey"}', "contained {{journey}}"),
            target(
                'convowatch:first_contact_resolution:ratio_rate1h{journey=~"$journey"}',
                "resolved at first contact {{journey}}",
            ),
            description="Recorded hourly ratios (prometheus/rules/convowatch.yml). Both are decided late: "
            "containment when a conversation closes, first-contact resolution a recontact window later.",
            links=[OUTCOMES_RUNBOOK],
            unit="percentunit",
            min_value=0,
            max_value=1,
        ),
    ]
    return panels


def oncall() -> dict[str, Any]:
    crit = critical_categories()
    return dashboard(
        "convowatch-oncall",
        "convowatch / On-call overview",
        "Is anything on fire: escalations, defect rates, dead letters, workers and data freshness; and "
        "what it does to the business: containment, escalation to agents, task completion, feedback, "
        "first-contact resolution, handle time and contacts per order.",
        [
            stat(
                "High-risk escalations in range",
                target(
                    'sum by (severity) (increase(convowatch_escalations_total{kind="high_risk_failure"}'
                    "[$__range]))",
                    "{{severity}}",
                ),
                description="High-risk-failure escalations raised in the selected time range, by severity, "
                "those human review overturned since included (the Escalations per minute panel shows them). "
                "Each is on the convowatch.escalations topic with its turn ids and evidence.",
                links=[HIGH_RISK, *category_runbooks({"critical"})],
                thresholds=[("green", None), ("red", 1)],
                no_value="0",
            ),
            stat(
                "Workers up",
                target('sum(up{job="convowatch"})', "up"),
                target('count(up{job="convowatch"})', "configured"),
                description="convowatch workers Prometheus can scrape, of those configured.",
                links=[WORKER_DOWN],
            ),
            stat(
                "Dead-letter ratio (5m)",
                target("convowatch:deadletter:ratio5m", "{{stream}}"),
                description="Share of each stream's records rejected to convowatch.deadletter over 5 "
                "minutes. The ConvowatchDeadLetterRatioHigh alert fires above 1%.",
                links=[DEAD_LETTERS],
                unit="percentunit",
                thresholds=[("green", None), ("orange", 0.01)],
            ),
            stat(
                "Newest event age",
                target("convowatch:last_event_age:seconds", "{{stream}}"),
                description="Wall-clock age of the newest event (by event time) per stream. Chat turns and "
                "verdicts older than 15 min fire ConvowatchEventsStale; human labels come in batches.",
                links=[STALE, LABELS_STALE],
                unit="s",
                thresholds=[("green", None), ("orange", 900)],
            ),
            ts(
                "Escalations per minute by kind and severity",
                target(
                    "sum by (kind, severity) (rate(convowatch_escalations_total[$__rate_interval])) * 60",
                    "{{kind}} {{severity}}",
                ),
                target(
                    "sum by (kind, severity) "
                    "(rate(convowatch_escalations_overturned_total[$__rate_interval])) * 60",
                    "{{kind}} {{severity}} overturned",
                ),
                description="New escalations (first revisions that fire) per minute, and those human review "
                "overturned (high-risk failures only judges failed, every human label a pass), by the "
                "severity they fired with. ConvowatchHighRiskEscalations pages for the difference.",
                links=[HIGH_RISK, JUDGE_DRIFT, DEFECT_SPIKE],
            ),
            ts(
                "Judge-detected defects per minute by category",
                target(
                    f'sum by (category) (convowatch:defects:rate5m{{source="judge", {SEGMENT}}}) * 60',
                    "{{category}}",
                ),
                description="Defects found by the LLM judge (the live signal), per minute, 5-minute rate. "
                "Human-confirmed defects are on the labelling dashboard.",
                links=category_runbooks(),
            ),
            ts(
                "Critical-category defects per minute by segment",
                target(
                    rate_sum(
                        "convowatch_defects_total",
                        f'category=~"{crit}", {SEGMENT}',
                        "category, journey, model_version",
                        per_minute=True,
                    ),
                    "{{category}} {{journey}} {{model_version}}",
                ),
                description="Defects in the categories the taxonomy rates critical "
                f"({crit.replace('|', ', ')}), judge and human, by journey and model version.",
                links=[HIGH_RISK, DEFECT_SPIKE, *category_runbooks({"critical"})],
            ),
            ts(
                "Judge-detected defects per minute by model version",
                target(
                    "sum by (journey, model_version) "
                    f'(convowatch:defects:rate5m{{source="judge", {SEGMENT}}}) * 60',
                    "{{journey}} {{model_version}}",
                ),
                description="Compare model versions of a journey during a rollout. These are absolute "
                "counts: a version's share of the traffic changes them too.",
                links=[DEFECT_SPIKE],
            ),
            ts(
                "Judge defects per chat turn by category",
                target("convowatch:judge_defects_per_turn:ratio5m", "{{category}}"),
                description="Judge defects per valid chat turn, all journeys (turn counts carry no "
                "segment), summed over judges and failing dimensions: with two judges a turn may count "
                "twice, so this is not a share of turns.",
                links=category_runbooks(),
                unit="short",
                min_value=0,
            ),
            ts(
                "Worst judge kappa (dimensions with >= 50 pairs)",
                target("convowatch:judge_cohen_kappa:min", "{{judge_id}}"),
                description="Lowest Cohen's kappa of each judge against human labels, over dimensions with "
                "at least 50 pairs (a kappa below 0.4 with at least 10 disagreements behind it). Below 0.4 "
                "the judge's defects in that dimension are unreliable.",
                links=[JUDGE_LOW, JUDGE_DRIFT],
                thresholds=[("red", None), ("green", 0.4)],
                threshold_line=True,
                min_value=-1,
                max_value=1,
            ),
            *business_outcomes(),
        ],
        [JOURNEY, MODEL_VERSION],
        annotations=[
            {
                "name": "High-risk escalations",
                "datasource": DATASOURCE,
                "enable": True,
                "hide": False,
                "iconColor": "red",
                "expr": 'sum(increase(convowatch_escalations_total{kind="high_risk_failure"}[1m])) > 0',
                "step": "60s",
                "titleFormat": "High-risk escalations",
                "textFormat": "{{value}} new in the last minute",
                "useValueForTime": False,
            }
        ],
    )
