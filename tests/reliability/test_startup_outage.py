"""A worker started while the broker is away waits for it: live (/healthz 200, the heartbeat's limit cut to
5 s), not ready (/readyz names the broker it waits for), convowatch_broker_connected 0; once the broker
answers it starts and its outputs match an embedded replay of the same input. Until 2026-11-26 it exited 1
after about 10 s: in Kubernetes a crash loop, backed off for up to 5 minutes after the broker's return."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings
from tests.reliability.harness import BackgroundProducer, Worker, report, traffic, wait_for_oracle, worker_env
from tests.support.broker import KafkaBroker
from tests.support.verify import embedded_oracle
from tests.support.wait import wait_until
from tests.support.worker import health_response

pytestmark = pytest.mark.reliability

SEED = 2726
#: The worker is held waiting past this many seconds, the time after which it exited 1 until 2026-11-26
OLD_EXIT_SECONDS = 10.0


def health(worker: Worker, path: str) -> tuple[int, dict[str, Any]]:
    return health_response(worker.metrics_port, path)


def waiting_seconds(worker: Worker, address: str) -> float:
    """How long ``worker`` says it has waited for the broker, after checking it waits as it should."""
    assert worker.alive(), worker.log_tail()
    live, body = health(worker, "/healthz")
    assert live == 200, body
    ready, body = health(worker, "/readyz")
    assert ready == 503, body
    reason = body["checks"].get("broker", "")
    assert f"s for the Kafka broker at {address} to answer" in reason, (body, worker.log_tail())
    assert worker.value("convowatch_broker_connected") == 0
    return float(reason.removeprefix("waiting ").split("s for the Kafka broker")[0])


def test_a_worker_started_while_the_broker_is_away_waits_then_processes_input(
    unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    broker = KafkaBroker()  # not started: nothing answers on its port yet
    address = broker.bootstrap
    prefix, app_id = unique_name("startdown") + ".", unique_name("startdown-app")
    settings = Settings(broker=address, topic_prefix=prefix, app_id=app_id)
    records = traffic(SEED, duration_s=5)
    env = worker_env(prefix, app_id, CONVOWATCH_HEALTH_STALL_SECONDS="5")
    worker = Worker(address, env, tmp_path / "worker.log")
    try:
        worker.start()
        began = time.monotonic()
        oracle = embedded_oracle(records, settings)  # meanwhile
        wait_until(
            lambda: waiting_seconds(worker, address) > OLD_EXIT_SECONDS,
            timeout=OLD_EXIT_SECONDS + 20,
            interval=0.5,
            message=worker.log_tail,
        )
        waited = time.monotonic() - began
        broker.start()
        answered = time.monotonic()
        producer = BackgroundProducer(settings, records, rate=20_000).start()  # as the worker starts
        wait_until(
            lambda: health(worker, "/readyz")[0] == 200,
            timeout=60,
            interval=0.2,
            ignore=(OSError,),
            message=lambda: f"{health(worker, '/readyz')}\n{worker.log_tail()}",
        )
        ready_after = time.monotonic() - answered
        producer.join(timeout=60)
        checks = wait_for_oracle(settings, oracle, worker, timeout=60)
        outputs_after = time.monotonic() - answered
        log = worker.log_path.read_text(errors="replace")
        assert f"Kafka broker at {address} does not answer (" in log
        assert f"Kafka broker at {address} answered after " in log
        assert worker.alive(), worker.log_tail()  # the same process: no exit, no restart
    finally:  # killed: what is checked is done, and CI is near its time limit
        worker.kill()
        broker.kill()
        broker.close()

    report(
        "startup_outage",
        {
            "records": len(records),
            "waited_seconds_before_broker_start": round(waited, 1),
            "broker_start_seconds": round(answered - began - waited, 1),
            "ready_seconds_after_broker_answered": round(ready_after, 1),
            "outputs_complete_seconds_after_broker_answered": round(outputs_after, 1),
            "outputs": [c.summary() for c in checks.values() if c.topic in ("defects", "escalations")],
        },
    )
