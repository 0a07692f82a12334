"""Smoke tests for the real-broker harness (tests/support/broker.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from tests.support.broker import KafkaBroker, create_topics
from tests.support.wait import wait_until

pytestmark = pytest.mark.kafka


def test_produce_and_consume_100_keyed_messages(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("smoke")
    create_topics(kafka_broker.bootstrap, [topic], partitions=3)

    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "enable.idempotence": True})
    for i in range(100):
        producer.produce(topic, key=f"k{i:03d}".encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0, "messages still undelivered after 30s"

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": unique_name("smoke-group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}

    def drain() -> bool:
        for msg in consumer.consume(num_messages=100, timeout=0.5):
            assert msg.error() is None, msg.error()
            key, value = msg.key(), msg.value()
            assert key is not None and value is not None
            assert key not in received, f"duplicate key {key!r}"
            received[key] = value
        return len(received) >= 100

    try:
        wait_until(drain, timeout=60, interval=0, message=lambda: f"received {len(received)}/100 messages")
    finally:
        consumer.close()
    assert len(received) == 100
    assert received == {f"k{i:03d}".encode(): f"v{i}".encode() for i in range(100)}


def test_kcat_lists_topic(kafka_broker: KafkaBroker, unique_name: Callable[[str], str]) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed (run `make system`)", pytrace=False)
    topic = unique_name("kcat")
    create_topics(kafka_broker.bootstrap, [topic], partitions=2)

    res = subprocess.run(
        [kcat, "-b", kafka_broker.bootstrap, "-L", "-t", topic],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert f'topic "{topic}" with 2 partitions' in res.stdout, res.stdout
