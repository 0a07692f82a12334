"""The worker's Faust consumer lets the broker hold a fetch for CONVOWATCH_FETCH_MAX_WAIT_SECONDS at most."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from streams.app import KafkaTransport
from streams.config import Settings
from streams.faust_consumer import PromptConsumer, PromptConsumerThread
from streams.metrics import Metrics


@pytest.mark.parametrize(
    ("role", "seconds", "expected_ms"),
    [
        ("all", None, 100),
        ("join", None, 100),
        ("aggregate", None, 100),
        ("all", 0.25, 250),
        ("join", 1.5, 1500),
    ],
)
def test_the_worker_consumer_fetches_with_the_configured_wait(
    role: str, seconds: float | None, expected_ms: int
) -> None:
    # nothing is contacted: the consumer is created, not started
    chosen = {} if seconds is None else {"fetch_max_wait_seconds": seconds}
    settings = Settings(role=role, broker="127.0.0.1:1", **chosen)
    transport = KafkaTransport(settings, Metrics(CollectorRegistry()))
    consumer = transport.app.consumer
    assert isinstance(consumer, PromptConsumer)
    thread = consumer._thread
    assert isinstance(thread, PromptConsumerThread)

    async def create() -> int:
        aiokafka_consumer = thread._create_worker_consumer(transport.app.transport)
        try:
            return int(aiokafka_consumer._fetch_max_wait_ms)
        finally:
            await aiokafka_consumer.stop()

    assert asyncio.run(create()) == expected_ms


def test_the_fetch_wait_is_validated() -> None:
    with pytest.raises(ValueError, match="fetch_max_wait_seconds"):
        Settings(fetch_max_wait_seconds=0)
