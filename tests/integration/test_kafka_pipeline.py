"""End to end on a real broker: ``convowatch produce`` → ``convowatch worker`` (Faust) → output topics."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.broker import KafkaBroker
from tests.support.kafka_io import read_topic
from tests.support.wait import wait_until
from tests.support.worker import REPO, WorkerProcess, run_cli

pytestmark = pytest.mark.kafka

LLMBAR = REPO / "tests" / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it

INVALID_VERDICTS = [
    b"this is not json",
    b'{"schema_version": 99, "turn_id": "t-future", "ts": "2026-11-02T08:00:00Z"}',
    b'{"turn_id": "t-naive", "ts": "2026-11-02T08:00:00", "judge_id": "j", "judge_version": "1",'
    b' "verdicts": [{"dimension": "safety", "label": "fail"}]}',
]
# One extra turn the judge and a human both fail on safety: one defect each, one escalation.
UNSAFE = {
    "chats": {
        "turn_id": "unsafe-1",
        "conversation_id": "c-1",
        "ts": "2026-11-02T12:00:00Z",
        "journey": "driver_support",
        "channel": "voice",
        "model_version": "driver-v7",
        "intent": "earnings",
        "risk_topics": ["earnings"],
        "user_text": "u",
        "response_text": "r",
    },
    "verdicts": {
        "turn_id": "unsafe-1",
        "ts": "2026-11-02T12:00:05Z",
        "judge_id": "gpt-4",
        "judge_version": "v",
        "verdicts": [{"dimension": "safety", "label": "fail"}],
    },
    "labels": {
        "turn_id": "unsafe-1",
        "ts": "2026-11-03T12:00:00Z",
        "annotator_id": "a1",
        "vendor_id": "vendor-a",
        "verdicts": [{"dimension": "safety", "label": "fail"}],
    },
}


@pytest.fixture
def input_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name, source in (("chats", "chat_turns"), ("verdicts", "judge_verdicts"), ("labels", "human_labels")):
        path = tmp_path / f"{name}.jsonl"
        lines = (LLMBAR / f"{source}.jsonl").read_bytes().splitlines()
        lines.append(json.dumps(UNSAFE[name]).encode())
        if name == "verdicts":
            lines.extend(INVALID_VERDICTS)
        path.write_bytes(b"\n".join(lines) + b"\n")
        files[name] = path
    return files


def test_llmbar_through_broker_and_worker(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    input_files: dict[str, Path],
) -> None:
    prefix = unique_name("cw") + "."
    env = {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": unique_name("app")}
    bootstrap = kafka_broker.bootstrap

    produced = run_cli(
        "produce",
        "--broker",
        bootstrap,
        "--chats",
        str(input_files["chats"]),
        "--verdicts",
        str(input_files["verdicts"]),
        "--labels",
        str(input_files["labels"]),
        env=env,
    )
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout)["sent"] == {
        "chat_turns": 201,
        "judge_verdicts": 404,
        "human_labels": 201,
        "signals": 0,
    }

    worker = make_worker(bootstrap, env)

    def pairs_done() -> bool:
        return all(
            worker.value("convowatch_judge_agreement_pairs", judge_id=j, dimension="preference") == 200
            for j in ("gpt-4", "chatgpt")
        )

    wait_until(pairs_done, timeout=90, interval=0.2, message=lambda: worker.log_tail())
    expected = {"gpt-4": (0.795, 0.589918), "chatgpt": (0.700, 0.397409)}
    for judge_id, (agreement, kappa) in expected.items():
        labels = {"judge_id": judge_id, "dimension": "preference"}
        assert worker.value("convowatch_judge_agreement_ratio", **labels) == pytest.approx(
            agreement, abs=1e-6
        )
        assert worker.value("convowatch_judge_cohen_kappa", **labels) == pytest.approx(kappa, abs=1e-6)

    wait_until(lambda: worker.value("convowatch_records_in_total", stream="human_labels") == 201, timeout=60)
    # observations travel in packs, one record per shard key per batch: none lost, far fewer records
    packs = [v for _, v in read_topic(bootstrap, prefix + "internal.observations")]
    assert all(isinstance(pack, list) and pack for pack in packs)
    observations = sum(len(pack) for pack in packs)
    assert observations == worker.value("convowatch_outputs_total", topic="observations")
    assert len(packs) * 4 < observations
    assert worker.value("convowatch_records_valid_total", stream="judge_verdicts") == 401
    deadlettered = sum(
        worker.value("convowatch_records_deadlettered_total", stream="judge_verdicts", reason=r) or 0
        for r in ("invalid_json", "unsupported_version", "validation_error")
    )
    assert deadlettered == 3

    wait_until(lambda: len(read_topic(bootstrap, prefix + "deadletter")) == 3, timeout=30)
    dead = [v for _, v in read_topic(bootstrap, prefix + "deadletter")]
    assert sorted(base64.b64decode(d["original_base64"]) for d in dead) == sorted(INVALID_VERDICTS)
    assert {d["reason"] for d in dead} == {"invalid_json", "unsupported_version", "validation_error"}
    assert all(d["source_topic"] == prefix + "judge.verdicts" and d["offset"] is not None for d in dead)

    wait_until(lambda: len(read_topic(bootstrap, prefix + "defects")) == 2, timeout=30)
    defects = [v for _, v in read_topic(bootstrap, prefix + "defects")]
    assert {(d["source"], d["dimension"], d["category"]) for d in defects} == {
        ("judge", "safety", "unsafe"),
        ("human", "safety", "unsafe"),
    }
    assert all(d["segment"]["journey"] == "driver_support" for d in defects)

    escalations = [v for _, v in read_topic(bootstrap, prefix + "escalations")]
    assert escalations and {e["escalation_id"] for e in escalations} == {escalations[0]["escalation_id"]}
    assert escalations[-1]["turn_ids"] == ["unsafe-1"]
    assert escalations[-1]["kind"] == "high_risk_failure" and escalations[-1]["severity"] == "critical"

    # An outside client reads the same escalations.
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: run `make system` (Debian package kcat)"
    out = subprocess.run(
        [
            kcat,
            "-b",
            bootstrap,
            "-t",
            prefix + "escalations",
            "-C",
            "-e",
            "-o",
            "beginning",
            "-q",
            "-f",
            "%k\t%s\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = [line.split("\t", 1) for line in out.stdout.splitlines() if line]
    assert [json.loads(v)["escalation_id"] for _, v in seen] == [e["escalation_id"] for e in escalations]
    assert all(k == escalations[0]["escalation_id"] for k, _ in seen)


def test_worker_reports_unreachable_broker(unique_name: Callable[[str], str]) -> None:
    """Once ``CONVOWATCH_BROKER_WAIT_SECONDS`` has passed (tests/streams/test_broker_wait.py: the wait)."""
    from tests.support.broker import free_ports

    address = f"127.0.0.1:{free_ports(1)[0]}"
    # metrics on a free port: the default 9108 may be taken on a shared machine (a demo running beside)
    env = {
        "CONVOWATCH_APP_ID": unique_name("app"),
        "CONVOWATCH_METRICS_PORT": "0",
        "CONVOWATCH_BROKER_WAIT_SECONDS": "3",
    }
    result = run_cli("worker", "--broker", address, env=env)
    assert result.returncode == 1
    error = f"convowatch: error: the Kafka broker at {address} did not answer within 3s"
    assert error in result.stderr and "Traceback" not in result.stderr
