"""The broker stops mid-stream and comes back on the same ports with its data: the worker reports the outage
(metric and log), reconnects by itself within a bounded time and loses nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.config import Settings
from streams.topics import input_topics
from tests.reliability.harness import BackgroundProducer, Worker, report, traffic, worker_env
from tests.support.broker import KafkaBroker
from tests.support.verify import check_outputs, consumer_lag, embedded_oracle, summarise
from tests.support.wait import wait_until

pytestmark = pytest.mark.reliability

SEED = 31337
RECOVERY_BOUND = 60.0  # seconds from the broker answering again to the worker processing again


def test_worker_rides_out_a_broker_restart(
    kafka_broker_factory: Callable[[], KafkaBroker], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    broker = kafka_broker_factory()
    bootstrap = broker.bootstrap
    prefix, app_id = unique_name("outage") + ".", unique_name("outage-app")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    records = traffic(SEED, duration_s=80)
    oracle = embedded_oracle(records, settings)
    worker = Worker(bootstrap, worker_env(prefix, app_id), tmp_path / "worker.log")
    try:
        worker.start()
        wait_until(lambda: worker.value("convowatch_broker_connected") == 1, timeout=10)
        producer = BackgroundProducer(settings, records, rate=800).start()
        wait_until(lambda: worker.records_in() >= len(records) // 4, timeout=90, message=worker.log_tail)

        stop_called = time.monotonic()
        broker.stop()
        stopped = time.monotonic()
        before = worker.records_in()
        wait_until(
            lambda: (
                worker.value("convowatch_broker_connected") == 0
                and worker.value("convowatch_broker_outages_total") == 1
            ),
            timeout=30,
            interval=0.1,
            message=worker.log_tail,
        )
        detected = time.monotonic() - stopped

        broker.restart()
        answered = time.monotonic()
        wait_until(lambda: worker.value("convowatch_broker_connected") == 1, timeout=30, interval=0.1)
        reconnected = time.monotonic() - answered
        wait_until(
            lambda: worker.records_in() > before,
            timeout=RECOVERY_BOUND,
            interval=0.1,
            message=worker.log_tail,
        )
        resumed = time.monotonic() - answered
        producer.join(timeout=180)
        inputs = list(input_topics(settings).values())

        def done() -> bool:
            if consumer_lag(bootstrap, app_id, [*inputs, settings.topic("internal.observations")]):
                return False
            return all(c.ok for c in check_outputs(bootstrap, prefix, oracle).values())

        wait_until(
            done,
            timeout=120,
            interval=1.0,
            message=lambda: summarise(check_outputs(bootstrap, prefix, oracle)) + worker.log_tail(),
        )
        completed = time.monotonic() - answered
        checks = check_outputs(bootstrap, prefix, oracle)
        assert worker.alive() and worker.starts == 1  # it recovered by itself
        outage_metric = worker.value("convowatch_broker_last_outage_seconds")
        log = worker.log_path.read_text()
    finally:
        worker.stop()

    assert f"Kafka broker at {bootstrap} unreachable" in log
    assert f"Kafka broker at {bootstrap} reachable again after" in log
    assert outage_metric is not None and outage_metric > 0
    report(
        "broker_restart",
        {
            "records": len(records),
            "records_in_at_stop": before,
            "broker_down_seconds": round(answered - stop_called, 1),
            "worker_log_lines": log.count("\n"),
            "outage_detected_seconds": round(detected, 1),
            "outage_seconds_metric": round(outage_metric, 1),
            "reconnected_seconds_after_broker_ready": round(reconnected, 1),
            "processing_resumed_seconds_after_broker_ready": round(resumed, 1),
            "all_outputs_seconds_after_broker_ready": round(completed, 1),
            "outputs": [c.summary() for c in checks.values() if c.topic in ("defects", "escalations")],
        },
    )
