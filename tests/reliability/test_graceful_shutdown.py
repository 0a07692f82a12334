"""SIGTERM mid-stream: the worker finishes the batch in flight, flushes its producer, commits and exits 0 in
bounded time; its successor starts exactly where it stopped (no record processed twice, no output twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.config import Settings
from streams.topics import input_topics
from tests.reliability.harness import BackgroundProducer, Worker, report, traffic, wait_for_oracle, worker_env
from tests.support.broker import KafkaBroker
from tests.support.verify import (
    committed_offsets,
    embedded_oracle,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.reliability

SEED = 777
STOP_TIMEOUT = 20.0


def test_sigterm_commits_everything_processed_and_exits_0(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    prefix, app_id = unique_name("term") + ".", unique_name("term-app")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    records = traffic(SEED, duration_s=80)
    oracle = embedded_oracle(records, settings)
    inputs = list(input_topics(settings).values())
    first = Worker(bootstrap, worker_env(prefix, app_id), tmp_path / "first.log")
    second = Worker(bootstrap, worker_env(prefix, app_id), tmp_path / "second.log")
    try:
        first.start()
        producer = BackgroundProducer(settings, records, rate=1_500).start()
        seen = wait_until(lambda: (n := first.records_in()) >= len(records) // 3 and n, timeout=90)
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGTERM)
        sent_at_term = producer.sent
        started = time.monotonic()
        try:
            code = first.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running {STOP_TIMEOUT:.0f}s after SIGTERM:\n{first.log_tail()}")
        stop_seconds = time.monotonic() - started
        assert code == 0, first.log_tail()
        committed = sum(committed_offsets(bootstrap, app_id, inputs).values())
        assert committed >= seen  # all it had processed when we looked, and the batch in flight

        second.start()
        producer.join()

        checks = wait_for_oracle(settings, oracle, second)
        after_restart = second.records_in()
    finally:
        first.kill()
        second.stop()

    assert after_restart == len(records) - committed  # nothing the first worker processed came back
    for check in checks.values():
        assert check.duplicates == 0 or (check.topic == "escalations" and check.revisions == check.raw)
    report(
        "sigterm",
        {
            "records": len(records),
            "produced_at_sigterm": sent_at_term,
            "first_records_in_before_sigterm": seen,
            "committed_by_first": committed,
            "second_records_in": after_restart,
            "stop_seconds": round(stop_seconds, 2),
            "exit_code": code,
            "outputs": [c.summary() for c in checks.values() if c.topic in ("defects", "escalations")],
        },
    )
