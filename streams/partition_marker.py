"""The partition count a deployment's state was made with, kept on the cluster: ``<app id>-partition-count``.

The start-up check (:func:`streams.partition_count.startup_refusal`) compares the topics with each other and
with ``CONVOWATCH_PARTITIONS``; a deployment whose every topic was grown, the changelogs too, restarted with
``CONVOWATCH_PARTITIONS`` set to the new count passes it, and runs on a split state. So a worker keeps the
count in a compacted topic of one partition named after the app id (as the changelogs are: the same
``<app id>-`` ACLs cover it), one record, key ``partitions``: written at the first start of a state (or of a
state from before 2026-11-26), compared at every next one. A different count refuses the start.

Why a topic of its own rather than a marker entry in each changelog partition: the tables' entries are what
the views, the aggregate counts (``convowatch_aggregates``) and the join iterate, each of which would have to
pass it over, and a worker that owns only partitions the growth added finds no marker in them. Deleting the
topic gives up the check (the next start records the count of that time).
"""

from __future__ import annotations

import logging
import time

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streams.config import Settings
from streams.exceptions import ConfigError, ConvowatchError
from streams.kafka_client import admin_config, confluent_config
from streams.partition_count import recorded_count_refusal
from streams.topics import partition_count_topic

log = logging.getLogger("convowatch.partition_marker")

KEY = b"partitions"
#: What a partition just created answers for a moment
NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
}
#: Wait between reads of a partition that has no leader yet
RETRY_SECONDS = 0.1


def check_partition_count(settings: Settings, timeout: float = 30.0) -> None:
    """Record ``CONVOWATCH_PARTITIONS`` if this deployment's state has no count recorded yet; raise
    :class:`ConfigError` if it has another one. Call after the topics exist and their counts were checked."""
    topic = partition_count_topic(settings)
    recorded = recorded_count(settings, topic, timeout)
    if recorded is None:
        record_count(settings, topic, timeout)
        log.info("recorded this state's partition count, %d, in %s", settings.partitions, topic)
    elif recorded != settings.partitions:
        raise ConfigError(recorded_count_refusal(topic, recorded, settings.partitions))


def recorded_count(settings: Settings, topic: str, timeout: float) -> int | None:
    """The count the last record of ``topic`` holds; None if it holds none."""
    # a group id covered by the consumer groups' ACL; the consumer is assigned its partition and never commits
    config = admin_config(settings, **{"group.id": f"{settings.app_id}-partition-count"})
    config |= {"enable.auto.commit": False, "enable.partition.eof": True}
    consumer = Consumer(config)
    try:
        low, high = _watermarks(consumer, topic, timeout)
        if high <= low:
            return None
        consumer.assign([TopicPartition(topic, 0, low)])
        found = None
        while True:
            message = consumer.poll(timeout)
            if message is None:
                raise ConvowatchError(f"cannot read {topic}: nothing came in {timeout:g} s")
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                return found
            if error is not None:
                raise ConvowatchError(f"cannot read {topic}: {error.str()}")
            if message.key() == KEY and (value := message.value()) is not None:
                found = _count(topic, value)
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, topic: str, timeout: float) -> tuple[int, int]:
    """The first and next offsets of ``topic``'s partition; retried while a just created topic's partition has
    no leader yet (NOT_LEADER_FOR_PARTITION for a moment after the worker created it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
            return low, high
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in NO_LEADER_YET) or time.monotonic() > deadline:
                raise ConvowatchError(f"cannot read {topic}: {error.str()}") from None
        time.sleep(RETRY_SECONDS)


def _count(topic: str, value: bytes) -> int:
    try:
        count = orjson.loads(value)["partitions"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        count = None
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"{topic} holds no partition count: {value[:80]!r}; delete it to record a new one")
    return count


def record_count(settings: Settings, topic: str, timeout: float) -> None:
    """Write ``CONVOWATCH_PARTITIONS`` to ``topic`` and wait for the broker's acknowledgement."""
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    producer = Producer(confluent_config(settings, acks="all"))
    value = orjson.dumps({"partitions": settings.partitions})
    producer.produce(topic, key=KEY, value=value, partition=0, on_delivery=delivered)
    if producer.flush(timeout) or failures:
        reason = failures[0].str() if failures else f"not acknowledged in {timeout:g} s"
        raise ConvowatchError(f"cannot record the partition count in {topic}: {reason}")
