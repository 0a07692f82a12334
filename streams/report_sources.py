"""Where ``convowatch report`` reads records from: JSONL files, or the input topics on Kafka.

Both yield :data:`Item` tuples merged by event time while keeping each source (a file, a topic
partition) in its own order, which is what the aggregates' exactly-once positions expect.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from schemas import Stream
from streams.config import Settings
from streams.embedded import event_time_of, merge_by_event_time, read_jsonl
from streams.exceptions import ConvowatchError
from streams.kafka_client import check_broker, confluent_config
from streams.topics import input_topics

T = TypeVar("T")
#: Errors of a partition whose leader is not known yet (librdkafka does not mark them retriable)
LEADERLESS = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}

#: (event time, order within its source, stream, raw bytes, source, partition, offset)
Item = tuple[float, int, Stream, bytes, str, int | None, int | None]

FILE_NAMES = {
    Stream.CHAT_TURNS: "chat_turns.jsonl",
    Stream.JUDGE_VERDICTS: "judge_verdicts.jsonl",
    Stream.HUMAN_LABELS: "human_labels.jsonl",
    Stream.SIGNALS: "signals.jsonl",
}


def directory_inputs(directory: Path) -> dict[Stream, Path]:
    """The input files present in ``directory``: :data:`FILE_NAMES` (``chat_turns.jsonl``, ...)."""
    if not directory.is_dir():
        raise ConvowatchError(f"--input {directory} is not a directory")
    found = {s: directory / name for s, name in FILE_NAMES.items() if (directory / name).is_file()}
    if not found:
        raise ConvowatchError(f"--input {directory} holds none of {', '.join(FILE_NAMES.values())}")
    return found


def file_items(inputs: dict[Stream, Path]) -> Iterator[Item]:
    """Records of JSONL files, merged by event time (as ``convowatch replay`` reads them)."""
    if not inputs:
        raise ConvowatchError(
            "nothing to report on: give --input DIR, --chats/--verdicts/--labels/--signals or --from-topics"
        )
    for stream, path in inputs.items():
        if not path.is_file():
            raise ConvowatchError(f"{stream.value} file not found: {path}")
    records = merge_by_event_time(read_jsonl(path, stream) for stream, path in inputs.items())
    return ((ts, seq, stream, raw, src, None, line) for ts, seq, stream, raw, src, line in records)


def topic_items(settings: Settings, since: datetime, timeout: float = 30.0) -> Iterator[Item]:
    """Every record of the input topics from the first offset stamped at or after ``since`` to the
    end as of now, merged by event time.

    Kafka timestamps (the producer's clock) are at or after a record's event time, so no record with an
    event time at or after ``since`` is skipped; records before it are read and filtered by the report.
    The consumer has a group id of its own and never commits. Records are held in memory until every
    partition has been read (the join must see them in event-time order).
    """
    check_broker(settings, timeout=min(timeout, 10.0))
    config = confluent_config(
        settings,
        **{
            "group.id": f"{settings.app_id}-report-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        },
    )
    config.pop("partitioner")  # a producer setting
    consumer = Consumer(config)
    try:
        streams = {topic: stream for stream, topic in input_topics(settings).items()}
        ends = _assign(consumer, list(streams), int(since.timestamp() * 1000), timeout)
        read: dict[tuple[str, int], list[Item]] = {tp: [] for tp in ends}
        remaining = set(ends)
        idle_until = time.monotonic() + timeout
        while remaining:
            message = consumer.poll(0.5)
            if message is None:
                if time.monotonic() > idle_until:
                    raise ConvowatchError(
                        f"no records from {sorted(remaining)} for {timeout:.0f}s before reaching their end"
                    )
                continue
            idle_until = time.monotonic() + timeout
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard((str(topic), int(partition or 0)))
                    continue
                raise ConvowatchError(f"reading {topic} [{partition}]: {error.str()}")
            assert topic is not None and partition is not None and offset is not None  # a record has them
            end = ends[(topic, partition)]
            if offset < end:
                raw = message.value() or b""
                item = (event_time_of(raw), offset, streams[topic], raw, topic, partition, offset)
                read[(topic, partition)].append(item)
            if offset >= end - 1:
                remaining.discard((topic, partition))
    except KafkaException as exc:
        raise ConvowatchError(f"reading the input topics from {settings.broker}: {exc}") from None
    finally:
        consumer.close()
    return heapq.merge(*read.values(), key=lambda item: (item[0], item[1]))


def _retrying(call: Callable[..., T], timeout: float, *args: Any) -> T:
    """``call(*args)``, again while it fails with a retriable error (a partition's leader not elected yet, as
    just after a topic is created or a broker restarts) until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(*args)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if isinstance(error, KafkaError) else None
            if not (code in LEADERLESS or (error is not None and error.retriable())):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _assign(
    consumer: Consumer, topics: list[str], since_ms: int, timeout: float
) -> dict[tuple[str, int], int]:
    """Assign each partition from its first offset at or after ``since_ms``; the end offset of each."""
    metadata = consumer.list_topics(timeout=timeout)
    assignment, ends = [], {}
    for topic in topics:
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise ConvowatchError(
                f"input topic {topic} does not exist (check --broker / CONVOWATCH_BROKER and "
                "CONVOWATCH_TOPIC_PREFIX)"
            )
        wanted = [TopicPartition(topic, p, since_ms) for p in sorted(found.partitions)]
        for tp in _retrying(consumer.offsets_for_times, timeout, wanted, timeout):
            whole = TopicPartition(topic, tp.partition)
            _, high = _retrying(consumer.get_watermark_offsets, timeout, whole, timeout)
            start = tp.offset if tp.offset >= 0 else high  # -1: nothing stamped at or after since
            if start < high:
                assignment.append(TopicPartition(topic, tp.partition, start))
                ends[(topic, tp.partition)] = high
    consumer.assign(assignment)
    return ends
