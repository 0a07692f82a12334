"""Review requests reach ``convowatch.review.requests`` on a real broker, one per sampled turn."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas import ReviewRequest
from tests.support.broker import KafkaBroker
from tests.support.kafka_io import read_topic
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, produce_jsonl

pytestmark = pytest.mark.kafka


def turn(turn_id: str, second: int, **extra: object) -> dict[str, object]:
    return {
        "turn_id": turn_id,
        "conversation_id": f"c-{turn_id}",
        "ts": f"2026-11-02T09:{second // 60:02d}:{second % 60:02d}Z",
        "journey": "driver_support",
        "channel": "chat",
        "model_version": "driver-v7",
        "intent": "payout",
        **extra,
    }


def verdict(turn_id: str, second: int, **labels: str) -> dict[str, object]:
    return {
        "turn_id": turn_id,
        "ts": f"2026-11-02T09:{second // 60:02d}:{second % 60:02d}Z",
        "judge_id": "judge-gpt",
        "judge_version": "v1",
        "verdicts": [{"dimension": d, "label": v, "confidence": 0.98} for d, v in labels.items()],
    }


def test_high_risk_turns_are_requested_for_review(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[[str, dict[str, str]], WorkerProcess],
    tmp_path: Path,
) -> None:
    prefix = unique_name("cw") + "."
    env = {
        "CONVOWATCH_TOPIC_PREFIX": prefix,
        "CONVOWATCH_APP_ID": unique_name("app"),
        "CONVOWATCH_REVIEW_QUEUES": json.dumps({"driver_support": "vendor-b/drivers"}),
    }
    chats, verdicts = [], []
    high_risk = set()
    for i in range(60):  # one turn a second; every tenth high-risk (unsafe, or failing on a fraud turn)
        turn_id = f"t-{i:02d}"
        if i % 10 == 0:
            chats.append(turn(turn_id, i))
            verdicts.append(verdict(turn_id, i, safety="fail", relevance="pass"))
            high_risk.add(turn_id)
        elif i % 10 == 5:
            chats.append(turn(turn_id, i, risk_topics=["fraud"]))
            verdicts.append(verdict(turn_id, i, safety="pass", relevance="fail"))
            high_risk.add(turn_id)
        else:
            chats.append(turn(turn_id, i))
            verdicts.append(verdict(turn_id, i, safety="pass", relevance="pass"))
    produce_jsonl(kafka_broker.bootstrap, env, tmp_path, chats=chats, verdicts=verdicts)
    make_worker(kafka_broker.bootstrap, env)

    topic = prefix + "review.requests"
    seen: dict[str, Any] = {}

    def requested_all_high_risk() -> bool:
        seen.clear()
        for key, value in read_topic(kafka_broker.bootstrap, topic):
            assert key is not None and key.decode() == value["request_id"]
            seen[value["turn_id"]] = value
        return high_risk <= set(seen)

    wait_until(requested_all_high_risk, timeout=90, interval=0.5, ignore=(KeyError, TimeoutError))
    for turn_id in high_risk:
        request = ReviewRequest.model_validate(seen[turn_id])
        assert request.reason == "high_risk" and request.inclusion_probability == 1.0
        assert request.queue == "vendor-b/drivers" and request.segment.journey == "driver_support"
        assert request.request_id == f"review/{turn_id}" and request.judge_ids == ["judge-gpt"]
    # the other 48 are sampled: a cold sampler takes the first 20 turns it sees (its scale starts at 1 and
    # is fitted every 20 turns), then about one a minute (60 an hour); the order they reach it varies
    others = [ReviewRequest.model_validate(v) for t, v in seen.items() if t not in high_risk]
    assert len(others) <= 30
    assert all(r.reason != "high_risk" and r.priority < 1.0 for r in others)
