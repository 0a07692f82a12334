"""The Kafka transport: a Faust app whose agents parse, call the pure :class:`Pipeline`, and emit.

Two agents, concurrency 1 each (faust-streaming#606: concurrency > 1 can commit past in-flight events):
``join`` reads the three input topics (co-partitioned by ``turn_id``) with the join state in the
``pending`` table; ``aggregate`` reads the join's pairs, repartitioned by judge and dimension, with the
agreement state in the ``agreement`` table. Both tables are changelogged: a restarted worker recovers them.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson

from streams.config import Settings
from streams.join import Emit
from streams.kafka_client import faust_credentials
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.topics import input_topics, output_topics


class KafkaTransport:
    """Builds the Faust app for ``settings``; ``pipeline`` and ``metrics`` are this worker's."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{host}" for host in settings.broker.split(",")],
            broker_credentials=faust_credentials(settings),
            store="memory://",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            processing_guarantee=settings.processing_guarantee,
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
        self.pairs = self.app.topic(
            names["pairs"], key_type=bytes, key_serializer="raw", value_serializer="json"
        )
        json_state: faust.Schema = faust.Schema(
            key_type=str,
            value_type=dict,  # type: ignore[arg-type]
            key_serializer="json",
            value_serializer="json",
        )
        self.pending = self.app.Table("pending", schema=json_state)
        self.agreement = self.app.Table("agreement", schema=json_state)
        self.pipeline = Pipeline(
            settings, metrics, pending_store=self.pending, agreement_store=self.agreement
        )
        self.app.agent(self.inputs, name="join", concurrency=1)(self._join)
        self.app.agent(self.pairs, name="aggregate", concurrency=1)(self._aggregate)

    async def _join(self, stream: Any) -> None:
        pipeline = self.pipeline
        async for event in stream.events():
            message = event.message
            with self.metrics.processing_seconds.time():
                emits = pipeline.ingest(
                    self.streams_by_topic[message.topic],
                    event.value if event.value is not None else b"",
                    source_topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                )
            for emit in emits:
                await self._publish(emit)

    async def _aggregate(self, stream: Any) -> None:
        async for pair in stream:
            self.pipeline.aggregate(pair)

    async def _publish(self, emit: Emit) -> None:
        if emit.topic == "pairs":
            await self.pairs.send(key=emit.key.encode(), value=emit.value)
        else:
            await self.outputs[emit.topic].send(key=emit.key.encode(), value=orjson.dumps(emit.value))
        self.metrics.outputs.labels(emit.topic).inc()
