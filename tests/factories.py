"""Builders of valid, JSON-ready input events for tests: override any field with keyword arguments."""

from __future__ import annotations

import json
from typing import Any

DEFAULT_TS = "2026-11-02T08:00:00Z"


def chat_turn(**overrides: Any) -> dict[str, Any]:
    """A valid ChatTurn record."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "turn_id": "turn-0001",
        "conversation_id": "conv-0001",
        "ts": DEFAULT_TS,
        "journey": "billing",
        "channel": "chat",
        "model_version": "assistant-v1",
        "modality": "text",
        "intent": "check_balance",
        "intent_confidence": 0.9,
        "user_text": "What is my balance?",
        "response_text": "Your balance is 12.50.",
        "latency_ms": 420.0,
        "guardrail_flags": [],
        "risk_topics": [],
        "outcome": {"contained": True, "task_completed": True},
        "attributes": {"locale": "en-GB"},
    }
    record.update(overrides)
    return record


def judge_verdict(**overrides: Any) -> dict[str, Any]:
    """A valid JudgeVerdict record (one passing relevance verdict unless overridden)."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "turn_id": "turn-0001",
        "ts": "2026-11-02T08:00:30Z",
        "judge_id": "judge-a",
        "judge_version": "v1",
        "verdicts": [{"dimension": "relevance", "label": "pass", "score": 0.9, "confidence": 0.8}],
    }
    record.update(overrides)
    return record


def human_label(**overrides: Any) -> dict[str, Any]:
    """A valid HumanLabel record (one passing relevance verdict unless overridden)."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "turn_id": "turn-0001",
        "ts": "2026-11-02T09:00:00Z",
        "annotator_id": "ann-1",
        "vendor_id": "vendor-x",
        "is_gold": False,
        "labeling_seconds": 35.0,
        "verdicts": [{"dimension": "relevance", "label": "pass"}],
    }
    record.update(overrides)
    return record


def signal(**overrides: Any) -> dict[str, Any]:
    """A valid ConversationSignal record (a thumbs-up unless overridden)."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "sig-0001",
        "conversation_id": "conv-0001",
        "ts": "2026-11-02T08:05:00Z",
        "kind": "thumbs_up",
    }
    record.update(overrides)
    return record


def verdict(dimension: str, label: str, **extra: Any) -> dict[str, Any]:
    """One entry of a ``verdicts`` list."""
    return {"dimension": dimension, "label": label, **extra}


def raw(d: dict[str, Any] | list[Any]) -> bytes:
    """The record as the UTF-8 JSON bytes a producer would send."""
    return json.dumps(d, allow_nan=False).encode("utf-8")
