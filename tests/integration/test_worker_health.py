"""Consumer lag and the health endpoints on a real broker and a real ``convowatch worker``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.lag import ConsumerLagMonitor
from streams.metrics import Metrics
from streams.topics import input_topics, output_topics
from tests.support.broker import KafkaBroker
from tests.support.wait import wait_until
from tests.support.worker import REPO, WorkerProcess, run_cli

pytestmark = pytest.mark.kafka

LLMBAR = REPO / "tests" / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def _produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, n in per_partition.items():
        for i in range(n):
            producer.produce(topic, value=b"x%d" % i, partition=partition)
    assert producer.flush(30) == 0


def _commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def test_lag_is_end_minus_committed_per_partition(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap
    group = unique_name("group")
    topic, other = unique_name("lag"), unique_name("lag")
    _create(bootstrap, topic, 3)
    _create(bootstrap, other, 1)
    _produce(bootstrap, topic, {0: 10, 1: 4, 2: 0})
    _produce(bootstrap, other, {0: 7})
    _commit(bootstrap, group, {(topic, 0): 6, (topic, 1): 4})  # partition 2 and `other`: never committed

    metrics = Metrics(CollectorRegistry())
    monitor = ConsumerLagMonitor(Settings(broker=bootstrap, app_id=group), metrics, [topic, other, "absent"])
    value = metrics.registry.get_sample_value
    assert value("convowatch_consumer_lag_checked_timestamp_seconds") == 0
    before = time.time()
    assert monitor.check() == {(topic, 0): 4, (topic, 1): 0, (topic, 2): 0, (other, 0): 7}
    assert before <= (value("convowatch_consumer_lag_checked_timestamp_seconds") or 0) <= time.time()
    assert value("convowatch_consumer_lag", {"topic": topic, "partition": "0"}) == 4
    assert value("convowatch_consumer_lag", {"topic": other, "partition": "0"}) == 7

    _produce(bootstrap, topic, {1: 5})
    _commit(bootstrap, group, {(topic, 0): 10})
    assert monitor.check()[(topic, 0)] == 0
    assert monitor.latest[(topic, 1)] == 5
    assert value("convowatch_consumer_lag", {"topic": topic, "partition": "1"}) == 5


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


#: Run in a child process: the crash it guards against (a SIGSEGV in librdkafka) would end pytest itself.
CHECK_MANY_GROUPS = """
import json, sys, threading
from streams.config import Settings
from streams.lag import ConsumerLagMonitor
from streams.metrics import Metrics

bootstrap, topic, groups = sys.argv[1], sys.argv[2], int(sys.argv[3])
monitors = [ConsumerLagMonitor(Settings(broker=bootstrap, app_id=f"{topic}-g{i}"), Metrics(), [topic])
            for i in range(groups)]
totals = []
threads = [threading.Thread(target=lambda m=m: totals.append(sum(m.check().values()))) for m in monitors]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
for monitor in monitors:
    monitor.stop()
print(json.dumps(totals))
"""


def test_lag_of_new_groups_on_a_new_cluster_is_measured_without_crashing_the_process(
    kafka_broker_factory: Callable[[], KafkaBroker], unique_name: Callable[[str], str]
) -> None:
    # while a fresh cluster's group coordinators load, the broker answers offset requests NOT_COORDINATOR;
    # librdkafka's admin list_consumer_group_offsets crashed the process on that answer (SIGSEGV, 4 runs of
    # 4 with 20 groups), and a worker's lag monitor would crash the worker the same way when a coordinator
    # moves (a broker restart, a leader change of __consumer_offsets)
    broker = kafka_broker_factory()
    topic = unique_name("lag-new")
    _create(broker.bootstrap, topic, 2)
    _produce(broker.bootstrap, topic, {0: 4, 1: 3})
    child = subprocess.run(
        [sys.executable, "-c", CHECK_MANY_GROUPS, broker.bootstrap, topic, "20"],
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stderr.decode()[-3000:]}"
    assert json.loads(child.stdout) == [7] * 20  # nothing committed: every record is behind, in every group


def test_worker_health_and_lag_drain_to_zero(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
) -> None:
    prefix = unique_name("cw") + "."
    env = {
        "CONVOWATCH_TOPIC_PREFIX": prefix,
        "CONVOWATCH_APP_ID": unique_name("app"),
        "CONVOWATCH_LAG_INTERVAL_SECONDS": "0.5",
    }
    produced = run_cli(
        "produce",
        "--broker",
        kafka_broker.bootstrap,
        "--chats",
        str(LLMBAR / "chat_turns.jsonl"),
        "--verdicts",
        str(LLMBAR / "judge_verdicts.jsonl"),
        "--labels",
        str(LLMBAR / "human_labels.jsonl"),
        env=env,
    )
    assert produced.returncode == 0, produced.stderr
    worker = make_worker(kafka_broker.bootstrap, env)
    base = f"http://127.0.0.1:{worker.metrics_port}"

    ready = wait_until(
        lambda: (r := _get(f"{base}/readyz"))[0] == 200 and r,
        timeout=90,
        interval=0.2,
        message=lambda: f"{_get(f'{base}/readyz')}\n{worker.log_tail()}",
    )
    assert ready[1]["checks"] == {"heartbeat": "ok", "progress": "ok", "broker": "ok", "partitions": "ok"}
    assert _get(f"{base}/healthz") == (200, {"status": "ok", "checks": {"heartbeat": "ok", "progress": "ok"}})

    def lags() -> dict[tuple[str, str], float]:
        return {
            (dict(labels)["topic"], dict(labels)["partition"]): value
            for (name, labels), value in worker.scrape().items()
            if name == "convowatch_consumer_lag"
        }

    settings = Settings(topic_prefix=prefix)
    internal = output_topics(settings)
    topics = {*input_topics(settings).values(), internal["observations"], internal["review_keep"]}
    partitions = settings.partitions

    def drained() -> bool:
        seen = lags()
        return (
            {t for t, _ in seen} == topics
            and len(seen) == len(topics) * partitions
            and not any(seen.values())
        )

    wait_until(drained, timeout=90, interval=0.25, message=lambda: f"lag {lags()}\n{worker.log_tail()}")
    # 200 + 404 + 200 input records were read and committed
    assert worker.value("convowatch_records_in_total", stream="judge_verdicts") == 400
    # which stages it covers (alerts ConvowatchJoinStageDown and ConvowatchAggregateStageDown)
    roles = {
        dict(labels)["role"]: v
        for (name, labels), v in worker.scrape().items()
        if name == "convowatch_worker_role"
    }
    assert roles == {"all": 1.0}


def test_topics_with_other_partition_counts_stop_the_worker_with_one_clear_line(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str]
) -> None:
    # inputs made with 2 partitions, workers configured for 4: the join would send state to changelog
    # partitions that do not exist (a batch failing at every restart); refuse it before starting
    prefix = unique_name("parts") + "."
    settings = Settings(topic_prefix=prefix, app_id=unique_name("parts-app"), partitions=4)
    inputs = list(input_topics(settings).values())
    for topic in inputs:
        _create(kafka_broker.bootstrap, topic, 2)
    env = {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": settings.app_id}
    env["CONVOWATCH_PARTITIONS"] = "4"
    for args in (["worker", "--metrics-port", "0"], ["topics", "create"]):
        done = run_cli(*args, "--broker", kafka_broker.bootstrap, env=env, timeout=60)
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert f"{inputs[0]} has 2" in line and "CONVOWATCH_PARTITIONS is 4" in line
    # the producer takes whatever count the inputs agree on, and refuses inputs that disagree
    generate = ["produce", "--broker", kafka_broker.bootstrap, "--generate", "--duration", "1"]
    produced = run_cli(*generate, env=env)
    assert produced.returncode == 0, produced.stderr
    other = unique_name("parts") + "."
    for i, topic in enumerate(input_topics(Settings(topic_prefix=other)).values()):
        _create(kafka_broker.bootstrap, topic, 2 + (i == 1))
    refused = run_cli(*generate, env={**env, "CONVOWATCH_TOPIC_PREFIX": other})
    assert refused.returncode == 1 and f"{other}judge.verdicts has 3" in refused.stderr, refused.stderr
