"""Split roles on a real broker: a ``join`` worker (escalation path) and an ``aggregate`` worker (views)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.test_kafka_pipeline import UNSAFE
from tests.support.broker import KafkaBroker
from tests.support.kafka_io import read_topic
from tests.support.wait import wait_until
from tests.support.worker import REPO, WorkerProcess, run_cli

pytestmark = pytest.mark.kafka

LLMBAR = REPO / "tests" / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it


def test_join_and_aggregate_roles_in_separate_processes(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = kafka_broker.bootstrap
    prefix, app_id = unique_name("roles") + ".", unique_name("app")
    env = {
        "CONVOWATCH_TOPIC_PREFIX": prefix,
        "CONVOWATCH_APP_ID": app_id,
        "CONVOWATCH_LAG_INTERVAL_SECONDS": "0.5",
    }
    files = []
    for name, source in (("chats", "chat_turns"), ("verdicts", "judge_verdicts"), ("labels", "human_labels")):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(
            (LLMBAR / f"{source}.jsonl").read_bytes() + json.dumps(UNSAFE[name]).encode() + b"\n"
        )
        files += [f"--{name}", str(path)]
    produced = run_cli("produce", "--broker", bootstrap, *files, env=env)
    assert produced.returncode == 0, produced.stderr

    join = make_worker(bootstrap, env | {"CONVOWATCH_ROLE": "join"})
    aggregate = make_worker(bootstrap, env | {"CONVOWATCH_ROLE": "aggregate"})

    def pairs_done() -> bool:
        return all(
            aggregate.value("convowatch_judge_agreement_pairs", judge_id=j, dimension="preference") == 200
            for j in ("gpt-4", "chatgpt")
        )

    wait_until(pairs_done, timeout=120, interval=0.2, message=lambda: aggregate.log_tail())
    labels = {"judge_id": "gpt-4", "dimension": "preference"}
    assert aggregate.value("convowatch_judge_agreement_ratio", **labels) == pytest.approx(0.795, abs=1e-6)
    assert aggregate.value("convowatch_judge_cohen_kappa", **labels) == pytest.approx(0.589918, abs=1e-6)

    # the join worker reads the inputs and escalates; it holds no aggregates, the aggregate worker no inputs
    assert join.value("convowatch_records_in_total", stream="human_labels") == 201
    assert join.value("convowatch_judge_agreement_pairs", **labels) is None
    assert not aggregate.value("convowatch_records_in_total", stream="human_labels")
    escalations = [v for _, v in read_topic(bootstrap, prefix + "escalations")]
    assert [e["turn_ids"] for e in escalations if e["kind"] == "high_risk_failure"][-1] == ["unsafe-1"]

    # each role reports the lag of its own consumer group on the topics it reads: drained to 0
    def lag(worker: WorkerProcess) -> dict[str, float]:
        return {
            dict(labels)["topic"] + ":" + dict(labels)["partition"]: value
            for (name, labels), value in worker.scrape().items()
            if name == "convowatch_consumer_lag"
        }

    observations = prefix + "internal.observations"
    wait_until(
        lambda: (seen := lag(aggregate)) and not any(seen.values()) and all(observations in k for k in seen),
        timeout=60,
        message=lambda: lag(aggregate),
    )
    wait_until(
        lambda: (seen := lag(join)) and not any(seen.values()) and not any(observations in k for k in seen),
        timeout=60,
        message=lambda: lag(join),
    )

    # the aggregation role keeps the changelog name of the combined role, under its own consumer group
    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    assert f"{app_id}-aggregates-changelog" in topics and f"{app_id}-pending-changelog" in topics
    assert f"{app_id}-aggregate-aggregates-changelog" not in topics
