"""The broker away longer than the producer timeout, a busy worker's batch in flight: the batch fails, and
the worker waits for the broker (its event loop turning, /healthz 200) before it exits 70 to replay it. Until
2026-11-26 it exited at once, and each restart exited 1 while the broker was away: a crash loop, which an
orchestrator backs off for minutes after the broker's return. Nothing is lost."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.app import EX_SOFTWARE
from streams.config import Settings
from tests.reliability.harness import BackgroundProducer, Worker, report, traffic, wait_for_oracle, worker_env
from tests.support.broker import KafkaBroker
from tests.support.verify import embedded_oracle
from tests.support.wait import wait_until

pytestmark = pytest.mark.reliability

SEED = 2611
PRODUCER_TIMEOUT = 8.0  # CONVOWATCH_PRODUCER_TIMEOUT_SECONDS in this test (1200 by default)
FAILED = "failed; exiting: a restart replays it"
WAITING = "waiting for the Kafka broker to answer again before exiting"


def healthz(worker: Worker) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/healthz", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"
        return int(response.status)


def test_a_batch_failed_in_an_outage_waits_for_the_broker_then_exits_70(
    kafka_broker_factory: Callable[[], KafkaBroker], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    broker = kafka_broker_factory()
    bootstrap = broker.bootstrap
    prefix, app_id = unique_name("batchdown") + ".", unique_name("batchdown-app")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    records = traffic(SEED, duration_s=120)
    oracle = embedded_oracle(records, settings)
    env = worker_env(prefix, app_id, CONVOWATCH_PRODUCER_TIMEOUT_SECONDS=str(PRODUCER_TIMEOUT))
    first = Worker(bootstrap, env, tmp_path / "first.log")
    second = Worker(bootstrap, env, tmp_path / "second.log")
    BackgroundProducer(settings, records, rate=50_000).start().join(timeout=120)  # a backlog: busy batches
    try:
        first.start()
        wait_until(lambda: first.records_in() >= len(records) // 4, timeout=120, interval=0.05)
        broker.stop()
        stopped = time.monotonic()
        wait_until(
            lambda: WAITING in first.log_path.read_text(errors="replace"),
            timeout=PRODUCER_TIMEOUT + 60,
            interval=0.2,
            message=first.log_tail,
        )
        failed_after = time.monotonic() - stopped
        log = first.log_path.read_text(errors="replace")
        assert FAILED in log
        # it waits, serving: still running and live a producer timeout later
        deadline = time.monotonic() + PRODUCER_TIMEOUT
        while time.monotonic() < deadline:
            assert first.alive(), first.log_tail()
            assert healthz(first) == 200
            time.sleep(1.0)

        broker.restart()
        answered = time.monotonic()
        assert first.proc is not None
        code = first.proc.wait(60)
        exit_after_return = time.monotonic() - answered
        assert code == EX_SOFTWARE, first.log_tail()

        second.start()
        checks = wait_for_oracle(settings, oracle, second, timeout=180)
    finally:
        first.kill()
        second.stop()

    report(
        "outage_batch_failure",
        {
            "records": len(records),
            "producer_timeout_seconds": PRODUCER_TIMEOUT,
            "batch_failed_seconds_after_broker_stop": round(failed_after, 1),
            "exit_seconds_after_broker_return": round(exit_after_return, 1),
            "outputs": [c.summary() for c in checks.values() if c.topic in ("defects", "escalations")],
        },
    )
