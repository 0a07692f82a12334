"""ChatTurn: what the live model said, with its own signals (topic ``convowatch.chat.turns``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import EventModel, Identifier, ShortCode


class Outcome(BaseModel):
    """How the turn ended for the user. Every field is optional: not all channels report all of them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    contained: bool | None = None
    escalated_to_agent: bool | None = None
    task_completed: bool | None = None
    user_feedback: Literal["up", "down"] | None = None


class ChatTurn(EventModel):
    """One assistant turn. Key: ``turn_id``."""

    conversation_id: Identifier
    journey: ShortCode
    channel: Literal["chat", "voice"]
    model_version: ShortCode
    modality: Literal["text", "image", "audio", "video", "3d"] = "text"
    intent: ShortCode | None = None
    intent_confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    user_text: str = ""
    response_text: str = ""
    latency_ms: Annotated[float, Field(ge=0.0, le=3_600_000.0)] | None = None
    guardrail_flags: Annotated[list[ShortCode], Field(max_length=64)] = []
    risk_topics: Annotated[list[ShortCode], Field(max_length=64)] = []
    outcome: Outcome = Outcome()
    attributes: Annotated[dict[ShortCode, Annotated[str, Field(max_length=256)]], Field(max_length=64)] = {}
