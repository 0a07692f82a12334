"""Consumer lag of the worker's consumer group, per topic and partition (``convowatch_consumer_lag``).

Lag is the broker's end offset minus the group's committed offset: what a restarted worker would have to
read again before it is current. Every worker reports the whole group (the rules take the maximum per
partition), from a daemon thread outside Faust's event loop, so a stalled or overloaded worker still
reports its growing lag.

The group's committed offsets are read with a consumer of that group that never joins it (no subscribe: it
is no member, takes no partitions and commits nothing), not with the admin client's
``list_consumer_group_offsets``: librdkafka 2.x (confluent-kafka 2.16) crashes the whole process (SIGSEGV in
``rd_kafka_cgrp_op``, librdkafka issue 5040) when the broker answers that request with NOT_COORDINATOR, as
it does while a group coordinator moves or loads: a fresh cluster, a broker restart, a leader change of
``__consumer_offsets``. A consumer handles that answer itself (it looks the coordinator up again).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.config import Settings
from streams.kafka_client import admin_config
from streams.metrics import Metrics
from streams.periodic import Periodic

#: Pause before asking again for committed offsets after a retriable error (the coordinator is moving).
RETRY_SECONDS = 0.2
#: Errors of a group coordinator that is moving or loading (librdkafka does not mark them retriable here).
COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)


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
        #: errors the clients reported (a refused connection, ...), served from their queues at each check
        self.client_errors = 0
        self._admin = AdminClient(admin_config(settings, log_level=0, error_cb=self._count_error))
        group_config = {"group.id": self.group, "enable.auto.commit": False, "log_level": 0}
        self._group = Consumer(admin_config(settings, error_cb=self._count_error, **group_config))
        self._timer = Periodic(settings.lag_interval_seconds, "convowatch-lag-monitor", self.check)

    def start(self) -> ConsumerLagMonitor:
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()
        if self._timer.join(1.0):  # else a check (broker away?) is still using it: the process ends it
            self._group.close()

    def check(self) -> dict[tuple[str, int], int]:
        """Measure once and update the gauge; the lag by (topic, partition)."""
        # Serve the clients' event queues first (the broker may be away: the requests below then raise).
        # Never served, their error events piled up in librdkafka's memory while the broker was away: 0.56 MB
        # a minute, never given back (2026-11-26).
        self._admin.poll(0)
        self._group.poll(0)
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

    def _count_error(self, error: KafkaError) -> None:
        self.client_errors += 1

    def _partitions(self) -> list[tuple[str, int]]:
        metadata = self._admin.list_topics(timeout=self.timeout)
        return [
            (name, partition)
            for name in self.topics
            if (topic := metadata.topics.get(name)) is not None and topic.error is None
            for partition in sorted(topic.partitions)
        ]

    def _committed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = [TopicPartition(t, p) for t, p in partitions]
        found = read_committed(self._group, wanted, self.timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.error is None}

    def _offsets(self, partitions: list[tuple[str, int]], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in partitions}, request_timeout=self.timeout
        )
        return {(tp.topic, tp.partition): f.result(timeout=self.timeout).offset for tp, f in futures.items()}


def read_committed(
    reader: Consumer, partitions: list[TopicPartition], timeout: float
) -> list[TopicPartition]:
    """The committed offsets of ``reader``'s group (a consumer that never subscribes) for ``partitions``,
    asking again while the group's coordinator moves or loads, for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return list(reader.committed(partitions, timeout=max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            error = exc.args[0]
            moving = error.retriable() or error.code() in COORDINATOR_MOVING
            if not moving or time.monotonic() + RETRY_SECONDS >= deadline:
                raise
            time.sleep(RETRY_SECONDS)
