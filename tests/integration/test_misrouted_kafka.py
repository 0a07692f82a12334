"""On a real broker: verdicts keyed by their turn id but produced with kcat's default partitioner
(librdkafka's ``consistent_random``, CRC32) are counted as misrouted by the join workers; with
``murmur2_random`` none are."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner

from tests.support.broker import KafkaBroker
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.kafka

PARTITIONS = 4  # CONVOWATCH_PARTITIONS: the worker creates the input topics with it
RECORDS = 40  # per partitioner: CRC32 and murmur2 agree on a key's partition 1 time in 4


def _kcat() -> str:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed: run `make system` (Debian package kcat)"
    return kcat


def _produce(bootstrap: str, topic: str, turn_ids: list[str], *kcat_config: str) -> None:
    """A verdict per turn id, keyed by it, sent by kcat (an outside client) with ``kcat_config``."""
    now = datetime.now(UTC).isoformat()
    lines = "".join(
        f"{t}\t"
        + json.dumps(
            {
                "turn_id": t,
                "ts": now,
                "judge_id": "j1",
                "judge_version": "v1",
                "verdicts": [{"dimension": "relevance", "label": "pass"}],
            }
        )
        + "\n"
        for t in turn_ids
    )
    args = [_kcat(), "-P", "-b", bootstrap, "-t", topic, "-K", "\t", *kcat_config]
    subprocess.run(args, input=lines, text=True, timeout=60, check=True, capture_output=True)


def _placements(bootstrap: str, topic: str) -> dict[str, int]:
    """Each record's key and the partition the broker holds it on, read back with kcat."""
    out = subprocess.run(
        [_kcat(), "-C", "-b", bootstrap, "-t", topic, "-e", "-o", "beginning", "-q", "-f", "%k\t%p\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {key: int(p) for key, p in (line.split("\t") for line in out.stdout.splitlines() if line)}


def test_records_off_their_java_partition_are_counted_and_processed(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
) -> None:
    prefix = unique_name("cw") + "."
    topic = prefix + "judge.verdicts"
    env = {
        "CONVOWATCH_TOPIC_PREFIX": prefix,
        "CONVOWATCH_APP_ID": unique_name("app"),
        "CONVOWATCH_PARTITIONS": str(PARTITIONS),
    }
    bootstrap = kafka_broker.bootstrap
    # two join workers: the one that is not the group's leader must know the partition count too
    workers = (make_worker(bootstrap, env), make_worker(bootstrap, env))

    def total(name: str, **labels: str) -> float:
        return sum(w.value(name, stream="judge_verdicts", **labels) or 0.0 for w in workers)

    def logs() -> str:
        return "\n".join(w.log_tail() for w in workers)

    def shared() -> bool:  # the input topics exist, and each worker owns some of their partitions
        owned = [w.value("convowatch_assigned_partitions", stream="judge_verdicts") for w in workers]
        return all(owned) and sum(o or 0 for o in owned) == PARTITIONS

    wait_until(shared, timeout=120, interval=0.2, message=logs)
    partitioner = DefaultPartitioner()  # aiokafka's, as Java's client: the oracle of where a key belongs
    every = list(range(PARTITIONS))

    def java(key: str) -> int:
        return int(partitioner(key.encode(), every, every))

    def valid(count: int) -> None:
        wait_until(
            lambda: total("convowatch_records_valid_total") == count,
            timeout=60,
            interval=0.2,
            message=lambda: f"valid verdicts: {total('convowatch_records_valid_total')}; {logs()}",
        )

    # Java's partitioner through librdkafka: every record where the workers expect it, none counted
    placed_right = [f"{prefix}right-{i}" for i in range(RECORDS)]
    _produce(bootstrap, topic, placed_right, "-X", "partitioner=murmur2_random")
    valid(RECORDS)
    placements = _placements(bootstrap, topic)
    assert all(placements[t] == java(t) for t in placed_right)
    assert total("convowatch_records_misrouted_total") == 0.0

    # kcat's default (CRC32 of the key): the records off their Java partition are counted, and processed
    placed_default = [f"{prefix}default-{i}" for i in range(RECORDS)]
    _produce(bootstrap, topic, placed_default)
    valid(2 * RECORDS)
    placements = _placements(bootstrap, topic)
    off = [t for t in placed_default if placements[t] != java(t)]
    assert off, "kcat's default put every key where Java's partitioner does"
    assert total("convowatch_records_misrouted_total") == len(off)
    assert all(w.value("convowatch_records_misrouted_total", stream="judge_verdicts") for w in workers)
    assert total("convowatch_records_miskeyed_total") == 0.0  # keyed right: only the new counter sees it
    assert total("convowatch_records_deadlettered_total", reason="validation_error") == 0.0
    expected = {(placements[t], java(t)) for t in off}
    for worker in workers:
        warned = [
            line for line in worker.log_tail(400).splitlines() if "Java's partitioner (murmur2)" in line
        ]
        assert len(warned) == 1, warned  # at most one a minute per stream
        found = re.search(
            rf"judge_verdicts record on partition (\d+) of {re.escape(topic)}, .* on partition (\d+) of 4",
            warned[0],
        )
        assert found, warned[0]
        assert (int(found[1]), int(found[2])) in expected
        assert "default-" not in warned[0]  # the partitions, not the record
