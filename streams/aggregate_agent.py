"""What the Kafka transport's agent ``aggregate`` does with a batch of observation packs
(:mod:`streams.observation_packs`): applies each observation to the aggregates, and publishes what they make
(:mod:`streams.batch_publisher`), outputs first, then the state.

The Faust agent around it (taking batches, committing their records, exiting on a failed batch) and the
table ``aggregates`` are :class:`streams.app.KafkaTransport`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from streams.batch_publisher import BatchPublisher, note_sources
from streams.emit import Emit
from streams.metrics import Metrics
from streams.observation_packs import positioned, unpack
from streams.pipeline import Pipeline
from streams.tables import TableStore

log = logging.getLogger("convowatch.app")  # the Kafka transport's: its agents log as the app


class AggregateAgent:
    """Aggregates the batches of agent ``aggregate``, with the aggregates in ``aggregate_store``."""

    def __init__(
        self, pipeline: Pipeline, metrics: Metrics, publisher: BatchPublisher, aggregate_store: TableStore
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.publisher = publisher
        self.aggregate_store = aggregate_store

    async def process(self, events: Sequence[Any]) -> None:
        """Apply the observations of ``events`` and publish what they make. An observation that fails (a
        bug: observations are ours) is logged and counted, and the rest of its pack is still applied."""
        emits: list[Emit] = []
        sources: dict[str, tuple[str, int]] = {}  # escalation id -> observations partition
        for event in events:
            message = event.message
            try:
                source = f"{message.topic}:{message.partition}"
                observations = positioned(unpack(event.value), source, message.offset)
            except Exception:  # a bug (observations are ours): log where, count, go on
                observations = []
                self._error(message)
            for observation in observations:
                try:
                    out = self.pipeline.aggregate(observation, message.partition)
                except Exception:  # one observation's bug must not drop the rest of its pack
                    self._error(message)
                    continue
                emits.extend(out)
                note_sources(sources, out, message)
        await self.publisher.publish(emits, self.pipeline.aggregator.flush, self.aggregate_store, sources)

    def _error(self, message: Any) -> None:
        log.exception("internal error on %s[%d]@%d", message.topic, message.partition, message.offset)
        self.metrics.internal_errors.labels("aggregate").inc()
