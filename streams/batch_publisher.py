"""Sending a batch's outputs and state to Kafka, and waiting until the broker has acknowledged both: only then
may the batch's offsets be committed (README, "Delivery guarantee")."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import faust
import orjson

from streams.alertmanager import AlertmanagerSink
from streams.emit import Emit
from streams.metrics import Metrics
from streams.observation_packs import packs
from streams.state import MAX_WRITE_BYTES
from streams.tables import TableStore

log = logging.getLogger("convowatch.app")


class BatchPublisher:
    """Publishes the batches of ``app``'s agents to the topics ``topic_names`` (logical name: Kafka name)."""

    def __init__(
        self,
        app: faust.App,
        topic_names: dict[str, str],
        metrics: Metrics,
        alerts: AlertmanagerSink | None = None,
    ) -> None:
        self.app = app
        self.topic_names = topic_names
        self.metrics = metrics
        #: given each escalation once the broker has acknowledged it, with the partition it came from
        self.alerts = alerts
        self._output_counters = {logical: metrics.outputs.labels(logical) for logical in topic_names}
        #: delivery futures awaited with the next state written (the join's published marks)
        self.awaited_with_state: list[Any] = []

    async def publish(
        self,
        emits: list[Emit],
        flush: Callable[[], Any],
        store: TableStore,
        sources: dict[str, tuple[str, int]],
        *,
        state_first: bool = False,
    ) -> None:
        """Send every record and wait until the broker has acknowledged all of them; then write the batch's
        state (``flush``) and wait for its changelog records too. Only then may the batch be committed.

        With ``state_first`` (the join) the state goes first, outputs second. The join's state keeps the
        batch's outputs until they are published (:class:`~streams.join.TurnJoiner`), so a crash between
        the two publishes them on the replay as they were. Written the other way round, a crash between
        the two replays the batch from the old state, which may read the three input topics in another
        order and give an observation needing two records the source position of the other one.

        Records go straight to the producer (aiokafka, through Faust's driver), not through Faust's topic
        channels and buffer: a profile of the worker found those to cost more than the sending itself.
        """
        producer = self.app.producer
        if state_first:
            await self.write_state(flush, store)
        names = self.topic_names
        counters = self._output_counters
        pending = []
        observations: dict[str, list[bytes]] = {}  # by shard key, sent as packs (streams/observation_packs)
        for emit in emits:
            value = orjson.dumps(emit.value)
            if emit.topic == "observations":
                # a pack of one adds its brackets; packs of several stay under PACK_MAX_BYTES
                if len(value) + 2 > MAX_WRITE_BYTES:  # a bug too (the join bounds a turn's labels)
                    self._oversized(emit, len(value))
                    continue
                counters[emit.topic].inc()
                observations.setdefault(emit.key, []).append(value)
                continue
            if len(value) > MAX_WRITE_BYTES:
                if emit.topic != "deadletter":  # a bug (outputs are bounded): sent, it would fail every retry
                    self._oversized(emit, len(value))
                    continue
                value = truncated_dead_letter(emit.value)
            counters[emit.topic].inc()
            pending.append(await producer.send(names[emit.topic], emit.key.encode(), value, None, None, None))
        topic = names["observations"]
        for key, encoded in observations.items():
            for pack in packs(encoded):
                pending.append(await producer.send(topic, key.encode(), pack, None, None, None))
        if pending:
            await asyncio.gather(*pending)
        if state_first:  # entries deleted in the batch: their last outputs are in now
            if deleted := await store.send_deferred(producer):
                await asyncio.gather(*deleted)
        else:
            await self.write_state(flush, store)
        if self.alerts is not None:  # publish never raises: a notification must not stop the stream
            for emit in emits:
                if emit.topic == "escalations":
                    self.alerts.publish(emit.value, sources.get(emit.key))

    async def write_state(self, flush: Callable[[], Any], store: TableStore) -> None:
        """Write the batch's state (``flush``) to the changelog and wait until the broker has it (and what is
        :attr:`awaited_with_state`)."""
        flush()
        changelog = await store.send(self.app.producer)
        changelog, self.awaited_with_state = changelog + self.awaited_with_state, []
        if changelog:
            await asyncio.gather(*changelog)

    def _oversized(self, emit: Emit, size: int) -> None:
        """An output or observation too large for a record: logged and counted, not sent, so the batch goes
        on (sent, it would fail the producer's size check, the batch, and the worker at every restart)."""
        log.error(
            "internal error: a %d-byte record for %s (key %r) is over the %d bytes of a record; not sent",
            size,
            emit.topic,
            emit.key[:200],
            MAX_WRITE_BYTES,
        )
        self.metrics.internal_errors.labels("publish").inc()


def note_sources(sources: dict[str, tuple[str, int]], emits: list[Emit], message: Any) -> None:
    """Record the topic partition of ``message`` as the source of each escalation in ``emits`` (by id): the
    Alertmanager sink forgets those of partitions the worker loses in a rebalance."""
    for emit in emits:
        if emit.topic == "escalations":
            sources[emit.key] = (message.topic, message.partition)


def truncated_dead_letter(value: dict[str, Any]) -> bytes:
    """A dead letter too large to publish, with its original cut to fit; ``detail`` says so and gives the
    SHA-256 of the whole original (``original_size`` keeps its size; the source position finds it)."""
    original = base64.b64decode(value["original_base64"])
    keep = MAX_WRITE_BYTES // 2
    digest = hashlib.sha256(original).hexdigest()
    return orjson.dumps(
        value
        | {
            "detail": f"{value['detail']} [original truncated to its first {keep} of {len(original)} bytes; "
            f"sha256 of the whole original {digest}]",
            "original_base64": base64.b64encode(original[:keep]).decode("ascii"),
        }
    )
