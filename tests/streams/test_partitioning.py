"""Records keyed by their turn id on another partition than Java's partitioner gives their key."""

from __future__ import annotations

import logging
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.config import Settings
from streams.metrics import Metrics
from streams.partitioning import PlacementCheck, java_partition, murmur2
from streams.pipeline import Pipeline
from tests.factories import chat_turn, judge_verdict, raw, signal, verdict

#: ``Utils.murmur2`` of Kafka's Java client (3.9.1, run on these keys), as signed ints
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2.items())
def test_murmur2_is_the_java_clients(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected & 0xFFFFFFFF


def test_java_partition_is_aiokafkas_default_partitioner_for_any_key_and_partition_count() -> None:
    rng = random.Random(7)
    partitioner = DefaultPartitioner()
    for _ in range(3000):
        key = rng.randbytes(rng.randrange(0, 300))  # every tail length, bytes above 0x7f
        partitions = list(range(rng.choice([1, 2, 3, 4, 6, 12, 48])))
        assert java_partition(key, len(partitions)) == partitioner(key, partitions, partitions)


def _pipeline() -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(), metrics=Metrics(registry)), registry


def _misrouted(registry: CollectorRegistry, stream: str) -> float | None:
    return registry.get_sample_value("convowatch_records_misrouted_total", {"stream": stream})


def test_a_record_on_another_partition_than_javas_counts_as_misrouted_and_is_joined() -> None:
    pipeline, registry = _pipeline()
    key = b"t-route"
    right = java_partition(key, 4)
    wrong = (right + 1) % 4
    assert _misrouted(registry, "chat_turns") == 0.0  # exported before the first one
    failing = judge_verdict(turn_id="t-route", verdicts=[verdict("relevance", "fail")])

    turn = raw(chat_turn(turn_id="t-route"))
    out = pipeline.ingest(Stream.CHAT_TURNS, turn, source_topic="in", partition=right, key=key, partitions=4)
    assert _misrouted(registry, "chat_turns") == 0.0
    out += pipeline.ingest(
        Stream.JUDGE_VERDICTS, raw(failing), source_topic="in", partition=wrong, key=key, partitions=4
    )
    assert _misrouted(registry, "judge_verdicts") == 1.0 and _misrouted(registry, "chat_turns") == 0.0
    # processed as ever: one worker owning both partitions joins them (the defect knows the turn's journey)
    assert all(e.topic != "deadletter" for e in out)
    [defect] = [e.value for e in out if e.topic == "defects"]
    assert defect["segment"]["journey"] == "billing"


def test_a_record_is_checked_only_when_keyed_by_its_turn_with_the_partition_count_known() -> None:
    pipeline, registry = _pipeline()

    def wrong(key: bytes) -> int:
        return (java_partition(key, 4) + 1) % 4

    turn = raw(chat_turn(turn_id="t-x"))
    # miskeyed: counted as such, not as misrouted
    pipeline.ingest(Stream.CHAT_TURNS, turn, source_topic="in", partition=wrong(b"c"), key=b"c", partitions=4)
    # no partition count: a file, a consumer without the topic's metadata
    pipeline.ingest(Stream.CHAT_TURNS, turn, source_topic="in", partition=wrong(b"t-x"), key=b"t-x")
    # a signal is observed alone: its partition does not matter
    sig = raw(signal(conversation_id="c-9"))
    pipeline.ingest(Stream.SIGNALS, sig, source_topic="in", partition=wrong(b"c-9"), key=b"c-9", partitions=4)
    assert _misrouted(registry, "chat_turns") == 0.0 and _misrouted(registry, "signals") == 0.0
    assert registry.get_sample_value("convowatch_records_miskeyed_total", {"stream": "chat_turns"}) == 1.0


def test_misrouted_records_are_logged_once_a_minute_per_stream_without_their_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    registry = CollectorRegistry()
    check = PlacementCheck(Metrics(registry), clock=lambda: now[0])
    key = b"secret-turn-id"
    right = java_partition(key, 8)
    wrong = (right + 3) % 8
    with caplog.at_level(logging.WARNING, logger="convowatch.partitioning"):
        assert check.check(Stream.HUMAN_LABELS, key, "cw.human.labels", right, 8)
        for _ in range(3):
            assert not check.check(Stream.HUMAN_LABELS, key, "cw.human.labels", wrong, 8)
        assert not check.check(Stream.JUDGE_VERDICTS, key, "cw.judge.verdicts", wrong, 8)  # its own minute
        now[0] += 59.0
        assert not check.check(Stream.HUMAN_LABELS, key, "cw.human.labels", wrong, 8)
        now[0] += 1.0
        assert not check.check(Stream.HUMAN_LABELS, key, "cw.human.labels", wrong, 8)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    first, verdicts, later = messages
    assert first.startswith(f"human_labels record on partition {wrong} of cw.human.labels")
    assert f"puts its key on partition {right} of 8 (0 more" in first
    assert verdicts.startswith("judge_verdicts record")
    assert "(3 more such records since the last warning)" in later
    assert all("secret" not in m for m in messages)
    assert registry.get_sample_value("convowatch_records_misrouted_total", {"stream": "human_labels"}) == 5.0
