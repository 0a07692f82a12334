"""The Kafka transport: a Faust app whose agents parse, call the pure :class:`Pipeline`, and emit.

Two agents, concurrency 1 each (faust-streaming#606: concurrency > 1 can commit past in-flight events):
``join`` reads the input topics (co-partitioned by ``turn_id``), and the review keeps the aggregation sends
back keyed the same way, with the join state in the ``pending`` table; ``aggregate`` reads the join's
observations, repartitioned by shard key and sent in packs (one record per shard key per batch:
:mod:`streams.observation_packs`), with the aggregates in the ``aggregates`` table. Both tables are
changelogged: a restarted worker recovers them.

This module builds the app, its topics and tables, runs the agents batch by batch, and handles rebalances;
what each agent does with a batch is :mod:`streams.join_agent`'s and :mod:`streams.aggregate_agent`'s.
Each agent takes a batch, publishes its outputs and writes its state to the changelog, and waits until the
broker has acknowledged both (:mod:`streams.batch_publisher`); Faust commits offsets after that. The
aggregate publishes first; the join writes its state first, keeping the batch's outputs in it until they are
published (:class:`~streams.join.TurnJoiner`). A crash therefore never loses an output: it can only replay
inputs whose outputs are re-published with the same keys and source positions.

Faust (0.15.3) acks, and so commits, records it has not processed: :mod:`streams.faust_guards` guards its
acks and seeks so that only records of completed batches are committed.
A batch that fails for any reason but a cancellation ends the process (exit status 70) before anything more
is committed; the restarted worker replays it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust

from schemas import Stream
from streams.aggregate import COUNT_EVERY_SECONDS
from streams.aggregate_agent import AggregateAgent
from streams.alerting import resend_open_alerts, resend_open_high_risk
from streams.alertmanager import AlertmanagerSink
from streams.batch_publisher import BatchPublisher
from streams.config import Settings
from streams.exceptions import ConfigError
from streams.faust_consumer import use_prompt_consumer
from streams.faust_guards import DeliveryGuard
from streams.join_agent import JoinAgent
from streams.kafka_client import faust_credentials, track_topics
from streams.labels import shard_partition
from streams.metrics import Metrics
from streams.partition_count import exit_if_grown
from streams.pipeline import Pipeline
from streams.shard_gauges import clear_lost_children, clear_lost_shards, export_agreement, export_spikes
from streams.state import DictStore
from streams.tables import NamedChangelogTable, TableStore
from streams.topics import consumer_group, input_topics, output_topics
from streams.views.spikes import category_severities

log = logging.getLogger("convowatch.app")

EX_SOFTWARE = 70  # sysexits.h: internal software error
#: How often a worker whose batch failed while the broker was away looks whether it is back
BROKER_WAIT_SECONDS = 1.0


class KafkaTransport:
    """Builds the Faust app for ``settings``; ``pipeline`` and ``metrics`` are this worker's."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        alerts: AlertmanagerSink | None = None,
        broker_down: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        #: whether the broker is unreachable now (the worker's BrokerMonitor)
        self.broker_down = broker_down
        self.metrics = metrics
        #: given each escalation once the broker has acknowledged it, with the partition it came from
        self.alerts = alerts
        self.role = role = settings.role
        self.app = faust.App(
            consumer_group(settings),
            broker=[f"kafka://{host}" for host in settings.broker.split(",")],
            broker_credentials=faust_credentials(settings),
            store="memory://",
            datadir=data_dir(settings),
            topic_partitions=settings.partitions,
            broker_commit_interval=settings.commit_interval_seconds,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_request_timeout=settings.producer_timeout_seconds,
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=settings.heartbeat_interval_seconds,
            # No standby replicas: they would fill ``pending`` with other workers' turns, which its size
            # (the join's cap, convowatch_join_pending_turns) must not count. A worker taking partitions
            # over reads their (compacted) changelogs instead.
            table_standby_replicas=0,
            web_enabled=False,
            autodiscover=False,
            # streams.admin creates every topic the app uses before it starts (changelogs compacted), so Faust
            # creates none: a principal without CREATE (topics pre-created by a platform team) can run it.
            # Nothing here runs on the leader alone (no on_leader timers or tasks): no leader topic either.
            topic_allow_declare=False,
            topic_disable_leader=True,
            # Faust reads unprefixed environment variables (BROKER_URL, PRODUCER_ACKS, ...) over the
            # arguments above: only CONVOWATCH_* settings configure the app
            env={},
        )
        use_prompt_consumer(self.app, settings.fetch_max_wait_seconds)
        raw: faust.Schema = faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        self.streams_by_topic = {name: stream for stream, name in input_topics(settings).items()}
        names = output_topics(settings)
        #: read by the join with its inputs: turns sent for review, which it keeps past its size cap
        self.review_keep_topic = names["review_keep"]
        self.inputs = self.app.topic(*self.streams_by_topic, self.review_keep_topic, schema=raw)
        self.outputs = {logical: self.app.topic(name, schema=raw) for logical, name in names.items()}
        self._topic_names = names
        self.publisher = BatchPublisher(self.app, names, metrics, alerts)
        # value_type None: plain JSON values. With ``dict``, Faust calls ``dict.from_data`` on every changelog
        # record during recovery; each fails (logged as "Error in recovery"), so a restarted worker never
        # recovered its tables and recovery never completed.
        json_state: faust.Schema = faust.Schema(
            key_type=str, value_type=None, key_serializer="json", value_serializer="json"
        )
        joins, aggregates = role in ("all", "join"), role in ("all", "aggregate")
        self.pending = self.aggregate_store = self.published = None
        if joins:
            # entries stay the JSON bytes of their changelog records in memory (TableStore json_values); the
            # table's value_type sets its changelog's serializer, whatever the schema says
            json_bytes: faust.Schema = faust.Schema(
                key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
            )
            pending = self.app.Table("pending", schema=json_bytes, key_type=str, value_type=bytes)
            self.pending = TableStore(
                pending,
                owned=self._input_partitions,
                defer_deletes=True,
                oversized=self._state_oversized,
                json_values=True,
            )
            # per input partition, the offset through which the join's outputs are acknowledged, and the
            # last position given to what its evictions publish (streams.kept_outputs)
            self.published = TableStore(self.app.Table("published", schema=json_state))
        if aggregates:
            # the changelog keeps the name of the "all" role's: switching roles keeps the aggregates
            table = self.app.tables.add(
                NamedChangelogTable(
                    self.app,
                    name="aggregates",
                    beacon=self.app.tables.beacon,
                    schema=json_state,
                    changelog_name=f"{settings.app_id}-aggregates-changelog",
                )
            )
            # each aggregate noted with its changelog (observation) partition: dropped when that moves away
            self.aggregate_store = TableStore(
                table,
                owned=self._observation_partitions,
                oversized=self._state_oversized,
                keyed_partitions=True,
            )
        self.pipeline = Pipeline(
            settings,
            metrics,
            # "is None", not "or": an empty table is falsy (it has a length)
            pending_store=self.pending if self.pending is not None else DictStore(),
            aggregate_store=self.aggregate_store if self.aggregate_store is not None else DictStore(),
            batched=True,
            keep_outputs=True,
        )
        # views that fold journeys fold them per observation partition (streams.labels.PartitionGuards)
        self.pipeline.aggregator.partition_of = self._shard_partition
        self._agent_topics: set[str] = set()
        #: what each agent this worker runs does with a batch
        self.join_agent: JoinAgent | None = None
        self.aggregate_agent: AggregateAgent | None = None
        if self.pending is not None and self.published is not None:  # role all or join
            self.join_agent = JoinAgent(
                self.app,
                self.pipeline,
                metrics,
                self.publisher,
                self.pending,
                self.published,
                self.streams_by_topic,
                self.review_keep_topic,
            )
            self.app.agent(self.inputs, name="join", concurrency=1)(self._join)
            self._agent_topics.update([*self.streams_by_topic, self.review_keep_topic])
        if self.aggregate_store is not None:  # role all or aggregate
            self.aggregate_agent = AggregateAgent(
                self.pipeline, metrics, self.publisher, self.aggregate_store
            )
            self.app.agent(self.outputs["observations"], name="aggregate", concurrency=1)(self._aggregate)
            self._agent_topics.add(self.outputs["observations"].get_topic_name())
            self.app.timer(COUNT_EVERY_SECONDS, name="convowatch-aggregate-gauges")(self._export_gauges)
        self.app.on_partitions_assigned.connect(self._on_partitions_assigned)
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)
        #: the consumer commits only records of completed batches (streams.faust_guards)
        self.delivery = DeliveryGuard(self._agent_topics)
        #: for health checks (read from other threads): tables recovered after the first rebalance, the
        #: agents' partitions this worker owns, and when a batch last completed (time.monotonic())
        self.recovered = False
        self.owned: frozenset[tuple[str, int]] = frozenset()
        self.last_progress = time.monotonic()

    def _state_oversized(self, table: str) -> None:
        self.metrics.state_oversized.labels(table).inc()

    @property
    def agent_topics(self) -> list[str]:
        """The topics the agents consume (the inputs and the internal observations)."""
        return sorted(self._agent_topics)

    def _shard_partition(self, shard_key: str) -> int:
        """The partition of ``convowatch.internal.observations`` holding the aggregates of ``shard_key``."""
        topic = self.outputs["observations"].get_topic_name()
        producer = self.app.producer
        return shard_partition(shard_key, lambda key: producer.key_partition(topic, key.encode()).partition)

    def _input_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in self.streams_by_topic}

    def _observation_partitions(self) -> set[int]:
        topic = self.outputs["observations"].get_topic_name()
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}

    @property
    def produced_topics(self) -> list[str]:
        """Every topic this worker's agents write: the outputs and the changelogs of its tables."""
        names = set(self._topic_names.values())
        for store in (self.pending, self.published, self.aggregate_store):
            if store is not None:
                names.add(store.table.changelog_topic.get_topic_name())
        return sorted(names)

    async def _track_produced_topics(self) -> None:
        # Faust's aiokafka driver creates its AIOKafkaProducer on start; ``_ensure_producer`` returns that one
        producer: Any = self.app.producer
        await track_topics(producer._ensure_producer().client, self.produced_topics)

    async def _join(self, stream: Any) -> None:
        assert self.join_agent is not None  # registered with it
        await self._take_batches(stream, "join", self.join_agent.process)

    async def _aggregate(self, stream: Any) -> None:
        assert self.aggregate_agent is not None  # registered with it
        await self._take_batches(stream, "aggregate", self.aggregate_agent.process)

    async def _take_batches(
        self, stream: Any, stage: str, process: Callable[[Sequence[Any]], Awaitable[None]]
    ) -> None:
        """The body of the Faust agent ``stage``: ``process`` each batch of ``stream``."""
        self.delivery.guard_acks(self.app.consumer)
        await self._track_produced_topics()
        settings = self.settings
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_seconds):
            try:
                await process(events)
            except Exception:
                await self._exit_after_failed_batch(events, stage)
            # the batch completed: its acks may reach the consumer
            self.delivery.completed(event.message for event in events)
            self.last_progress = time.monotonic()

    async def _exit_after_failed_batch(self, events: Sequence[Any], stage: str) -> None:
        """Exit :data:`EX_SOFTWARE` after a batch failed (call from its ``except``): a restart replays it.

        While the broker is unreachable (a batch's outputs expire after
        ``CONVOWATCH_PRODUCER_TIMEOUT_SECONDS`` of an outage), it first waits for the broker, the event loop
        turning: a restart could not start before the broker's return (it would wait for it, without an
        Alertmanager sink: :mod:`streams.broker_wait`), and meanwhile this worker's sink keeps re-sending the
        open alerts. Until 2026-11-26 busy workers crash-looped through an outage longer than the timeout,
        and their alerts resolved meanwhile. Not while the broker refuses this worker (a rotated password, an
        expired certificate): a restart, which reads its credentials anew, is what mends that."""
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
        if self.broker_down():
            log.critical("%s: waiting for the Kafka broker to answer again before exiting", stage)
            while self.broker_down():
                await asyncio.sleep(BROKER_WAIT_SECONDS)
        logging.shutdown()
        os._exit(EX_SOFTWARE)

    async def _export_gauges(self) -> None:
        """Every :data:`~streams.aggregate.COUNT_EVERY_SECONDS` on the event loop, batches or not:
        ``convowatch_aggregates`` (the store keeps them up to date, Faust's recovery and drops included, but
        until 2026-11-26 they reached the gauge only at a batch 10 s after the last export, or a rebalance,
        and after a burst a drained worker kept the counts of a batch early in it: 3 conversations of 535),
        and the throttled gauges of the aggregates with observations since their last refresh (until
        2026-11-26 a drained worker showed 594 pairs in a window holding 601)."""
        aggregator = self.pipeline.aggregator
        aggregator.export_counts()
        aggregator.export_pending()

    # -- rebalances ----------------------------------------------------------------------------------

    async def _on_partitions_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Exit if the topics were grown (:mod:`streams.partition_count`), as soon as the new assignment is
        known: before the tables' recovery, which waited for ever, in a CI run, on the changelog partitions
        of a group assigned partitions they do not have (the check at the rebalance's end never came)."""
        exit_if_grown(self.settings, self.app.consumer)

    async def _on_rebalance_complete(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """After a rebalance and table recovery, before Faust resumes the agents' partitions and seeks them to
        their committed offsets: hold the flow (:mod:`streams.faust_guards`), report what this worker owns,
        export its figures (a growth of the topics was checked when the partitions were assigned)."""
        consumer = self.app.consumer
        self.delivery.hold_flow(consumer)
        assigned = consumer.assignment()
        owned: dict[str, list[int]] = {}
        for stream_topic, stream in self.streams_by_topic.items():
            partitions = sorted(tp.partition for tp in assigned if tp.topic == stream_topic)
            self.metrics.assigned_partitions.labels(stream.value).set(len(partitions))
            owned[stream.value] = partitions
        log.warning("assigned input partitions: %s", owned)
        self.owned = frozenset((tp.topic, tp.partition) for tp in assigned if tp.topic in self._agent_topics)
        if self.alerts is not None:  # escalations of partitions another worker owns now: its to update
            self.alerts.forget(lambda source: source in self.owned)
        self.last_progress = time.monotonic()
        self.recovered = True
        # the tables were recovered, and may hold values newer than the decoded ones kept across batches
        self.pipeline.joiner.state.forget()
        joining = self.join_agent  # the recovered marks of the input partitions owned now
        marks = {} if joining is None else joining.published_through(self._input_partitions())
        self.pipeline.joiner.rebalanced(marks)
        # before the views index what the store holds
        if self.aggregate_store is not None and (dropped := self.aggregate_store.drop_unowned()):
            log.info("dropped %d aggregates of observation partitions now owned by other workers", dropped)
        self.pipeline.aggregator.rebalanced()
        if self.pending is not None:
            if dropped := self.pending.drop_unowned():
                log.info("dropped %d pending turns of partitions now owned by other workers", dropped)
            self.pipeline.joiner.forget_unheld()
            self.metrics.join_pending.set(len(self.pending))  # or a worker left with none keeps its old count
            if self.alerts is not None:  # the turns topic: entries are partitioned as the inputs are
                turns = input_topics(self.settings)[Stream.CHAT_TURNS]
                within = self.settings.alert_expire_seconds
                resend_open_high_risk(self.alerts, self.pipeline.joiner, within, lambda p: (turns, p))
        if self.aggregate_store is not None:
            topic = self.outputs["observations"].get_topic_name()
            observed = {tp.partition for tp in assigned if tp.topic == topic}

            def owns(shard_key: str) -> bool:
                return self._shard_partition(shard_key) in observed

            keys = list(self.aggregate_store.table.data)
            export_agreement(self.metrics, self.pipeline.aggregator, keys, owns)
            severity = category_severities(self.pipeline.taxonomy)
            export_spikes(self.metrics, self.pipeline.aggregator, keys, owns, severity)
            self.pipeline.aggregator.export_owned(keys, owns)  # the views' other gauges of the owned shards
            clear_lost_shards(self.metrics, owns)
            clear_lost_children(self.metrics, owns)
            self.metrics.perceptual_open.retain(lambda member: owns(member[0]))  # (judge, ...): its shard
            self.pipeline.aggregator.export_counts()  # not 10 s later, at a batch a quiet worker may not get
            if self.alerts is not None:

                def source(shard_key: str) -> tuple[str, int]:  # as note_sources gives the escalation's
                    return topic, self._shard_partition(shard_key)

                resend_open_alerts(self.alerts, self.pipeline.aggregator, keys, owns, source)


def data_dir(settings: Settings) -> Path:
    """The Faust app's data directory (``Settings.data_dir``), created and checked to take files (Faust
    creates its own directories in it), else a one-line :class:`ConfigError` naming the variable. Nothing
    durable goes there (tables are in memory and in their changelogs)."""
    path = settings.data_dir or Path(tempfile.gettempdir()) / "convowatch" / settings.app_id
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot use {path} as the data directory (CONVOWATCH_DATA_DIR): {reason}"
        ) from None
    return path
