"""The Kafka transport: a Faust app whose agents parse, call the pure :class:`Pipeline`, and emit.

Two agents, concurrency 1 each (faust-streaming#606: concurrency > 1 can commit past in-flight events):
``join`` reads the three input topics (co-partitioned by ``turn_id``) with the join state in the
``pending`` table; ``aggregate`` reads the join's observations, repartitioned by shard key, with the
aggregates in the ``aggregates`` table. Both tables are changelogged: a restarted worker recovers them.

Each agent takes a batch, publishes its outputs, waits until the broker has acknowledged them, and only
then writes the batch's state to the changelog; Faust commits offsets after that. A crash therefore never
loses an output: it can only replay inputs whose outputs are re-published with the same keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import faust
import orjson

from streams.config import Settings
from streams.join import Emit
from streams.kafka_client import faust_credentials
from streams.metrics import Metrics
from streams.pipeline import Pipeline, dead_letter
from streams.topics import input_topics, output_topics

log = logging.getLogger("convowatch.app")


class TableStore:
    """A Faust table as a :class:`~streams.state.StateStore`: every write names its changelog partition.

    ``owned`` tells whether this worker holds a partition now; iteration skips entries of partitions it
    does not (their tombstones would go to another worker's changelog partition).
    """

    def __init__(self, table: Any, owned: Callable[[int | None], bool] | None = None) -> None:
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
        return iter([(k, v) for k, v in entries if self.owned(v.get("p"))])

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
        json_state: faust.Schema = faust.Schema(
            key_type=str,
            value_type=dict,  # type: ignore[arg-type]
            key_serializer="json",
            value_serializer="json",
        )
        pending = self.app.Table("pending", schema=json_state)
        aggregates = self.app.Table("aggregates", schema=json_state)
        self.pipeline = Pipeline(
            settings,
            metrics,
            pending_store=TableStore(pending, owned=self._owns_input_partition),
            aggregate_store=TableStore(aggregates),
            batched=True,
        )
        self.app.agent(self.inputs, name="join", concurrency=1)(self._join)
        self.app.agent(self.outputs["observations"], name="aggregate", concurrency=1)(self._aggregate)

    def _owns_input_partition(self, partition: int | None) -> bool:
        assigned = self.app.consumer.assignment()
        return any(tp.partition == partition and tp.topic in self.streams_by_topic for tp in assigned)

    async def _join(self, stream: Any) -> None:
        settings = self.settings
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_seconds):
            emits: list[Emit] = []
            with self.metrics.processing_seconds.time():
                for event in events:
                    emits.extend(self._ingest(event))
            await self._publish(emits)
            self.pipeline.joiner.flush()

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
        settings = self.settings
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_seconds):
            emits: list[Emit] = []
            for event in events:
                observation = orjson.loads(event.value)
                emits.extend(self.pipeline.aggregate(observation, event.message.partition))
            await self._publish(emits)
            self.pipeline.aggregator.flush()

    async def _publish(self, emits: list[Emit]) -> None:
        """Send every record, then wait until the broker has acknowledged all of them."""
        pending = []
        for emit in emits:
            value = orjson.dumps(emit.value)
            pending.append(await self.outputs[emit.topic].send(key=emit.key.encode(), value=value))
            self.metrics.outputs.labels(emit.topic).inc()
        if pending:
            await asyncio.gather(*pending)
        for emit in emits:
            if emit.topic == "escalations":
                for sink in self.escalation_sinks:
                    sink(emit.value)
