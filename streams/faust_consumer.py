"""Faust's aiokafka consumer with a shorter broker-side fetch wait.

Faust (0.15.3) creates its aiokafka consumer with ``fetch_max_wait_ms=1500``, hard-coded: a fetch request
the broker cannot fill at once is held up to 1.5 s. aiokafka keeps one fetch in flight per broker, for the
partitions it holds no unread records of. So when records sit on a few busy partitions, a fetch for the
quiet ones is held 1.5 s while the busy ones, their buffered records consumed, wait behind it. Observations
are keyed by shard key (a judge, ``humans``, ``review``...), so a few partitions of
``internal.observations`` carry most of them: measured with ``bench/escalation_latency.py --rate 5000
--roles split``, the aggregate worker got a fetch's worth of records (three or four batches), then nothing
for 1.1-1.3 s, over and over; it fell behind while using 30% of a core.

:class:`PromptConsumer` creates the consumer with the app's wait: ``CONVOWATCH_FETCH_MAX_WAIT_SECONDS``,
0.1 s unless set. A shorter wait costs an empty fetch round trip per broker that often when there is
nothing to read.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

#: Where :func:`use_prompt_consumer` leaves the fetch wait on the app (milliseconds)
FETCH_MAX_WAIT_ATTRIBUTE = "convowatch_fetch_max_wait_ms"


class PromptConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread; its worker consumer's fetch wait is the app's ``fetch_max_wait_ms``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka passes this to its fetcher when the consumer starts (AIOKafkaConsumer.start)
        consumer._fetch_max_wait_ms = getattr(self.app, FETCH_MAX_WAIT_ATTRIBUTE)
        return consumer

    def partition_count(self, topic: str) -> int | None:
        """``topic``'s number of partitions in the consumer's metadata; None before the consumer starts or
        learns of the topic. (Faust's ``topic_partitions`` reads the group leader's snapshot: None on the
        other workers.)"""
        consumer = self._consumer
        partitions = None if consumer is None else consumer.partitions_for_topic(topic)
        return None if partitions is None else len(partitions)


class PromptConsumer(Consumer):
    """Faust's aiokafka consumer running :class:`PromptConsumerThread`."""

    def _new_consumer_thread(self) -> PromptConsumerThread:
        return PromptConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def partition_count(self, topic: str) -> int | None:
        """``topic``'s number of partitions as this consumer knows it (None if it does not yet)."""
        thread = self._thread
        assert isinstance(thread, PromptConsumerThread)  # made by _new_consumer_thread
        return thread.partition_count(topic)


def use_prompt_consumer(app: Any, fetch_max_wait_seconds: float) -> None:
    """Make ``app`` (a Faust app on the aiokafka transport) consume with :class:`PromptConsumer`."""
    setattr(app, FETCH_MAX_WAIT_ATTRIBUTE, max(1, round(fetch_max_wait_seconds * 1000)))
    app.transport.Consumer = PromptConsumer
