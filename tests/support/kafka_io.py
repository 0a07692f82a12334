"""Reading whole topics back in tests, with confluent-kafka."""

from __future__ import annotations

import time
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[bytes | None, Any]]:
    """Every message currently on ``topic`` (all partitions, from the beginning), as (key, decoded JSON)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining = {p for p in partitions}
        out: list[tuple[bytes | None, Any]] = []
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: partitions {sorted(remaining)} not read to the end in {timeout}s"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition())
                    continue
                raise RuntimeError(message.error().str())
            out.append((message.key(), orjson.loads(message.value())))
        return out
    finally:
        consumer.close()
