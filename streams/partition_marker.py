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
from streams.topics import consumer_group, partition_count_topic

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


def check_partition_count(settings: Settings, timeout: float = 30.0, exists: bool = True) -> None:
    """Record ``CONVOWATCH_PARTITIONS`` if this deployment's state has no count recorded yet; raise
    :class:`ConfigError` if it has another one. Call after the topics exist and their counts were checked;
    ``exists``: the record's topic does (where a platform team creates the topics, one created before
    2026-11-26 has none, and its principal may not create it). Where the topic is missing, or the ACLs let
    this principal not read or write it, the check is off: one warning says how to turn it on, and the
    worker starts (the comparison of the topics with each other still runs)."""
    topic = partition_count_topic(settings)
    if not exists:
        log.warning(OFF, topic, "it does not exist and this principal may not create it", topic)
        return
    try:
        recorded = recorded_count(settings, topic, timeout)
        if recorded is None:
            record_count(settings, topic, timeout)
            log.info("recorded this state's partition count, %d, in %s", settings.partitions, topic)
    except NotAuthorized as exc:
        log.warning(OFF, topic, exc, topic)
        return
    if recorded is not None and recorded != settings.partitions:
        raise ConfigError(recorded_count_refusal(topic, recorded, settings.partitions))


OFF = (
    "the check of this state's partition count is off: %s: %s. Create it (compacted, 1 partition) and "
    "grant this principal READ and WRITE on %s to turn it on (README, Permissions (ACLs))"
)
#: Errors that mean the ACLs do not let this principal use the record's topic (or the role's group)
DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


class NotAuthorized(ConvowatchError):
    """The ACLs do not let this principal read or write the partition count's topic."""


def _failure(topic: str, error: KafkaError, doing: str) -> ConvowatchError:
    cls = NotAuthorized if error.code() in DENIED else ConvowatchError
    return cls(f"cannot {doing} {topic}: {error.str()}")


def recorded_count(settings: Settings, topic: str, timeout: float) -> int | None:
    """The count the last record of ``topic`` holds; None if it holds none."""
    # the role's own consumer group, whose ACL the worker has and checks (librdkafka looks its coordinator up
    # even for an assigned consumer); assigned its partition, it never joins the group nor commits
    config = admin_config(settings, **{"group.id": consumer_group(settings)})
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
                raise _failure(topic, error, "read")
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
                raise _failure(topic, error, "read") from None
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
    unsent = producer.flush(timeout)  # the delivery callbacks run in it
    if failures:
        raise _failure(topic, failures[0], "record the partition count in")
    if unsent:
        raise ConvowatchError(
            f"cannot record the partition count in {topic}: not acknowledged in {timeout:g} s"
        )
