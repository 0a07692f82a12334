"""What the Kafka transport's agent ``join`` does with a batch of input records: hands each to the pipeline's
join with its source position, publishes what they make state first (:mod:`streams.batch_publisher`), and
writes the join's published marks to the table ``published`` (Delivery guarantee in the README).

The Faust agent around it (taking batches, committing their records, exiting on a failed batch) and the
tables are :class:`streams.app.KafkaTransport`'s.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from typing import Any

import faust

from schemas import Stream
from streams.batch_publisher import BatchPublisher, note_sources
from streams.emit import Emit
from streams.faust_consumer import PromptConsumer
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.tables import TableStore

#: Most bytes of an input record's key a dead letter keeps (its size is kept whole)
MAX_KEY_BYTES = 10_000
#: How often the join writes its published marks (Delivery guarantee in the README): one record per input
#: partition each time. Every batch would add about 6% to the records the join writes, at small batches.
PUBLISHED_MARKS_SECONDS = 0.25


class JoinAgent:
    """Joins the batches of ``app``'s agent ``join``: records of the input topics ``streams_by_topic``
    (Kafka name: stream) and of ``review_keep_topic``, with the join's state in ``pending`` and its
    published marks in ``published``."""

    def __init__(
        self,
        app: faust.App,
        pipeline: Pipeline,
        metrics: Metrics,
        publisher: BatchPublisher,
        pending: TableStore,
        published: TableStore,
        streams_by_topic: dict[str, Stream],
        review_keep_topic: str,
    ) -> None:
        self.app = app
        self.pipeline = pipeline
        self.metrics = metrics
        self.publisher = publisher
        self.pending = pending
        self.published = published
        self.streams_by_topic = streams_by_topic
        self.review_keep_topic = review_keep_topic
        self._marks_written_at = 0.0
        #: the input topics' partition counts, read from the consumer once a batch (a topic may grow)
        self._partition_counts: dict[str, int | None] = {}

    async def process(self, events: Sequence[Any]) -> None:
        """Join ``events`` and publish what they make, state first. An entry keeping too much of the batch's
        outputs (:attr:`~streams.join.TurnJoiner.must_publish`) has them published before the rest is
        joined, as if the batch ended there (its offsets are still committed at the end only)."""
        joiner = self.pipeline.joiner
        emits: list[Emit] = []
        sources: dict[str, tuple[str, int]] = {}  # escalation id -> input partition
        spent, began = 0.0, time.perf_counter()  # joining only, not the waits for the broker
        self._partition_counts.clear()
        for event in events:
            out = self.ingest(event)
            emits.extend(out)
            note_sources(sources, out, event.message)
            if joiner.must_publish:
                spent += time.perf_counter() - began
                await self._publish(emits, sources, part_way=True)
                emits, sources, began = [], {}, time.perf_counter()
        self.metrics.processing_seconds.observe(spent + time.perf_counter() - began)
        await self._publish(emits, sources)

    async def _publish(
        self, emits: list[Emit], sources: dict[str, tuple[str, int]], *, part_way: bool = False
    ) -> None:
        """Publish what the join made, state first. ``part_way`` (the batch goes on): the published marks too,
        awaited now: within one batch the join counts on the batch's state to know the records an entry
        evicted and made anew took (streams.kept_outputs), which a publish part-way writes out; the marks
        keep a replay from joining those records again."""
        joiner = self.pipeline.joiner
        # the last positions given to evictions' outputs: awaited with the state, before the outputs
        await self._write_marks(joiner.eviction_marks())
        await self.publisher.publish(emits, joiner.flush, self.pending, sources, state_first=True)
        joiner.published()
        if part_way:
            self._marks_written_at = time.monotonic()
            await self._write_marks(joiner.published_marks(), now=True)
        elif (now := time.monotonic()) - self._marks_written_at >= PUBLISHED_MARKS_SECONDS:
            self._marks_written_at = now
            # sent now, awaited with the next batch's state: a crash while that batch is processed finds
            # the marks written, and re-publishes none of this batch's outputs
            await self._write_marks(joiner.published_marks())

    async def _write_marks(self, marks: dict[str, int], *, now: bool = False) -> None:
        """Send the join's ``marks`` (source: offset or position) to the ``published`` table, each to the
        changelog partition of its source's partition; awaited with the next state written, or ``now``."""
        if not marks:  # most batches evict nothing that publishes
            return
        for source, offset in marks.items():
            self.published.put(source, offset, int(source.rsplit(":", 1)[1]))
        sent = await self.published.send(self.app.producer)
        if now:
            await asyncio.gather(*sent)
        else:
            self.publisher.awaited_with_state.extend(sent)

    def published_through(self, owned: set[int]) -> dict[str, int]:
        """The recovered marks of the input partitions ``owned``: the offsets through which the join's
        outputs are published, and the last positions given to its evictions' outputs."""
        return {
            source: offset
            for source, offset in self.published.table.data.items()
            if int(source.rsplit(":", 1)[1]) in owned
        }

    def partition_count(self, topic: str) -> int | None:
        """``topic``'s number of partitions as the consumer knows it (None if it does not): the pipeline
        counts the records keyed right but on another partition than Java's partitioner gives their key."""
        if topic not in self._partition_counts:
            consumer = self.app.consumer
            known = consumer.partition_count(topic) if isinstance(consumer, PromptConsumer) else None
            self._partition_counts[topic] = known
        return self._partition_counts[topic]

    def ingest(self, event: Any) -> list[Emit]:
        """Hand one input record to the pipeline; a dead letter it makes gets the record's key."""
        message = event.message
        raw = event.value if event.value is not None else b""
        if message.topic == self.review_keep_topic:
            emits = self.pipeline.keep_for_review(
                raw, source_topic=message.topic, partition=message.partition, offset=message.offset
            )
        else:
            emits = self.pipeline.ingest(
                self.streams_by_topic[message.topic],
                raw,
                source_topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                partitions=self.partition_count(message.topic),
            )
        # the record's key is part of its dead letter too (first: a record the join refused may publish the
        # gold observations of its labels after it)
        if emits and emits[0].topic == "deadletter":
            key, dead = message.key, emits[0].value
            # cut like a long detail: the dead letter must fit a producer request
            kept = None if key is None else base64.b64encode(key[:MAX_KEY_BYTES]).decode()
            dead["original_key_base64"], dead["original_key_size"] = kept, None if key is None else len(key)
            dead["tombstone"] = event.value is None
        return emits
