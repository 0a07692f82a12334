"""Topics grown under a running worker, on a real broker: the worker exits with status 78 (EX_CONFIG) and one
line saying so at the rebalance that would hand it the new partitions, instead of splitting its state without
a word (every topic grown) or failing every batch with ``AssertionError: Unrecognized partition`` (only the
inputs grown: a changelog record for a partition the changelog lacks).

A group's leader notices a growth at its next metadata refresh (aiokafka's ``metadata_max_age_ms``, 300 s;
not a convowatch setting), or at once when the group's subscription gains a topic: here a second worker joins
the group with topics of its own, an aggregate worker of another topic prefix and app id ``<id>``, whose group
is ``<id>-aggregate``, the first worker's app id. (A worker of the first's app id could not join: its start
is refused, the changelogs grown, or the count recorded at the state's first start differing.)

Every topic grown while no worker ran, restarted with ``CONVOWATCH_PARTITIONS`` set to the new count, passes
the comparison of the topics with each other and with the setting: the count recorded at the state's first
start refuses it (``streams.partition_marker``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from schemas import Stream
from streams.config import Settings
from streams.generator import TrafficGenerator, to_records
from streams.partition_count import EX_CONFIG
from streams.topics import copartitioned_topics, input_topics, partition_count_topic
from tests.support.broker import KafkaBroker
from tests.support.verify import read_raw
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, produce_records, run_cli

pytestmark = pytest.mark.kafka


def traffic(seed: int, count: int) -> list[tuple[Stream, bytes]]:
    records = to_records(TrafficGenerator(seed=seed, rate=20.0).records(200))
    return [(stream, raw) for _, _, stream, raw, _, _ in itertools.islice(records, count)]


def grow(bootstrap: str, topics: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_partitions([NewPartitions(t, partitions) for t in topics]).values():
        future.result(30)


def send_murmur2(bootstrap: str, settings: Settings, records: list[tuple[Stream, bytes]]) -> None:
    """Send ``records`` keyed as the event contract says, placed by Java's partitioner on the grown topics
    (``convowatch produce`` refuses inputs that disagree with the internal topics)."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    topics = input_topics(settings)
    for stream, raw in records:
        event = orjson.loads(raw)
        key = event["conversation_id"] if stream is Stream.SIGNALS else event["turn_id"]
        producer.produce(topics[stream], value=raw, key=key.encode())
    assert producer.flush(30) == 0


def exited(worker: WorkerProcess) -> bool:
    assert worker.proc is not None
    return worker.proc.poll() is not None


def wait_assigned(worker: WorkerProcess) -> None:
    joined = "assigned input partitions"
    wait_until(lambda: joined in worker.log_tail(400), timeout=60, interval=0.25, message=worker.log_tail)


def run_until_grown(
    bootstrap: str,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    inputs_only: bool,
) -> WorkerProcess:
    other_app = unique_name("grow-app")
    app_id = f"{other_app}-aggregate"  # the consumer group of other_app's aggregate workers
    env = {"CONVOWATCH_TOPIC_PREFIX": unique_name("grow") + ".", "CONVOWATCH_APP_ID": app_id}
    settings = Settings(topic_prefix=env["CONVOWATCH_TOPIC_PREFIX"], app_id=app_id, partitions=4)
    produce_records(bootstrap, env, tmp_path, traffic(seed=5, count=200))
    worker = make_worker(bootstrap, env)
    wait_assigned(worker)

    grown = list(input_topics(settings).values()) if inputs_only else copartitioned_topics(settings)
    grow(bootstrap, grown, 8)
    send_murmur2(bootstrap, settings, traffic(seed=6, count=200))  # records on partitions 4-7 too
    other = {"CONVOWATCH_TOPIC_PREFIX": unique_name("grow-other") + ".", "CONVOWATCH_APP_ID": other_app}
    make_worker(bootstrap, {**other, "CONVOWATCH_ROLE": "aggregate"})  # joins the group app_id
    wait_until(lambda: exited(worker), timeout=60, interval=0.25, message=worker.log_tail)
    return worker


@pytest.mark.parametrize("inputs_only", [False, True], ids=["every-topic", "inputs-only"])
def test_topics_grown_under_a_running_worker_stop_it_with_one_line_and_a_config_status(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    inputs_only: bool,
) -> None:
    worker = run_until_grown(kafka_broker.bootstrap, unique_name, make_worker, tmp_path, inputs_only)
    log = worker.log_tail(400)
    assert worker.proc is not None and worker.proc.returncode == EX_CONFIG, log
    (line,) = [line for line in log.splitlines() if "[CRITICAL]" in line]
    assert "were grown while this worker ran" in line and "CONVOWATCH_PARTITIONS is 4" in line
    prefix = worker.env["CONVOWATCH_TOPIC_PREFIX"]
    assert f"{prefix}chat.turns has 8" in line
    assert (f"{prefix}internal.observations has 8" in line) is not inputs_only
    assert "Unrecognized partition" not in log


def test_a_state_whose_every_topic_was_grown_is_refused_at_start_with_the_new_count_set(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
) -> None:
    bootstrap = kafka_broker.bootstrap
    app_id = unique_name("grown-app")
    env = {"CONVOWATCH_TOPIC_PREFIX": unique_name("grown") + ".", "CONVOWATCH_APP_ID": app_id}
    settings = Settings(topic_prefix=env["CONVOWATCH_TOPIC_PREFIX"], app_id=app_id, partitions=4)
    marker = partition_count_topic(settings)
    first = make_worker(bootstrap, env)
    wait_assigned(first)
    assert read_raw(bootstrap, marker) == [(b"partitions", b'{"partitions":4}')]
    assert first.stop() == 0
    again = make_worker(bootstrap, env)  # the same count: it starts, and records nothing more
    wait_assigned(again)
    assert again.stop() == 0
    assert len(read_raw(bootstrap, marker)) == 1

    grow(bootstrap, copartitioned_topics(settings), 8)
    grown = {**env, "CONVOWATCH_PARTITIONS": "8"}
    done = run_cli("worker", "--broker", bootstrap, "--metrics-port", "0", env=grown, timeout=90)
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"convowatch: error: this deployment's state was made with 4 partitions ({marker} says so), and its "
        "topics now have 8, as CONVOWATCH_PARTITIONS says: they were grown. convowatch cannot move its state"
    ), line
