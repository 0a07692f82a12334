"""Records convowatch publishes: defects, escalations and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.common import SCHEMA_VERSION


class OutputModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Segment(OutputModel):
    """Where a turn belongs. Unknown fields (turn not seen yet) are ``None``."""

    journey: str | None = None
    intent: str | None = None
    model_version: str | None = None
    channel: str | None = None
    modality: str | None = None


class Defect(OutputModel):
    """One failing turn on one dimension, from one source (topic ``convowatch.defects``).

    ``defect_id`` is stable: the same failure re-delivered has the same id, so consumers dedup on it.
    """

    schema_version: int = SCHEMA_VERSION
    defect_id: str
    turn_id: str
    dimension: str
    category: str
    label: str
    source: Literal["judge", "human"]
    judge_id: str | None = None
    vendor_id: str | None = None
    annotator_id: str | None = None
    severity: str
    segment: Segment
    ts: datetime
    turn: dict[str, Any] | None = None
    """The turn's context (conversation, latency, guardrail flags, outcome; chat text only if configured)."""
    verdicts: dict[str, dict[str, str]] = {}
    """Every judge's labels on the turn so far: ``{judge_id: {dimension: label}}``."""
    labels: dict[str, dict[str, Any]] = {}
    """Every annotator's labels so far: ``{annotator_id: {vendor_id, is_gold, labels}}``."""


class Escalation(OutputModel):
    """Something a person must look at (topic ``convowatch.escalations``).

    ``escalation_id`` is stable for the thing escalated: an update re-publishes the same id with a higher
    ``revision``; ``status`` turns to ``resolved`` when the condition clears.
    """

    schema_version: int = SCHEMA_VERSION
    escalation_id: str
    kind: str
    severity: str
    status: Literal["firing", "resolved"] = "firing"
    revision: int = 1
    dimension: str | None = None
    segment: Segment
    event_time: datetime
    turn_ids: list[str]
    summary: str
    evidence: dict[str, object] = {}


class DeadLetter(OutputModel):
    """A record that could not be processed: reason and original bytes (topic ``convowatch.deadletter``)."""

    schema_version: int = SCHEMA_VERSION
    reason: str
    detail: str
    stream: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    received_at: datetime
    original_base64: str
    original_size: int
