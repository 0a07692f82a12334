"""The input side of ``bench/throughput.py``: the seeded records, producing them to the private broker's
input topics, and reading back the topics' end offsets and a consumer group's committed offsets."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

import common  # noqa: F401  # puts the repository on sys.path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.lag import read_committed

PARTITIONS = 4
INPUT_PREFIX = "tp."
#: librdkafka's log lines (e.g. "connection refused" once the broker is stopped) go nowhere
QUIET = logging.getLogger("bench.librdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False
FILLER = (
    "Thanks for your patience. I checked your account and the latest order details, and here is what I "
    "found together with the next steps you can take in the app. "
)


def generate(n_events: int, seed: int, min_avg_bytes: int) -> list[tuple[str, bytes, bytes]]:
    """About ``n_events`` (stream, key, value) in event-time order, from the seeded traffic generator; chat
    texts padded with realistic filler when the mix would average under ``min_avg_bytes``."""
    from streams.generator import TrafficGenerator

    # turns per event-second chosen so the traffic spans ~2 event-hours: human labels (median delay 10-20
    # minutes) then arrive interleaved with turns, as in production, not all at the end
    rate = max(5.0, n_events / 2.1 / 7200)
    generator = TrafficGenerator(seed=seed, rate=rate, signals=False)  # turn-keyed streams only
    events: list[tuple[str, dict[str, Any]]] = []
    # about n_events (turn + verdict + 10% labels = 2.1 events per turn), every label kept (drained)
    for _, stream, event in generator.records(n_events / rate / 2.1, drain=True):
        events.append((stream, event))
    out = [(stream, event["turn_id"].encode(), orjson.dumps(event)) for stream, event in events]
    mean = sum(len(v) for _, _, v in out) / len(out)
    if mean < min_avg_bytes:
        turns = sum(1 for s, _, _ in out if s == "chat_turns")
        pad = int((min_avg_bytes - mean) * len(out) / max(turns, 1)) + 1
        filler = (FILLER * (pad // len(FILLER) + 1))[:pad]
        out = [
            (s, k, orjson.dumps(e | {"response_text": e["response_text"] + " " + filler}))
            if s == "chat_turns"
            else (s, k, v)
            for (s, e), (_, k, v) in zip(events, out, strict=True)
        ]
    return out


def produce_all(
    bootstrap: str, records: list[tuple[str, bytes, bytes]], prefix: str, compression: str
) -> float:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "logger": QUIET,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": compression,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    topic = {
        "chat_turns": f"{prefix}chat.turns",
        "judge_verdicts": f"{prefix}judge.verdicts",
        "human_labels": f"{prefix}human.labels",
    }
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    began = time.perf_counter()
    for stream, key, value in records:
        while True:
            try:
                producer.produce(topic[stream], value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    if left or errors:
        raise RuntimeError(f"produce failed: {left} undelivered, errors {errors[:3]}")
    return len(records) / (time.perf_counter() - began)


def input_names(prefix: str) -> list[str]:
    return [f"{prefix}chat.turns", f"{prefix}judge.verdicts", f"{prefix}human.labels"]


def end_offsets(admin: AdminClient, topics: list[str]) -> dict[tuple[str, int], int]:
    request = {TopicPartition(t, p): OffsetSpec.latest() for t in topics for p in range(PARTITIONS)}
    return {(tp.topic, tp.partition): f.result(30).offset for tp, f in admin.list_offsets(request).items()}


def committed(reader: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    """The committed offsets of ``reader``'s group (a consumer that never subscribes; the admin client's
    list_consumer_group_offsets can crash the process, see ``streams/lag.py``)."""
    wanted = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
    return {(tp.topic, tp.partition): tp.offset for tp in read_committed(reader, wanted, 30.0)}


def reached(done: dict[tuple[str, int], int], ends: dict[tuple[str, int], int]) -> bool:
    return all(done.get(tp, -1) >= end for tp, end in ends.items() if end > 0)
