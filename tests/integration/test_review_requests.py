"""Review requests reach ``convowatch.review.requests`` on a real broker, one per sampled turn."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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


def stamp(second: int) -> str:
    return (datetime(2026, 11, 2, 9, tzinfo=UTC) + timedelta(seconds=second)).isoformat()


def late_turn(turn_id: str, second: int) -> dict[str, object]:
    return turn(turn_id, 0) | {"ts": stamp(second)}


def late_verdict(turn_id: str, second: int, **labels: str) -> dict[str, object]:
    return verdict(turn_id, 0, **labels) | {"ts": stamp(second)}


def label(turn_id: str, second: int, **labels: str) -> dict[str, object]:
    return {
        "turn_id": turn_id,
        "ts": stamp(second),
        "annotator_id": "ann-1",
        "vendor_id": "vendor-b",
        "verdicts": [{"dimension": d, "label": v} for d, v in labels.items()],
    }


def test_a_turn_sent_for_review_outlives_the_join_cap_and_its_late_label_meets_the_judge(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[[str, dict[str, str]], WorkerProcess],
    tmp_path: Path,
) -> None:
    """The review request goes back to the join through ``internal.review.keep`` on the real broker; turns
    not sent for review are evicted by the cap, and a label for one of them meets nothing."""
    prefix = unique_name("cw") + "."
    env = {
        "CONVOWATCH_TOPIC_PREFIX": prefix,
        "CONVOWATCH_APP_ID": unique_name("app"),
        "CONVOWATCH_JOIN_MAX_ENTRIES": "40",
        # few requests among the later turns: beyond half of the cap (20) the oldest kept turns give way
        "CONVOWATCH_REVIEW_BUDGET_PER_HOUR": "1",
    }
    bootstrap = kafka_broker.bootstrap
    first = {"chats": [turn("unsafe", 0)], "verdicts": [verdict("unsafe", 0, safety="fail")]}
    for i in range(1, 30):  # fewer than the cap: all held when the review request comes back
        first["chats"].append(turn(f"t-{i:02d}", i))
        first["verdicts"].append(verdict(f"t-{i:02d}", i, safety="pass"))
    (tmp_path / "first").mkdir()
    produce_jsonl(bootstrap, env, tmp_path / "first", **first)
    worker = make_worker(bootstrap, env)
    requested: set[str] = set()

    def unsafe_kept() -> bool:
        requested.update(value["turn_id"] for _, value in read_topic(bootstrap, prefix + "review.requests"))
        return (
            "unsafe" in requested
            and (worker.value("convowatch_join_review_keeps_total", result="kept") or 0) > 0
        )

    wait_until(
        unsafe_kept,
        timeout=90,
        interval=0.5,
        ignore=(TimeoutError,),
        message=lambda: (
            f"requested {sorted(requested)}; keeps {read_topic(bootstrap, prefix + 'internal.review.keep')} "
            f"{[(k, v) for k, v in worker.scrape().items() if 'keep' in k[0] or 'outputs' in k[0]]}"
        ),
    )
    skipped = sorted({f"t-{i:02d}" for i in range(1, 30)} - requested)
    assert skipped, "the sampler requested every turn: no control"
    # two hours of traffic later, four times the cap: every turn not kept for review is evicted
    later = {"chats": [], "verdicts": []}
    for i in range(160):
        later["chats"].append(late_turn(f"late-{i:03d}", 3600 + i))
        later["verdicts"].append(late_verdict(f"late-{i:03d}", 3600 + i, safety="pass"))
    (tmp_path / "later").mkdir()
    produce_jsonl(bootstrap, env, tmp_path / "later", **later)
    wait_until(
        lambda: (worker.value("convowatch_records_valid_total", stream="judge_verdicts") or 0) >= 190,
        timeout=90,
        interval=0.5,
    )
    assert (worker.value("convowatch_join_evictions_total", reason="capacity") or 0) > 0
    kept = worker.value("convowatch_join_kept_for_review_turns")
    assert kept is not None and 1 <= kept <= 20, kept
    # the labels disagree with the judge on safety: a turn they meet yields a divergence
    (tmp_path / "labels").mkdir()
    labels = [label("unsafe", 7200, safety="pass"), label(skipped[0], 7200, safety="fail")]
    produce_jsonl(bootstrap, env, tmp_path / "labels", labels=labels)
    divergences: dict[str, Any] = {}

    def diverged() -> bool:
        divergences.update((v["turn_id"], v) for _, v in read_topic(bootstrap, prefix + "divergences"))
        return "unsafe" in divergences

    wait_until(diverged, timeout=90, interval=0.5, ignore=(TimeoutError,))
    assert divergences["unsafe"]["judge_label"] == "fail" and divergences["unsafe"]["human_label"] == "pass"
    assert divergences["unsafe"]["segment"]["journey"] == "driver_support"
    # more traffic evicts the other label, which never met its turn
    (tmp_path / "more").mkdir()
    more = {"chats": [late_turn(f"more-{i:03d}", 7300 + i) for i in range(80)]}
    produce_jsonl(bootstrap, env, tmp_path / "more", **more)
    wait_until(
        lambda: (worker.value("convowatch_join_unmatched_total", stream="human_labels") or 0) >= 1,
        timeout=90,
        interval=0.5,
    )
    divergences.update((v["turn_id"], v) for _, v in read_topic(bootstrap, prefix + "divergences"))
    assert skipped[0] not in divergences
