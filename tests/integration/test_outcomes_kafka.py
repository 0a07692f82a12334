"""Business outcomes on a real broker: turns and signals through ``convowatch produce`` and the worker.

Signals are keyed by conversation, turns by turn: only the repartitioned observations bring them together
on one worker. Event time closes and settles conversations per observation partition, so the second phase
sends late "clock" turns of many conversations (covering every partition) once the first phase is counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import KafkaBroker
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, run_cli

pytestmark = pytest.mark.kafka

START = datetime(2026, 11, 2, 8, tzinfo=UTC)
SHOP = {"journey": "shopper", "model_version": "shop-v1", "channel": "chat"}
DRIVE = {"journey": "driver_support", "model_version": "drive-v7", "channel": "voice"}


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat()


def turn(cid: str, tid: str, t: float, segment: dict[str, str] = SHOP, **outcome: Any) -> dict[str, Any]:
    return {"turn_id": tid, "conversation_id": cid, "ts": at(t), **segment, "outcome": outcome}


def signal(cid: str, eid: str, t: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": eid, "conversation_id": cid, "ts": at(t), "kind": kind, **fields}


def write(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_business_outcomes_through_broker_and_worker(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {
        "CONVOWATCH_TOPIC_PREFIX": unique_name("cw") + ".",
        "CONVOWATCH_APP_ID": unique_name("app"),
        "CONVOWATCH_CONVERSATION_IDLE_SECONDS": "60",
        "CONVOWATCH_RECONTACT_WINDOW_SECONDS": "600",
    }
    bootstrap = kafka_broker.bootstrap
    turns = [
        turn("c1", "c1-t1", 0),
        turn("c1", "c1-t2", 10, task_completed=True, user_feedback="up"),
        turn("c2", "c2-t1", 5, escalated_to_agent=True),
        turn("c3", "c3-t1", 7),
        turn("c4", "c4-t1", 8, DRIVE),
    ]
    signals = [
        signal("c1", "e1", 20, "purchase", order_id="o-1", value=30.0),
        signal("c1", "e2", 21, "handle_time", handle_time_seconds=140.0),
        signal("c2", "e3", 30, "recontact"),
        signal("c3", "e4", 9, "agent_handoff"),
        signal("c3", "e4", 9, "agent_handoff"),  # re-sent: counts once
        {"event_id": "bad", "conversation_id": "c3", "ts": at(9), "kind": "purchase"},  # no order id
    ]
    produced = run_cli(
        "produce",
        "--broker",
        bootstrap,
        "--chats",
        write(tmp_path / "chats.jsonl", turns),
        "--signals",
        write(tmp_path / "signals.jsonl", signals),
        env=env,
    )
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout)["sent"] == {
        "chat_turns": 5,
        "judge_verdicts": 0,
        "human_labels": 0,
        "signals": 6,
    }

    worker = make_worker(bootstrap, env)

    def value(name: str, segment: dict[str, str] = SHOP, **labels: str) -> float:
        return worker.value(name, **segment, **labels) or 0.0

    def counted() -> bool:
        return (
            value("convowatch_conversations_total") == 3
            and value("convowatch_conversations_total", DRIVE) == 1
            and value("convowatch_orders_total") == 1
            and value("convowatch_conversations_escalated_total") == 2
        )

    wait_until(counted, timeout=90, interval=0.2, message=worker.log_tail)
    assert value("convowatch_conversations_task_completed_total") == 1
    assert value("convowatch_user_feedback_total", feedback="up") == 1
    assert value("convowatch_handle_time_seconds_sum") == 140.0
    assert worker.value("convowatch_duplicates_total", stream="signals") == 1
    assert (
        worker.value("convowatch_records_deadlettered_total", stream="signals", reason="validation_error")
        == 1
    )
    assert value("convowatch_conversations_closed_total") == 0

    # phase 2: event time moves on in every observation partition; the conversations close and settle
    clock = [turn(f"clock-{i}", f"clock-{i}-t", 5_000 + i, {**DRIVE, "journey": "clock"}) for i in range(40)]
    produced = run_cli(
        "produce", "--broker", bootstrap, "--chats", write(tmp_path / "clock.jsonl", clock), env=env
    )
    assert produced.returncode == 0, produced.stderr

    wait_until(
        lambda: value("convowatch_conversations_settled_total") == 3,
        timeout=90,
        interval=0.2,
        message=worker.log_tail,
    )
    assert value("convowatch_conversations_closed_total") == 3
    assert value("convowatch_conversations_contained_total") == 1  # c1: c2 and c3 reached an agent
    assert value("convowatch_conversations_resolved_first_contact_total") == 2  # c2 came back
    assert value("convowatch_conversations_resolved_first_contact_total", DRIVE) == 1
    assert worker.value("convowatch_conversation_events_dropped_total", reason="late") == 0
