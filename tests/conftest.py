"""Shared fixtures: one real Kafka broker per test session, unique names per test.

A broker that cannot start (jars missing -> ``make kafka``, no ``java``) makes the tests that need it
FAIL with the reason; they are never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.broker import BrokerError, KafkaBroker
from tests.support.worker import WorkerProcess


def _start_broker(extra_config: Mapping[str, str] | None = None) -> KafkaBroker:
    broker = KafkaBroker(extra_config=extra_config)
    try:
        broker.start()
    except BrokerError as exc:
        reason = str(exc)
    except BaseException:
        broker.close()
        raise
    else:
        return broker
    broker.close()
    pytest.fail(f"Kafka broker could not start: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """The session's shared broker. Do not stop or restart it; use ``kafka_broker_factory`` for that."""
    broker = _start_broker()
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def kafka_broker_autocreating() -> Iterator[KafkaBroker]:
    """A broker of the requesting module's own with ``auto.create.topics.enable=true`` (Apache Kafka's
    default; the session's broker has it off): a metadata request naming a missing topic creates it, with
    the broker's ``num.partitions`` (1) and ``cleanup.policy=delete``."""
    broker = _start_broker({"auto.create.topics.enable": "true"})
    yield broker
    broker.close()


@pytest.fixture
def kafka_broker_factory() -> Iterator[Callable[[], KafkaBroker]]:
    """Factory for private, started brokers (for stop/kill/restart tests); all are closed after the test."""
    brokers: list[KafkaBroker] = []

    def make() -> KafkaBroker:
        broker = _start_broker()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Factory returning ``f"{prefix}-{8 hex chars}"``: unique topic/group names for each test."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], WorkerProcess]]:
    """Factory for real ``convowatch worker`` processes (stopped with SIGTERM after the test)."""
    workers: list[WorkerProcess] = []

    def make(bootstrap: str, env: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(bootstrap, env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker.start()

    yield make
    for worker in workers:
        worker.stop()
