"""The Kafka transport: a Faust app whose agents parse, call the pure :class:`Pipeline`, and emit.

Two agents, concurrency 1 each (faust-streaming#606: concurrency > 1 can commit past in-flight events):
``join`` reads the three input topics (co-partitioned by ``turn_id``) with the join state in the
``pending`` table; ``aggregate`` reads the join's observations, repartitioned by shard key, with the
aggregates in the ``aggregates`` table. Both tables are changelogged: a restarted worker recovers them.

Each agent takes a batch, publishes its outputs, waits until the broker has acknowledged them, and only
then writes the batch's state to the changelog; Faust commits offsets after that. A crash therefore never
loses an output: it can only replay inputs whose outputs are re-published with the same keys.

Faust (0.15.3) acks, and so commits, records it has not processed in two places, which this module guards:

- ``take_events`` acks a batch when the agent asks for the next one, but also when an aborted iteration is
  finalised: a batch that failed or was cancelled half-way would be committed;
- a stream *skips* records that arrive while flow control is suspended during a rebalance and acks them;
  the seek to committed offsets that follows rewinds only partitions that have a committed offset, so on a
  partition nobody has committed yet (one that a worker took over before its first commit) the skipped
  records were never read again: lost.

So the consumer's ``ack`` refuses every record of our agents' topics unless its batch completed
(:meth:`KafkaTransport._guard_acks`), and after each rebalance the agents' partitions are rewound to their
beginning before Faust seeks them to their committed offsets (:meth:`KafkaTransport._on_rebalance_complete`).
A batch that fails for any reason but a cancellation ends the process (exit status 70) before anything more
is committed; the restarted worker replays it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import faust
import orjson

from detectors import AgreementTracker
from streams.config import Settings
from streams.emit import SEP, Emit
from streams.kafka_client import faust_credentials
from streams.metrics import Metrics
from streams.pipeline import Pipeline, dead_letter
from streams.topics import input_topics, output_topics

log = logging.getLogger("convowatch.app")

#: Largest record the worker publishes; Faust's producer refuses requests over 1,000,000 bytes.
MAX_OUTPUT_BYTES = 900_000
EX_SOFTWARE = 70  # sysexits.h: internal software error


class TableStore:
    """A Faust table as a :class:`~streams.state.StateStore`: every write names its changelog partition.

    ``owned`` gives the partitions this worker holds now; iteration skips entries of other partitions
    (their tombstones would go to another worker's changelog partition).
    """

    serialises = True

    def __init__(self, table: Any, owned: Callable[[], set[int]] | None = None) -> None:
        self.table = table
        self.owned = owned

    def get(self, key: str) -> Any:
        return self.table.data.get(key)

    def put(self, key: str, value: Any, partition: int | None) -> None:
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    def delete(self, key: str, partition: int | None) -> None:
        self.table.data.pop(key, None)
        self.table.send_changelog(partition, key, None, value_serializer="raw")

    def items(self) -> Iterator[tuple[str, Any]]:
        entries = list(self.table.data.items())
        if self.owned is None:
            return iter(entries)
        owned = self.owned()
        return iter([(k, v) for k, v in entries if v.get("p") in owned])

    def drop_unowned(self) -> int:
        """Forget entries of partitions this worker no longer holds (after a rebalance); how many."""
        if self.owned is None:
            return 0
        owned = self.owned()
        stale = [k for k, v in self.table.data.items() if v.get("p") not in owned]
        for key in stale:
            self.table.data.pop(key, None)
        return len(stale)

    def __len__(self) -> int:
        return len(self.table.data)


class KafkaTransport:
    """Builds the Faust app for ``settings``; ``pipeline`` and ``metrics`` are this worker's."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        escalation_sinks: list[Callable[[dict[str, Any]], None]] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        #: called with each escalation once the broker has acknowledged it (e.g. the Alertmanager sink)
        self.escalation_sinks = escalation_sinks or []
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{host}" for host in settings.broker.split(",")],
            broker_credentials=faust_credentials(settings),
            store="memory://",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            processing_guarantee=settings.processing_guarantee,
            broker_commit_interval=settings.commit_interval_seconds,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=settings.heartbeat_interval_seconds,
            # No standby replicas: they would fill ``pending`` with other workers' turns, which its size
            # (the join's cap, convowatch_join_pending_turns) must not count. A worker taking partitions
            # over reads their (compacted) changelogs instead.
            table_standby_replicas=0,
            web_enabled=False,
            autodiscover=False,
        )
        raw: faust.Schema = faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        self.streams_by_topic = {name: stream for stream, name in input_topics(settings).items()}
        self.inputs = self.app.topic(*self.streams_by_topic, schema=raw)
        names = output_topics(settings)
        self.outputs = {logical: self.app.topic(name, schema=raw) for logical, name in names.items()}
        # value_type None: plain JSON values. With ``dict``, Faust calls ``dict.from_data`` on every changelog
        # record during recovery; each fails (logged as "Error in recovery"), so a restarted worker never
        # recovered its tables and recovery never completed.
        json_state: faust.Schema = faust.Schema(
            key_type=str, value_type=None, key_serializer="json", value_serializer="json"
        )
        self.pending = TableStore(self.app.Table("pending", schema=json_state), owned=self._input_partitions)
        self.aggregates = aggregates = self.app.Table("aggregates", schema=json_state)
        self.pipeline = Pipeline(
            settings,
            metrics,
            pending_store=self.pending,
            aggregate_store=TableStore(aggregates),
            batched=True,
        )
        self.app.agent(self.inputs, name="join", concurrency=1)(self._join)
        self.app.agent(self.outputs["observations"], name="aggregate", concurrency=1)(self._aggregate)
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)
        #: records of completed batches, the only ones whose acks reach the consumer (see _guard_acks)
        self._done: weakref.WeakSet[Any] = weakref.WeakSet()
        self._agent_topics = {*self.streams_by_topic, self.outputs["observations"].get_topic_name()}

    def _input_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in self.streams_by_topic}

    async def _join(self, stream: Any) -> None:
        self._guard_acks()
        settings = self.settings
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_seconds):
            with self._batch(events, "join"):
                emits: list[Emit] = []
                with self.metrics.processing_seconds.time():
                    for event in events:
                        emits.extend(self._ingest(event))
                await self._publish(emits)
                self.pipeline.joiner.flush()

    @contextmanager
    def _batch(self, events: Sequence[Any], stage: str) -> Iterator[None]:
        """Mark ``events`` done (ackable: :meth:`_guard_acks`) once the block completes; exit if it fails."""
        try:
            yield
        except Exception:
            first = events[0].message
            log.critical(
                "%s: batch of %d records from %s[%d]@%d failed; exiting: a restart replays it",
                stage,
                len(events),
                first.topic,
                first.partition,
                first.offset,
                exc_info=True,
            )
            logging.shutdown()
            os._exit(EX_SOFTWARE)
        self._done.update(event.message for event in events)

    def _guard_acks(self) -> None:
        """Make the consumer refuse acks of our agents' records that no completed batch processed."""
        consumer = self.app.consumer
        if getattr(consumer, "convowatch_guarded", False):
            return
        ack, done, topics = consumer.ack, self._done, self._agent_topics

        def guarded_ack(message: Any) -> bool:
            if message.topic in topics and message not in done:
                return False  # skipped in a rebalance, or its batch did not complete: never commit it
            done.discard(message)
            return bool(ack(message))

        # an instance attribute: every ack (Message.ack -> consumer.ack) goes through it
        setattr(consumer, "ack", guarded_ack)  # noqa: B010
        setattr(consumer, "convowatch_guarded", True)  # noqa: B010

    def _ingest(self, event: Any) -> list[Emit]:
        message = event.message
        stream = self.streams_by_topic[message.topic]
        raw = event.value if event.value is not None else b""
        try:
            return self.pipeline.ingest(
                stream, raw, source_topic=message.topic, partition=message.partition, offset=message.offset
            )
        except Exception as exc:  # a bug must not stop the worker or lose the record
            log.exception("internal error on %s[%d]@%d", message.topic, message.partition, message.offset)
            self.metrics.records_deadlettered.labels(stream.value, "internal_error").inc()
            detail = f"{type(exc).__name__}: {exc}"
            return [
                dead_letter(
                    stream, raw, "internal_error", detail, message.topic, message.partition, message.offset
                )
            ]

    async def _aggregate(self, stream: Any) -> None:
        self._guard_acks()
        settings = self.settings
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_seconds):
            with self._batch(events, "aggregate"):
                emits: list[Emit] = []
                for event in events:
                    message = event.message
                    try:
                        observation = orjson.loads(event.value)
                        emits.extend(self.pipeline.aggregate(observation, message.partition))
                    except Exception:  # a bug (observations are ours): log where, count, go on
                        log.exception(
                            "internal error on %s[%d]@%d", message.topic, message.partition, message.offset
                        )
                        self.metrics.internal_errors.labels("aggregate").inc()
                await self._publish(emits)
                self.pipeline.aggregator.flush()

    async def _publish(self, emits: list[Emit]) -> None:
        """Send every record, then wait until the broker has acknowledged all of them."""
        pending = []
        for emit in emits:
            value = orjson.dumps(emit.value)
            if emit.topic == "deadletter" and len(value) > MAX_OUTPUT_BYTES:
                value = truncated_dead_letter(emit.value)
            pending.append(await self.outputs[emit.topic].send(key=emit.key.encode(), value=value))
            self.metrics.outputs.labels(emit.topic).inc()
        if pending:
            await asyncio.gather(*pending)
        for emit in emits:
            if emit.topic == "escalations":
                for sink in self.escalation_sinks:
                    try:
                        sink(emit.value)
                    except Exception:  # a sink is a notification: it must not stop or replay the stream
                        log.exception("escalation sink %r failed on %s", sink, emit.key)

    # -- rebalances ----------------------------------------------------------------------------------

    async def _on_rebalance_complete(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """After a rebalance and table recovery, before Faust seeks to committed offsets and resumes: rewind
        the agents' partitions (module docstring), report what this worker owns, export its figures."""
        consumer = self.app.consumer
        assigned = consumer.assignment()
        # Faust's seek that follows moves partitions with a committed offset on to it (in the consumer thread)
        await consumer.seek_wait({tp: 0 for tp in assigned if tp.topic in self._agent_topics})
        owned: dict[str, list[int]] = {}
        for stream_topic, stream in self.streams_by_topic.items():
            partitions = sorted(tp.partition for tp in assigned if tp.topic == stream_topic)
            self.metrics.assigned_partitions.labels(stream.value).set(len(partitions))
            owned[stream.value] = partitions
        log.warning("assigned input partitions: %s", owned)
        if dropped := self.pending.drop_unowned():
            log.info("dropped %d pending turns of partitions now owned by other workers", dropped)
        self._export_agreement(
            {tp.partition for tp in assigned if tp.topic == self.outputs["observations"].get_topic_name()}
        )

    def _export_agreement(self, partitions: set[int]) -> None:
        """Agreement gauges from the recovered table, for the aggregates this worker owns now only: a
        restarted worker shows its figures before new pairs arrive, a worker that lost them stops showing
        stale ones."""
        m = self.metrics
        for gauge in (m.agreement_ratio, m.cohen_kappa, m.agreement_pairs):
            gauge.clear()
        topic = self.outputs["observations"].get_topic_name()
        for key, value in list(self.aggregates.data.items()):
            kind, *parts = key.split(SEP)
            if kind != "agreement" or len(parts) != 2:
                continue
            judge_id, dimension = parts
            if self.app.producer.key_partition(topic, judge_id.encode()).partition not in partitions:
                continue
            tracker = AgreementTracker.from_dict(value["detector"])
            labels = (m.label("judge_id", judge_id), m.label("dimension", dimension))
            m.agreement_ratio.labels(*labels).set(tracker.percent_agreement)
            m.cohen_kappa.labels(*labels).set(tracker.cohen_kappa)
            m.agreement_pairs.labels(*labels).set(tracker.n)


def truncated_dead_letter(value: dict[str, Any]) -> bytes:
    """A dead letter too large to publish, with its original cut to fit; ``detail`` says so and gives the
    SHA-256 of the whole original (``original_size`` keeps its size; the source position finds it)."""
    original = base64.b64decode(value["original_base64"])
    keep = MAX_OUTPUT_BYTES // 2
    digest = hashlib.sha256(original).hexdigest()
    return orjson.dumps(
        value
        | {
            "detail": f"{value['detail']} [original truncated to its first {keep} of {len(original)} bytes; "
            f"sha256 of the whole original {digest}]",
            "original_base64": base64.b64encode(original[:keep]).decode("ascii"),
        }
    )
