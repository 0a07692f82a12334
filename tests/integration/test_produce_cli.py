"""``convowatch produce`` against the real broker: a line it cannot send is reported, and the rest go."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.factories import chat_turn
from tests.support.broker import KafkaBroker
from tests.support.kafka_io import read_topic
from tests.support.worker import run_cli

pytestmark = pytest.mark.kafka


def test_a_line_larger_than_a_record_is_reported_and_the_others_are_delivered(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """librdkafka refuses it at once (past message.max.bytes): the exception ended the command with a
    traceback, and the records queued before it were never flushed."""
    prefix = unique_name("cw") + "."
    lines = [chat_turn(turn_id=f"t-{i}", ts=f"2026-11-02T08:00:0{i}Z") for i in range(4)]
    lines[2]["user_text"] = "x" * (5 * 1024 * 1024)
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps(line) + "\n" for line in lines))
    produced = run_cli(
        "produce",
        "--broker",
        kafka_broker.bootstrap,
        "--chats",
        str(chats),
        env={"CONVOWATCH_TOPIC_PREFIX": prefix},
    )
    assert produced.returncode == 1
    (error,) = produced.stderr.strip().splitlines()
    assert error.startswith("convowatch: error: 1 records failed delivery") and "refused" in error, error
    delivered = sorted(
        value["turn_id"] for _, value in read_topic(kafka_broker.bootstrap, f"{prefix}chat.turns")
    )
    assert delivered == ["t-0", "t-1", "t-3"]
