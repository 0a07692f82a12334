"""Builds convowatch's Grafana dashboards (grafana/dashboards/*.json) from the descriptions below.

    .venv/bin/python grafana/build.py           # rewrite grafana/dashboards/*.json
    .venv/bin/python grafana/build.py --check   # exit 1 when a committed file differs from what this builds

The committed JSON is what Grafana provisions; edit this file, run it, commit both. Every panel queries
the provisioned datasource (uid ``convowatch-prometheus``) and links to the runbooks it relates to;
category runbooks come from ``streams/taxonomy.yaml``. Only metrics convowatch exports today are queried
(``tests/integration/test_dashboards.py`` runs every query against a real Prometheus).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
TAXONOMY = HERE.parent / "streams" / "taxonomy.yaml"

SCHEMA_VERSION = 39  # Grafana 11 migrates older schemas on load; 39 is the oldest 11.x writes
DATASOURCE = {"type": "prometheus", "uid": "convowatch-prometheus"}
RUNBOOKS = "https://runbooks.example.com/convowatch"
TAGS = ["convowatch"]
GRID_WIDTH = 24

# Selector fragments filled from template variables (multi-value: Grafana expands them to a regex).
SEGMENT = 'journey=~"$journey", model_version=~"$model_version"'


# ---- runbooks -------------------------------------------------------------------------------------------


def alert_runbook(slug: str, title: str) -> dict[str, Any]:
    """A panel link to the runbook of one alert in prometheus/rules/convowatch.yml."""
    return link(f"Runbook: {title}", f"{RUNBOOKS}/alerts/{slug}")


def link(title: str, url: str) -> dict[str, Any]:
    return {"title": title, "url": url, "targetBlank": True}


def category_runbooks(severities: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Links to the taxonomy's runbooks, one per dimension (optionally only those of some severities)."""
    taxonomy = yaml.safe_load(TAXONOMY.read_text())["dimensions"]
    links = []
    for dimension, entry in taxonomy.items():
        if severities is not None and entry.get("severity") not in severities:
            continue
        category = entry["category"]
        name = category if category == dimension else f"{category} ({dimension})"
        links.append(link(f"Runbook: {name}", entry["runbook_url"]))
    return links


def critical_categories() -> str:
    """Regex of the categories whose taxonomy severity is critical (unsafe, biased, privacy by default)."""
    taxonomy = yaml.safe_load(TAXONOMY.read_text())["dimensions"]
    return "|".join(sorted({e["category"] for e in taxonomy.values() if e.get("severity") == "critical"}))


RUNBOOK_INDEX = link("convowatch runbooks", f"{RUNBOOKS}/")
HIGH_RISK = alert_runbook("high-risk-escalations", "high-risk escalations")
DEFECT_SPIKE = alert_runbook("defect-spike", "defect spike")
JUDGE_LOW = alert_runbook("judge-agreement-low", "judge agreement low")
JUDGE_DRIFT = alert_runbook("judge-drift", "judge drift")
DEAD_LETTERS = alert_runbook("dead-letter-ratio-high", "dead letters")
WORKER_DOWN = alert_runbook("worker-down", "worker down")
CONSUMER_LAG = alert_runbook("consumer-lag-high", "consumer lag")
STALE = alert_runbook("events-stale", "stale events")
LABELS_STALE = alert_runbook("human-labels-stale", "human labels stale")
VENDOR_SLA = alert_runbook("vendor-sla", "vendor SLA breached")


# ---- panels ---------------------------------------------------------------------------------------------


def rate_sum(metric: str, selector: str = "", by: str = "", per_minute: bool = False) -> str:
    """``sum [by (by)] (rate(metric{selector}[$__rate_interval]))``, optionally per minute."""
    grouping = f"sum by ({by}) " if by else "sum "
    expr = f"{grouping}(rate({metric}{{{selector}}}[$__rate_interval]))"
    return f"{expr} * 60" if per_minute else expr


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": "table" if table else "time_series",
        "refId": "",  # filled in by panel()
    }


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    description: str,
    links: list[dict[str, Any]],
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    min_value: float | None = None,
    max_value: float | None = None,
    thresholds: list[tuple[str, float | None]] | None = None,
    threshold_line: bool = False,
    no_value: str | None = None,
    options: dict[str, Any] | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One panel; ``id`` and ``gridPos`` position are assigned by :func:`dashboard`."""
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "palette-classic" if kind == "timeseries" else "thresholds"},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])],
        },
    }
    if min_value is not None:
        defaults["min"] = min_value
    if max_value is not None:
        defaults["max"] = max_value
    if no_value is not None:
        defaults["noValue"] = no_value
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line" if threshold_line else "off"},
        }
    return {
        "id": 0,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or _default_options(kind),
        "targets": targets,
        "links": links,
        **({"transformations": transformations} if transformations else {}),
    }


def _default_options(kind: str) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": reduce,
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    if kind == "bargauge":
        return {
            "reduceOptions": reduce,
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    raise ValueError(f"unknown panel type {kind}")


def ts(title: str, *targets: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return panel("timeseries", title, list(targets), **kw)


def stat(title: str, *targets: dict[str, Any], **kw: Any) -> dict[str, Any]:
    kw.setdefault("w", 6)
    kw.setdefault("h", 4)
    return panel("stat", title, [{**t, "range": False, "instant": True} for t in targets], **kw)


# ---- template variables ---------------------------------------------------------------------------------


def variable(name: str, label: str, metric: str, label_name: str) -> dict[str, Any]:
    """A multi-value query variable with "All" (= ``.*``) over ``label_values(metric, label_name)``."""
    query = f"label_values({metric}, {label_name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,  # on time range change
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
    }


JOURNEY = variable("journey", "Journey", "convowatch_defects_total", "journey")
MODEL_VERSION = variable(
    "model_version", "Model version", 'convowatch_defects_total{journey=~"$journey"}', "model_version"
)
JUDGE = variable("judge", "Judge", "convowatch_judge_agreement_pairs", "judge_id")
DIMENSION = variable(
    "dimension", "Dimension", 'convowatch_judge_agreement_pairs{judge_id=~"$judge"}', "dimension"
)
CATEGORY = variable("category", "Category", "convowatch_defects_total", "category")
SOURCE = variable("source", "Source", "convowatch_defects_total", "source")
INSTANCE = variable("instance", "Worker", 'up{job="convowatch"}', "instance")
VENDOR = variable("vendor", "Vendor", "convowatch_vendor_labels_per_hour", "vendor_id")


# ---- dashboards -----------------------------------------------------------------------------------------


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    annotations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Number the panels and flow them left to right, top to bottom, on Grafana's 24-column grid."""
    x = y = row_height = 0
    for number, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        p["id"] = number
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_height = max(row_height, h)
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "timezone": "utc",
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [
            {
                "type": "dashboards",
                "tags": TAGS,
                "asDropdown": True,
                "title": "convowatch",
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            },
            {**RUNBOOK_INDEX, "type": "link", "icon": "doc", "asDropdown": False, "tags": []},
        ],
        "annotations": {"list": [builtin, *(annotations or [])]},
        "templating": {"list": variables},
        "panels": panels,
    }


OUTCOMES_RUNBOOK = link("Runbook: business outcomes", f"{RUNBOOKS}/business-outcomes")
VERSION_REGRESSION = link("Runbook: version regression", f"{RUNBOOKS}/version-regression")


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
                description="High-risk-failure escalations raised in the selected time range, by severity. "
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
                description="New escalations (first revisions) per minute.",
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
                "at least 50 pairs. Below 0.4 the judge's defects in that dimension are unreliable.",
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


def judges() -> dict[str, Any]:
    sel = 'judge_id=~"$judge", dimension=~"$dimension"'
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
                description="Lowest Cohen's kappa over the judge's dimensions with at least 50 pairs.",
                links=[JUDGE_LOW],
                thresholds=[("red", None), ("orange", 0.4), ("green", 0.6)],
                w=8,
            ),
            stat(
                "Judge/human pairs",
                target(
                    f"max by (judge_id) (convowatch_judge_agreement_pairs{{{sel}}})",
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
                    f"max by (judge_id, dimension) (convowatch_judge_agreement_ratio{{{sel}}})",
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
                    f"max by (judge_id, dimension) (convowatch_judge_cohen_kappa{{{sel}}})",
                    "{{judge_id}} {{dimension}}",
                ),
                description="Chance-corrected agreement (cumulative). Gaps mean undefined (only one class "
                "seen). ConvowatchJudgeAgreementLow fires below 0.4 with at least 50 pairs.",
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
                        f"max by (judge_id, dimension) (convowatch_judge_cohen_kappa{{{sel}}})",
                        instant=True,
                        table=True,
                    ),
                    target(
                        f"max by (judge_id, dimension) (convowatch_judge_agreement_ratio{{{sel}}})",
                        instant=True,
                        table=True,
                    ),
                    target(
                        f"max by (judge_id, dimension) (convowatch_judge_agreement_pairs{{{sel}}})",
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


def defects() -> dict[str, Any]:
    sel = f'{SEGMENT}, category=~"$category", source=~"$source"'
    rate = f"rate(convowatch_defects_total{{{sel}}}[$__rate_interval])"
    in_range = f"increase(convowatch_defects_total{{{sel}}}[$__range])"
    runbooks = [DEFECT_SPIKE, *category_runbooks()]
    return dashboard(
        "convowatch-defects",
        "convowatch / Defects by category and segment",
        "Where defects come from: category, dimension, journey, model version, channel and modality.",
        [
            ts(
                "Defects per minute by category",
                target(f"sum by (category) ({rate}) * 60", "{{category}}"),
                description="Defects per minute by taxonomy category (judge and human unless filtered).",
                links=runbooks,
            ),
            ts(
                "Defects per minute by dimension",
                target(f"sum by (dimension) ({rate}) * 60", "{{dimension}}"),
                description="The quality dimension that failed.",
                links=runbooks,
            ),
            ts(
                "Defects per minute by journey and model version",
                target(f"sum by (journey, model_version) ({rate}) * 60", "{{journey}} {{model_version}}"),
                description="Rollout comparison. Absolute counts: a growing traffic share raises them too.",
                links=runbooks,
            ),
            ts(
                "Defects per minute by channel and modality",
                target(f"sum by (channel, modality) ({rate}) * 60", "{{channel}} {{modality}}"),
                description="Voice/audio against chat/text.",
                links=runbooks,
            ),
            panel(
                "bargauge",
                "Defects in range by category and source",
                [target(f"sum by (category, source) ({in_range})", "{{category}} {{source}}", instant=True)],
                description="Defects in the selected time range.",
                links=runbooks,
            ),
            panel(
                "table",
                "Defects in range by segment",
                [
                    target(
                        f"sum by (journey, model_version, channel, modality, category) ({in_range})",
                        instant=True,
                        table=True,
                    )
                ],
                description="Every segment with defects in the selected time range; sort by a column.",
                links=runbooks,
                transformations=[
                    {
                        "id": "organize",
                        "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "defects"}},
                    }
                ],
            ),
        ],
        [JOURNEY, MODEL_VERSION, CATEGORY, SOURCE],
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
                target("max by (topic, partition) (convowatch_consumer_lag)", "{{topic}}[{{partition}}]"),
                description="The partition a stuck or slow worker owns stands out here.",
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

    breached = f"max by (vendor_id, sla) (convowatch_vendor_sla_breached{{{vendor}}})"
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
            "is open), 0 within target or not judged yet (too few labels).",
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


DASHBOARDS = {
    "convowatch-oncall.json": oncall,
    "convowatch-judges.json": judges,
    "convowatch-defects.json": defects,
    "convowatch-pipeline.json": pipeline,
    "convowatch-labelling.json": labelling,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path.relative_to(HERE.parent))
    if stale:
        print(f"out of date: {', '.join(stale)}; run .venv/bin/python grafana/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
