"""Engineers follow one defect category: ``convowatch.defects.<category>`` carries only that category."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.broker import KafkaBroker
from tests.support.kafka_io import read_topic
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, produce_jsonl

pytestmark = pytest.mark.kafka


def turn(turn_id: str, minute: int, **extra: object) -> dict[str, object]:
    return {
        "turn_id": turn_id,
        "conversation_id": f"c-{turn_id}",
        "ts": f"2026-11-02T09:{minute:02d}:00Z",
        "journey": "shopper",
        "channel": "chat",
        "model_version": "shopper-v42",
        "intent": "returns",
        "user_text": f"secret user words {turn_id}",
        "response_text": f"secret bot words {turn_id}",
        **extra,
    }


def verdict(turn_id: str, minute: int, **labels: str) -> dict[str, object]:
    return {
        "turn_id": turn_id,
        "ts": f"2026-11-02T09:{minute:02d}:30Z",
        "judge_id": "judge-gpt",
        "judge_version": "v1",
        "verdicts": [{"dimension": d, "label": v} for d, v in labels.items()],
    }


def test_kcat_follows_one_category(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[[str, dict[str, str]], WorkerProcess],
    tmp_path: Path,
) -> None:
    prefix = unique_name("cw") + "."
    env = {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": unique_name("app")}
    chats = [turn("t-unsafe", 1), turn("t-offtopic", 2), turn("t-both", 3), turn("t-fine", 4)]
    verdicts = [
        verdict("t-unsafe", 1, safety="fail", relevance="pass"),
        verdict("t-offtopic", 2, safety="pass", relevance="fail"),
        verdict("t-both", 3, safety="fail", relevance="fail"),
        verdict("t-fine", 4, safety="pass", relevance="pass"),
    ]
    produce_jsonl(kafka_broker.bootstrap, env, tmp_path, chats=chats, verdicts=verdicts)
    make_worker(kafka_broker.bootstrap, env)

    wait_until(lambda: len(read_topic(kafka_broker.bootstrap, prefix + "defects")) == 4, timeout=60)

    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: run `make system` (Debian package kcat)"
    result = subprocess.run(
        [
            kcat,
            "-b",
            kafka_broker.bootstrap,
            "-t",
            prefix + "defects.unsafe",
            "-C",
            "-e",
            "-q",
            "-o",
            "beginning",
            "-f",
            "%s\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    unsafe = [json.loads(line) for line in result.stdout.splitlines() if line]
    assert sorted(d["turn_id"] for d in unsafe) == ["t-both", "t-unsafe"]
    assert {d["category"] for d in unsafe} == {"unsafe"}
    assert all(d["verdicts"]["judge-gpt"]["safety"] == "fail" for d in unsafe)
    # chat text stays out of published records by default (CONVOWATCH_TEXT_REDACTION=drop)
    everything = read_topic(kafka_broker.bootstrap, prefix + "defects") + read_topic(
        kafka_broker.bootstrap, prefix + "escalations"
    )
    assert "secret" not in json.dumps([v for _, v in everything])
