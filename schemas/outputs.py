"""Records convowatch publishes: defects, escalations, review requests and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import MIN_INCLUSION_PROBABILITY, SCHEMA_VERSION


class OutputModel(BaseModel):
    """Base of every output. Closed (unknown fields refused), so that a test validating what the worker
    publishes fails on a field the model lacks; exported open (:mod:`schemas.export`): consumers ignore
    fields added within a version."""

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
    raters_cut: int = 0
    """Judges and annotators left out of ``verdicts`` and ``labels``: a defect carries its own rater's
    labels and at most 10 judges' and 10 annotators' in all (absent when none was left out)."""


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


class Divergence(OutputModel):
    """A judge and a human disagreeing on a high-risk dimension of a turn, for labelling-guide review
    (topic ``convowatch.divergences``, key ``divergence_id``: ``turn_id/judge_id/dimension``, each part's
    ``%`` and ``/`` escaped)."""

    schema_version: int = SCHEMA_VERSION
    divergence_id: str
    turn_id: str
    dimension: str
    judge_id: str
    judge_label: str
    human_label: str
    """The first human label on the dimension, the one the judge's is compared with."""
    human_labels: dict[str, dict[str, str | None]]
    """Every annotator's label on the dimension so far: ``{annotator_id: {vendor_id, label}}``."""
    segment: Segment
    ts: datetime


#: Why a turn is sent to human review: its largest priority term (see ``detectors.review_sampler``).
REVIEW_REASONS = ("high_risk", "disagreement", "uncertain", "segment_coverage", "random")


class ReviewRequest(OutputModel):
    """A judged turn sent to human review (topic ``convowatch.review.requests``). Key: ``request_id``.

    One per sampled turn, ``request_id`` stable (``review/<turn_id>``): a replay re-publishes the same
    request. The labelling tool copies ``inclusion_probability`` into the HumanLabel it produces, so the
    calibrated defect rate can weight the label by ``1 / inclusion_probability``. ``priority`` orders the
    queue: 1 for high-risk turns, otherwise the sampler's priority over its maximum.
    """

    schema_version: int = SCHEMA_VERSION
    request_id: str
    turn_id: str
    reason: Literal["high_risk", "disagreement", "uncertain", "segment_coverage", "random"]
    priority: Annotated[float, Field(gt=0.0, le=1.0)]
    inclusion_probability: Annotated[float, Field(ge=MIN_INCLUSION_PROBABILITY, le=1.0)]
    queue: str
    segment: Segment
    judge_ids: list[str]
    ts: datetime
    """The turn's event time."""
    requested_at: datetime
    """Wall-clock time the request was made (a replay publishes a new one under the same id)."""
    evidence: dict[str, object] = {}
    """What raised the priority: risk topics, high-risk fails, disagreements, the judge's least sure
    confidence."""


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
    #: the Kafka record's key (None: none, or not read from Kafka; its first 10,000 bytes), its size, and
    #: whether the record's value was null
    original_key_base64: str | None = None
    original_key_size: int | None = None
    tombstone: bool = False
