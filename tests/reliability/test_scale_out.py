"""Two workers in one consumer group share the partitions; one is SIGKILLed mid-stream and the other takes
over its partitions (and their table state) without losing an output."""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.config import Settings
from streams.topics import input_topics
from tests.reliability.harness import BackgroundProducer, Worker, report, traffic, wait_for_oracle, worker_env
from tests.support.broker import KafkaBroker
from tests.support.verify import (
    agreement_from_changelog,
    committed_offsets,
    embedded_oracle,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.reliability

SEED = 424242
PARTITIONS = 4


def owned_partitions(worker: Worker) -> dict[str, list[int]]:
    """The input partitions the worker last logged as assigned to it."""
    lines = [ln for ln in worker.log_path.read_text().splitlines() if "assigned input partitions:" in ln]
    return ast.literal_eval(lines[-1].split("assigned input partitions:", 1)[1].strip())  # type: ignore[no-any-return]


def test_survivor_takes_over_a_killed_workers_partitions(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    prefix, app_id = unique_name("scale") + ".", unique_name("scale-app")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id, partitions=PARTITIONS)
    records = traffic(SEED, duration_s=120)
    oracle = embedded_oracle(records, settings)
    env = worker_env(prefix, app_id, CONVOWATCH_PARTITIONS=str(PARTITIONS))
    a = Worker(bootstrap, env, tmp_path / "a.log")
    b = Worker(bootstrap, env, tmp_path / "b.log")
    everything = len(input_topics(settings)) * PARTITIONS
    try:
        a.start()
        b.start()
        wait_until(
            lambda: a.assigned() > 0 and b.assigned() > 0 and a.assigned() + b.assigned() == everything,
            timeout=60,
            interval=0.2,
            message=lambda: f"a: {a.log_tail(10)}\nb: {b.log_tail(10)}",
        )
        split = {"a": owned_partitions(a), "b": owned_partitions(b)}
        producer = BackgroundProducer(settings, records, rate=1_500).start()

        threshold = random.Random(SEED).randint(2_000, 4_000)
        a_seen = wait_until(lambda: (n := a.records_in()) >= threshold and n, timeout=60, interval=0.02)
        a.kill()
        killed_at = time.monotonic()
        inputs = list(input_topics(settings).values())
        committed = committed_offsets(bootstrap, app_id, inputs)
        a_owned = {
            (topic, p) for stream, topic in input_topics(settings).items() for p in split["a"][stream.value]
        }
        a_committed = sum(committed[tp] for tp in a_owned)

        wait_until(lambda: b.assigned() == everything, timeout=60, interval=0.1, message=b.log_tail)
        takeover = time.monotonic() - killed_at
        producer.join()

        checks = wait_for_oracle(settings, oracle, b)
        b_records = b.records_in()
        b_pending = b.value("convowatch_join_pending_turns")
        assert agreement_from_changelog(bootstrap, app_id) == oracle.agreement
    finally:
        a.kill()
        b.stop()

    # A's last scrape can trail what it committed by a few ms of work: take the larger of the two.
    assert b_pending == oracle.pending  # the survivor holds every pending turn, its own and A's
    a_records = max(a_seen, a_committed)
    assert a_records + b_records >= len(records)
    report(
        "scale_out",
        {
            "records": len(records),
            "split_before_kill": split,
            "a_records_in_last_scrape": a_seen,
            "a_records_committed": a_committed,
            "b_records_in": b_records,
            "sum": a_records + b_records,
            "replayed": a_records + b_records - len(records),
            "takeover_seconds": round(takeover, 1),
            "outputs": [c.summary() for c in checks.values() if c.topic in ("defects", "escalations")],
        },
    )
