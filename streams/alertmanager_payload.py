"""Escalation -> Alertmanager API v2 ``postableAlert``: labels, annotations and times of one alert.

Pure functions, no I/O: :func:`alert_from_escalation` maps an escalation (the value published on
``convowatch.escalations``) to the alert :class:`streams.alertmanager.AlertmanagerSink` sends. Labels identify
and route the alert and hold no chat text; the ``evidence`` annotation is compact JSON of at most 4 KB.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: Segment fields copied into labels, when known. All are short codes from the event contract.
SEGMENT_LABELS = ("journey", "model_version", "channel", "modality", "intent")
MAX_LABEL_VALUE = 256  # the longest identifier the event contract admits
MAX_SUMMARY = 1024
MAX_EVIDENCE_BYTES = 4096
MAX_EVIDENCE_TURN_IDS = 20
#: Evidence fields copied into labels, by escalation kind; all bounded. A defect spike's category and source
#: (a judge id, or humans) tell spikes of one segment apart and let a finer slice's spike mute its journey's;
#: a vendor SLA breach's vendor and SLA tell breaches apart. Both let the alert mute the Prometheus backstop
#: of the same spike or breach (prometheus/alertmanager.yml, inhibit rules).
EVIDENCE_LABELS = {"defect_spike": ("category", "source"), "vendor_sla": ("vendor_id", "sla")}
#: Fields that may hold chat text (or a judge's free-text rationale quoting it): never sent to Alertmanager.
CHAT_TEXT_KEYS = frozenset({"user_text", "response_text", "rationale", "text"})


def alertname(kind: str) -> str:
    """The alert name of an escalation kind.

    >>> alertname("high_risk_failure"), alertname("defect_spike"), alertname("judge_drift")
    ('ConvowatchHighRiskFailure', 'ConvowatchDefectSpike', 'ConvowatchJudgeDrift')
    """
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", kind) if p]
    return "Convowatch" + ("".join(p[0].upper() + p[1:] for p in parts) or "Escalation")


def _label_value(value: object) -> str:
    text = str(value).strip()[:MAX_LABEL_VALUE]
    return text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates would be invalid UTF-8


def _parse_time(value: object) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        ts = datetime.fromisoformat(value)
    else:
        raise ValueError(f"event_time must be an RFC 3339 string or datetime, not {type(value).__name__}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def rfc3339(ts: datetime) -> str:
    """``ts`` in UTC as RFC 3339 with milliseconds, e.g. ``2026-11-02T08:00:00.000Z``."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def _scrub(value: Any) -> Any:
    """``value`` without any :data:`CHAT_TEXT_KEYS` field, at any depth, and with NaN and infinities as
    null (JSON has neither: a receiver parsing the annotation would fail)."""
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items() if k not in CHAT_TEXT_KEYS}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def evidence_annotation(
    turn_ids: list[str], evidence: Mapping[str, Any], limit: int = MAX_EVIDENCE_BYTES
) -> str:
    """Compact JSON ``{"turn_ids": [...], "evidence": {...}}`` of at most ``limit`` bytes, still valid JSON.

    Chat text fields (:data:`CHAT_TEXT_KEYS`) are left out at any depth. At most 20 turn ids are kept
    (``turn_count`` then gives the total). When too long, turn ids beyond half the limit are dropped from the
    end, then the largest evidence fields are left out (named in ``evidence_truncated``), then more turn ids.
    """
    scrubbed = _scrub(evidence) if isinstance(evidence, Mapping) else {"value": _scrub(evidence)}
    doc: dict[str, Any] = {"turn_ids": list(turn_ids[:MAX_EVIDENCE_TURN_IDS]), "evidence": scrubbed}
    if len(turn_ids) > MAX_EVIDENCE_TURN_IDS:
        doc["turn_count"] = len(turn_ids)
    text = _dumps(doc)
    if _size(text) <= limit:
        return text
    while len(doc["turn_ids"]) > 1 and _size(_dumps(doc["turn_ids"])) > limit // 2:  # leave room
        doc["turn_ids"].pop()
        doc["turn_count"] = len(turn_ids)
    by_size = sorted(doc["evidence"], key=lambda k: (-_size(_dumps(doc["evidence"][k])), k))
    dropped: list[str] = []
    text = _dumps(doc)
    while _size(text) > limit and by_size:
        key = by_size.pop(0)
        del doc["evidence"][key]
        dropped.append(key)
        doc["evidence_truncated"] = sorted(dropped)
        text = _dumps(doc)
    while _size(text) > limit and doc["turn_ids"]:
        doc["turn_ids"].pop()
        doc["turn_count"] = len(turn_ids)
        text = _dumps(doc)
    if _size(text) <= limit:
        return text
    return _dumps({"evidence_truncated": True, "turn_count": len(turn_ids)})


def alert_from_escalation(
    escalation: Mapping[str, Any],
    generator_url: str | None,
    resolved_at: datetime | None = None,
    *,
    valid_until: datetime | None = None,
    now: datetime | None = None,
    latest_start: datetime | None = None,
) -> dict[str, Any]:
    """The Alertmanager API v2 ``postableAlert`` for an escalation (a ``convowatch.escalations`` value).

    Labels identify and route the alert; they hold no chat text and no free text, only ``alertname``
    (``Convowatch`` + the kind in CamelCase), ``kind``, ``severity``, ``dimension``, ``category`` and
    ``source`` (of a defect spike), ``vendor_id`` and ``sla`` (of a vendor SLA breach), ``team`` (the owning
    team the sink adds from the taxonomy), the known segment fields and ``escalation_id``. Annotations carry
    ``summary``, ``runbook_url`` and ``evidence`` (compact JSON of up to 20 turn ids and the escalation's
    evidence, at most 4 KB).

    ``startsAt`` is the escalation's event time, but no later than ``latest_start`` (default ``now``): an
    event time ahead of the clock must not make the alert end before it starts, which Alertmanager rejects.
    The alert is resolved (``endsAt`` = ``resolved_at``, or ``now`` when the escalation's status is
    ``resolved``) or firing: then ``endsAt`` is ``valid_until`` if given, else left out, and Alertmanager
    resolves the alert after its ``resolve_timeout`` unless it is re-sent first.
    Raises ``ValueError`` on an escalation without id, kind, severity or event time.
    """
    now = now or datetime.now(UTC)
    for field in ("escalation_id", "kind", "severity"):
        if not isinstance(escalation.get(field), str) or not escalation[field].strip():
            raise ValueError(f"escalation has no {field}")
    kind = escalation["kind"]
    labels: dict[str, str] = {
        "alertname": alertname(kind),
        "kind": _label_value(kind),
        "severity": _label_value(escalation["severity"]),
    }
    if escalation.get("dimension"):
        labels["dimension"] = _label_value(escalation["dimension"])
    evidence = escalation.get("evidence") or {}
    for name in EVIDENCE_LABELS.get(kind, ()):
        if isinstance(evidence.get(name), str):
            labels[name] = _label_value(evidence[name])
    if escalation.get("team"):
        labels["team"] = _label_value(escalation["team"])
    segment = escalation.get("segment") or {}
    for name in SEGMENT_LABELS:
        if segment.get(name) is not None:
            labels[name] = _label_value(segment[name])
    # Alertmanager identifies an alert by its label set and merges alerts whose label sets are equal: two
    # escalations in the same segment (two unsafe answers of one model) would collapse into one alert.
    # escalation_id keeps them apart; it is stable across revisions, so an update replaces the alert.
    labels["escalation_id"] = _label_value(escalation["escalation_id"])
    labels = {k: v for k, v in labels.items() if v}  # Alertmanager drops empty labels anyway

    annotations = {"summary": str(escalation.get("summary") or labels["alertname"])[:MAX_SUMMARY]}
    runbook = evidence.get("runbook_url")
    if isinstance(runbook, str) and runbook:
        annotations["runbook_url"] = runbook[:2048]
    annotations["evidence"] = evidence_annotation(
        [str(t) for t in escalation.get("turn_ids") or []], evidence
    )
    if escalation.get("revision") is not None:
        annotations["revision"] = str(escalation["revision"])
    annotations = {k: v.encode("utf-8", "replace").decode("utf-8") for k, v in annotations.items()}

    if "event_time" not in escalation:
        raise ValueError("escalation has no event_time")
    starts = min(_parse_time(escalation["event_time"]), latest_start or now)
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations, "startsAt": rfc3339(starts)}
    if resolved_at is None and escalation.get("status") == "resolved":
        resolved_at = now
    if resolved_at is not None:
        alert["endsAt"] = rfc3339(max(resolved_at, starts))
    elif valid_until is not None:
        alert["endsAt"] = rfc3339(max(valid_until, starts))
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def alert_labels(escalation: Mapping[str, Any]) -> dict[str, str]:
    """The labels of the alert of ``escalation`` (what identifies it to Alertmanager); raises ``ValueError``
    as :func:`alert_from_escalation` does."""
    labels: dict[str, str] = alert_from_escalation(escalation, None)["labels"]
    return labels
