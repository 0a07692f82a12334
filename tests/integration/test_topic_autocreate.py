"""On a broker with ``auto.create.topics.enable=true`` (Apache Kafka's default) convowatch creates its topics,
the tables' changelogs compacted, before any client could have the broker create them with its defaults
(``num.partitions`` 1, ``cleanup.policy=delete``), and refuses changelogs that are not compacted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiokafka.client
import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streams.kafka_client import refuse_topic_auto_creation, track_topics
from tests.support.broker import KafkaBroker
from tests.support.wait import wait_until
from tests.support.worker import REPO, WorkerProcess, run_cli

pytestmark = pytest.mark.kafka

LLMBAR = REPO / "tests" / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it
CHANGELOGS = ("pending", "published", "aggregates")


def _describe(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str]]:
    """name -> (partitions, cleanup.policy) of the topics in ``names`` that exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=30).topics
    present = [n for n in names if n in topics]
    if not present:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in present])
    return {
        r.name: (len(topics[r.name].partitions), f.result(30)["cleanup.policy"].value)
        for r, f in futures.items()
    }


def test_a_fresh_worker_runs_on_compacted_changelogs_with_its_partitions(
    kafka_broker_autocreating: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = kafka_broker_autocreating.bootstrap
    prefix, app_id = unique_name("auto") + ".", unique_name("app")
    env = {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": app_id, "CONVOWATCH_PARTITIONS": "3"}
    worker = make_worker(bootstrap, env)  # on a cluster where none of its topics exist yet
    files = []
    for name, source in (("chats", "chat_turns"), ("verdicts", "judge_verdicts"), ("labels", "human_labels")):
        files += [f"--{name}", str(LLMBAR / f"{source}.jsonl")]
    produced = run_cli("produce", "--broker", bootstrap, *files, env=env)
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout)["sent"]["chat_turns"] == 200

    def pairs_done() -> bool:
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
        return (
            worker.value("convowatch_judge_agreement_pairs", judge_id="gpt-4", dimension="preference") == 200
        )

    wait_until(pairs_done, timeout=120, interval=0.2, message=worker.log_tail)
    changelogs = [f"{app_id}-{table}-changelog" for table in CHANGELOGS]
    assert _describe(bootstrap, changelogs) == dict.fromkeys(changelogs, (3, "compact"))


def test_a_changelog_that_is_not_compacted_is_refused(
    kafka_broker_autocreating: KafkaBroker, unique_name: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker_autocreating.bootstrap
    prefix, app_id = unique_name("auto") + ".", unique_name("app")
    env = {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": app_id}
    pending = f"{app_id}-pending-changelog"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(pending, 4, 1, config={"cleanup.policy": "delete"})])[pending].result(30)

    refused = run_cli("topics", "create", "--broker", bootstrap, env=env)
    assert refused.returncode == 1
    error = refused.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"convowatch: error: {pending} has cleanup.policy=delete")
    assert "cleanup.policy=compact" in error[0], error
    assert not {n for n in admin.list_topics(timeout=30).topics if n.startswith(prefix)}  # nothing created


def test_topics_replicated_less_than_configured_are_named_in_a_warning(
    kafka_broker_autocreating: KafkaBroker, unique_name: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker_autocreating.bootstrap
    env = {"CONVOWATCH_TOPIC_PREFIX": unique_name("auto") + ".", "CONVOWATCH_APP_ID": unique_name("app")}
    assert run_cli("topics", "create", "--broker", bootstrap, env=env).returncode == 0  # replication 1
    again = run_cli(
        "topics", "create", "--broker", bootstrap, env=env | {"CONVOWATCH_REPLICATION_FACTOR": "2"}
    )
    assert again.returncode == 0, again.stderr
    warned = [line for line in again.stderr.splitlines() if "below CONVOWATCH_REPLICATION_FACTOR=2" in line]
    assert len(warned) == len(again.stdout.splitlines()) > 3, again.stderr  # every topic, all existing
    assert any(line.startswith(f"{env['CONVOWATCH_APP_ID']}-aggregates-changelog has") for line in warned)


def test_aiokafka_clients_no_longer_have_missing_topics_auto_created(
    kafka_broker_autocreating: KafkaBroker, unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = kafka_broker_autocreating.bootstrap
    monkeypatch.setattr(aiokafka.client, "MetadataRequest", aiokafka.client.MetadataRequest)  # restored after
    refused, control = unique_name("refused"), unique_name("control")

    async def track(topic: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await track_topics(producer.client, [topic])
        finally:
            await producer.stop()

    refuse_topic_auto_creation()
    asyncio.run(track(refused))
    monkeypatch.undo()  # aiokafka's own request again: this broker creates what it names
    asyncio.run(track(control))
    topics = wait_until(
        lambda: (
            (names := AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics)
            and control in names
            and names
        ),
        timeout=30,
    )
    assert refused not in topics  # asked for before the control, which the broker did create
