"""The building blocks of convowatch's dashboards: panels, targets, variables, runbook links, and the frame
of a dashboard."""

from __future__ import annotations

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
# After a gauge's selector: leaves out a worker cut off from Kafka, whose gauges stay at their last values,
# while another worker of its job and role reaches it (as the rules do: prometheus/rules/convowatch.yml).
CONNECTED = "unless on (job, instance) convowatch:broker_connected:cut_off"


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
