"""Consumer lag of the worker's consumer group, per topic and partition (``convowatch_consumer_lag``).

Lag is the broker's end offset minus the group's committed offset: what a restarted worker would have to
read again before it is current. Every worker reports the whole group (the rules take the maximum per
partition), from a daemon thread outside Faust's event loop, so a stalled or overloaded worker still
reports its growing lag.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.config import Settings
from streams.kafka_client import admin_config
from streams.metrics import Metrics
from streams.periodic import Periodic


class ConsumerLagMonitor:
    """Every ``settings.lag_interval_seconds`` (once started), sets ``convowatch_consumer_lag{topic,
    partition}`` for consumer group ``group`` (default ``settings.app_id``) on ``topics`` (the topics the
    worker's agents consume). While the broker is away the last values stay (BrokerMonitor reports it)."""

    def __init__(
        self, settings: Settings, metrics: Metrics, topics: Iterable[str], group: str | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.topics = sorted(set(topics))
        self.group = group or settings.app_id
        self.timeout = max(2.0, settings.lag_interval_seconds)
        #: the last measurement, by (topic, partition)
        self.latest: dict[tuple[str, int], int] = {}
        self._admin = AdminClient(admin_config(settings, log_level=0))
        self._timer = Periodic(settings.lag_interval_seconds, "convowatch-lag-monitor", self.check)

    def start(self) -> ConsumerLagMonitor:
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def check(self) -> dict[tuple[str, int], int]:
        """Measure once and update the gauge; the lag by (topic, partition)."""
        partitions = self._partitions()
        if not partitions:
            return {}
        positions = {tp: o for tp, o in self._committed(partitions).items() if o >= 0}
        # a partition without a commit yet: everything still on it is behind
        if uncommitted := [tp for tp in partitions if tp not in positions]:
            positions |= self._offsets(uncommitted, OffsetSpec.earliest())
        ends = self._offsets(partitions, OffsetSpec.latest())
        lag = {}
        for tp in partitions:
            lag[tp] = max(0, ends[tp] - positions[tp])
            self.metrics.consumer_lag.labels(tp[0], str(tp[1])).set(lag[tp])
        self.latest = lag
        self.metrics.consumer_lag_checked.set(time.time())
        return lag

    def _partitions(self) -> list[tuple[str, int]]:
        metadata = self._admin.list_topics(timeout=self.timeout)
        return [
            (name, partition)
            for name in self.topics
            if (topic := metadata.topics.get(name)) is not None and topic.error is None
            for partition in sorted(topic.partitions)
        ]

    def _committed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        request = ConsumerGroupTopicPartitions(self.group, [TopicPartition(t, p) for t, p in partitions])
        future = self._admin.list_consumer_group_offsets([request], request_timeout=self.timeout)
        result = future[self.group].result(timeout=self.timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.error is None}

    def _offsets(self, partitions: list[tuple[str, int]], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in partitions}, request_timeout=self.timeout
        )
        return {(tp.topic, tp.partition): f.result(timeout=self.timeout).offset for tp, f in futures.items()}
