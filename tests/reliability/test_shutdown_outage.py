"""SIGTERM while the broker is down: the worker cannot commit, so its stop has a deadline
(``CONVOWATCH_SHUTDOWN_TIMEOUT_SECONDS``); past it, it says why and exits 75. Nothing is lost: a worker
started once the broker is back reads what was not committed and the outputs match an embedded replay.
Before 2026-11-26 the worker still ran 60 s after SIGTERM, at about 90% of a core."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.config import Settings
from streams.shutdown import EX_TEMPFAIL
from tests.reliability.harness import BackgroundProducer, Worker, report, traffic, wait_for_oracle, worker_env
from tests.support.broker import KafkaBroker
from tests.support.verify import embedded_oracle
from tests.support.wait import wait_until

pytestmark = pytest.mark.reliability

SEED = 4242
DEADLINE = 5.0  # CONVOWATCH_SHUTDOWN_TIMEOUT_SECONDS in this test
SLACK = 10.0  # for the process to exit once the deadline passed, on a busy machine


def test_sigterm_with_the_broker_down_exits_by_the_deadline_and_loses_nothing(
    kafka_broker_factory: Callable[[], KafkaBroker], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    broker = kafka_broker_factory()
    bootstrap = broker.bootstrap
    prefix, app_id = unique_name("termdown") + ".", unique_name("termdown-app")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    records = traffic(SEED, duration_s=40)
    oracle = embedded_oracle(records, settings)
    env = worker_env(prefix, app_id, CONVOWATCH_SHUTDOWN_TIMEOUT_SECONDS=str(DEADLINE))
    first = Worker(bootstrap, env, tmp_path / "first.log")
    second = Worker(bootstrap, env, tmp_path / "second.log")
    try:
        first.start()
        wait_until(lambda: first.value("convowatch_broker_connected") == 1, timeout=30)
        producer = BackgroundProducer(settings, records, rate=800).start()
        wait_until(lambda: first.records_in() >= len(records) // 4, timeout=90, message=first.log_tail)

        broker.stop()
        wait_until(
            lambda: first.value("convowatch_broker_connected") == 0,
            timeout=30,
            interval=0.1,
            message=first.log_tail,
        )
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGTERM)
        termed = time.monotonic()
        try:
            code = first.proc.wait(DEADLINE + SLACK)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running {DEADLINE + SLACK:.0f} s after SIGTERM:\n{first.log_tail()}")
        stop_seconds = time.monotonic() - termed
        assert code == EX_TEMPFAIL, first.log_tail()
        first_log = first.log_path.read_text(errors="replace")
        assert "still stopping" in first_log and "the Kafka broker has been unreachable for" in first_log

        broker.restart()
        producer.join(timeout=180)
        second.start()
        checks = wait_for_oracle(settings, oracle, second)
    finally:
        first.kill()
        second.stop()

    report(
        "shutdown_outage",
        {
            "records": len(records),
            "deadline_seconds": DEADLINE,
            "exit_seconds_after_sigterm": round(stop_seconds, 1),
            "exit_code": code,
            "outputs": [c.summary() for c in checks.values() if c.topic in ("defects", "escalations")],
        },
    )
