"""A restart with a backlog, with Faust's seek to committed offsets made slow (a test-only ``sitecustomize``
delays each committed-offset lookup by 50 ms; the seek looks up one partition after the other): records
fetched between Faust resuming the partitions and its seek must neither reach the agents twice nor be skipped,
on partitions with a committed offset and on partitions without one.

Without the worker's guards (streams/faust_guards.py: the flow held until the seek is done, partitions
without a committed offset moved to their beginning by the seek) the restarted worker processed records in
that window that the seek then re-delivered or dropped: duplicates, and input records committed past
unprocessed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from schemas import Stream
from streams.config import Settings
from streams.topics import input_topics
from tests.reliability.harness import BackgroundProducer, Worker, report, traffic, worker_env
from tests.support.broker import KafkaBroker
from tests.support.verify import check_outputs, committed_offsets, consumer_lag, embedded_oracle, summarise
from tests.support.wait import wait_until
from tests.support.worker import REPO

pytestmark = pytest.mark.reliability

SEED = 4242
SLOW_SEEK = {
    "PYTHONPATH": str(REPO / "tests" / "support" / "slow_seek"),
    "CONVOWATCH_TEST_COMMITTED_DELAY_SECONDS": "0.05",
}


def test_restart_reads_each_uncommitted_record_once_despite_a_slow_seek(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    prefix, app_id = unique_name("window") + ".", unique_name("window-app")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    records = traffic(SEED, duration_s=60)
    # the first worker sees no human labels: their partitions have no committed offset at the restart
    half = len(records) // 2
    first_part = [r for r in records[:half] if r[0] is not Stream.HUMAN_LABELS]
    second_part = [r for r in records[:half] if r[0] is Stream.HUMAN_LABELS] + records[half:]
    oracle = embedded_oracle(first_part + second_part, settings)
    inputs = list(input_topics(settings).values())
    observations = settings.topic("internal.observations")
    first = Worker(bootstrap, worker_env(prefix, app_id), tmp_path / "first.log")
    second = Worker(bootstrap, worker_env(prefix, app_id, **SLOW_SEEK), tmp_path / "second.log")
    try:
        first.start()
        BackgroundProducer(settings, first_part, rate=5_000).start().join()
        # the group's coordinator may not be ready yet: a transient error means "not yet"
        wait_until(
            lambda: not consumer_lag(bootstrap, app_id, [*inputs, observations]),
            timeout=90,
            ignore=(KafkaException,),
        )
        assert first.stop() == 0, first.log_tail()
        committed = committed_offsets(bootstrap, app_id, inputs)
        labels = settings.topic("human.labels")
        assert all(committed[(labels, p)] == 0 for p in range(settings.partitions))
        assert sum(committed.values()) == len(first_part)

        BackgroundProducer(settings, second_part, rate=20_000).start().join()  # a backlog for the restart
        second.start()
        wait_until(
            lambda: (
                not consumer_lag(bootstrap, app_id, [*inputs, observations])
                and all(c.ok for c in check_outputs(bootstrap, prefix, oracle).values())
            ),
            timeout=120,
            interval=1.0,
            ignore=(KafkaException,),
            message=lambda: summarise(check_outputs(bootstrap, prefix, oracle)) + second.log_tail(),
        )
        checks = check_outputs(bootstrap, prefix, oracle)
        read_again = second.records_in()
    finally:
        first.stop()
        second.stop()

    assert read_again == len(second_part)  # each uncommitted record once: none twice, none skipped
    for check in checks.values():
        assert check.duplicates == 0 or (check.topic == "escalations" and check.revisions == check.raw)
    report(
        "rebalance_window",
        {
            "records": len(records),
            "committed_before_restart": len(first_part),
            "backlog_at_restart": len(second_part),
            "restarted_worker_records_in": read_again,
            "outputs": [c.summary() for c in checks.values() if c.topic in ("defects", "escalations")],
        },
    )
