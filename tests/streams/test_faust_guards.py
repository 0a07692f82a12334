"""DeliveryGuard's logic on a stand-in consumer; the real-broker cases are in tests/reliability
(test_rebalance_window.py, test_graceful_shutdown.py, test_crash_recovery.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP

from streams.faust_guards import DeliveryGuard


class Message:
    """A Faust message as the guard sees it: a topic, hashable by identity, weakly referenceable."""

    def __init__(self, topic: str) -> None:
        self.topic = topic


class Consumer:
    """The part of Faust's consumer the guard wraps, recording what reaches it."""

    def __init__(self, committed: dict[TP, int | None], assigned: set[TP]) -> None:
        self.acked: list[Message] = []
        self.sought: list[dict[TP, int]] = []
        self.flowing = True
        self._committed = committed
        self._assigned = assigned

    def ack(self, message: Message) -> bool:
        self.acked.append(message)
        return True

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return dict(self._committed)

    def assignment(self) -> set[TP]:
        return self._assigned

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.sought.append(offsets)

    def stop_flow(self) -> None:
        self.flowing = False


def test_acks_of_the_agents_records_reach_the_consumer_only_once_their_batch_completed() -> None:
    consumer = Consumer({}, set())
    guard = DeliveryGuard({"inputs"})
    guard.guard_acks(consumer)
    processed, skipped, other = Message("inputs"), Message("inputs"), Message("elsewhere")

    assert consumer.ack(processed) is False  # its batch has not completed
    guard.completed([processed])
    assert consumer.ack(processed) is True
    assert consumer.ack(skipped) is False  # skipped in a rebalance: never completed
    assert consumer.ack(other) is True  # not an agent's topic: not guarded
    assert consumer.acked == [processed, other]
    assert consumer.ack(processed) is False  # an ack is let through once


def test_guarding_twice_wraps_the_consumer_once() -> None:
    consumer = Consumer({}, set())
    guard = DeliveryGuard({"inputs"})
    guard.guard_acks(consumer)
    guard.guard_acks(consumer)
    message = Message("inputs")
    guard.completed([message])
    assert consumer.ack(message) is True
    assert consumer.acked == [message]


def test_topics_added_after_the_guard_is_made_are_guarded() -> None:
    topics: set[str] = set()
    guard = DeliveryGuard(topics)
    consumer = Consumer({}, set())
    guard.guard_acks(consumer)
    topics.add("observations")  # the guard reads the set it was given, not a copy
    assert consumer.ack(Message("observations")) is False


def test_the_seek_moves_assigned_agent_partitions_without_a_committed_offset_to_their_beginning() -> None:
    never, zero, committed = TP("inputs", 0), TP("inputs", 1), TP("inputs", 2)
    other, gone = TP("elsewhere", 0), TP("inputs", 3)
    consumer = Consumer(
        {never: None, zero: 0, committed: 17, other: None, gone: None},
        assigned={never, zero, committed, other},
    )
    guard = DeliveryGuard({"inputs"})
    guard.hold_flow(consumer)
    assert consumer.flowing is False

    seek: Any = consumer.seek_to_committed
    result = asyncio.run(seek())

    assert result[committed] == 17  # Faust's own seek result is returned unchanged
    assert consumer.sought == [{never: 0, zero: 0}]


def test_the_seek_leaves_partitions_alone_when_all_have_committed_offsets() -> None:
    consumer = Consumer({TP("inputs", 0): 5}, assigned={TP("inputs", 0)})
    DeliveryGuard({"inputs"}).guard_seeks(consumer)
    seek: Any = consumer.seek_to_committed
    asyncio.run(seek())
    assert consumer.sought == []
