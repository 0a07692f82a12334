"""Guards around Faust's acks and seeks: only records a completed batch processed are ever committed.

Faust (0.15.3) acks, and so commits, records it has not processed:

- ``take_events`` acks a batch when the agent asks for the next one, but also when an aborted iteration is
  finalised: a batch that failed or was cancelled half-way would be committed;
- a stream *skips* records that arrive while flow control is suspended during a rebalance and acks them;
- after a rebalance Faust resumes the agents' partitions, then seeks them to their committed offsets, with
  the flow already on (it turned it on to read the changelogs): records fetched in between reached the
  agents, some were dropped by the seek, and Faust, seeing the offsets jump, counted the dropped ones as
  done and committed past them;
- its seek to committed offsets leaves a partition that has none (one a worker took over before anyone
  committed on it) where it is, past any record fetched and dropped.

So the consumer's ``ack`` refuses every record of the agents' topics unless its batch completed
(:meth:`DeliveryGuard.guard_acks`); after each rebalance the flow is held until Faust's seek is done
(:meth:`DeliveryGuard.hold_flow`), and that seek moves the agents' partitions without a committed offset
to their beginning (:meth:`DeliveryGuard.guard_seeks`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any


class DeliveryGuard:
    """Guards one Faust consumer's acks and seeks for the records of ``topics`` (the agents' topics: a set
    the caller may still fill until the consumer starts)."""

    def __init__(self, topics: set[str]) -> None:
        self.topics = topics
        #: records of completed batches, the only ones whose acks reach the consumer
        self._done: weakref.WeakSet[Any] = weakref.WeakSet()

    def completed(self, messages: Iterable[Any]) -> None:
        """Mark ``messages`` (Faust messages) processed: their acks may reach the consumer now."""
        self._done.update(messages)

    def guard_acks(self, consumer: Any) -> None:
        """Make ``consumer`` refuse acks of the guarded topics' records that no completed batch processed."""
        if getattr(consumer, "convowatch_acks_guarded", False):
            return
        ack, done, topics = consumer.ack, self._done, self.topics

        def guarded_ack(message: Any) -> bool:
            if message.topic in topics and message not in done:
                return False  # skipped in a rebalance, or its batch did not complete: never commit it
            done.discard(message)
            return bool(ack(message))

        # an instance attribute: every ack (Message.ack -> consumer.ack) goes through it
        setattr(consumer, "ack", guarded_ack)  # noqa: B010
        setattr(consumer, "convowatch_acks_guarded", True)  # noqa: B010

    def guard_seeks(self, consumer: Any) -> None:
        """Make ``consumer``'s seek to committed offsets move the guarded topics' partitions that have none
        to their beginning. Faust leaves those where they are, and records fetched and dropped while a
        rebalance holds the flow would never be read again (module docstring)."""
        if getattr(consumer, "convowatch_seeks_guarded", False):
            return
        seek_to_committed, topics = consumer.seek_to_committed, self.topics

        async def guarded_seek_to_committed() -> Any:
            committed = await seek_to_committed()
            assigned = consumer.assignment()
            rewind = {
                tp: 0
                for tp, offset in committed.items()
                if (offset is None or offset <= 0) and tp.topic in topics and tp in assigned
            }
            if rewind:
                await consumer.seek_wait(rewind)
            return committed

        # an instance attribute: Faust's perform_seek (after a rebalance, or a fetch while the flow is held)
        # calls it
        setattr(consumer, "seek_to_committed", guarded_seek_to_committed)  # noqa: B010
        setattr(consumer, "convowatch_seeks_guarded", True)  # noqa: B010

    def hold_flow(self, consumer: Any) -> None:
        """After a rebalance and table recovery, before Faust resumes the agents' partitions and seeks them:
        guard the seek, and stop the flow. Faust resumed it to read the changelogs and leaves it on while it
        resumes the partitions and seeks them; records fetched in between reached the agents, and some were
        dropped and committed past (tests/reliability/test_graceful_shutdown.py). Faust resumes the flow
        after its seek."""
        self.guard_seeks(consumer)  # before Faust's first seek, which follows
        consumer.stop_flow()
