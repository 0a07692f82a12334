"""aiokafka forgets the metadata of topics it does not track; the worker tracks every topic it writes.

Without tracking, a record queued for a topic first learned from an all-topics refresh waits for a leader
that never comes once another topic narrows the refresh (the worker's commit then hangs on the producer
flush: see ``streams.kafka_client.track_topics``). These tests drive a real aiokafka producer against the
session broker; lingering batches make the race deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from streams.app import KafkaTransport
from streams.config import Settings
from streams.kafka_client import track_topics
from streams.metrics import Metrics
from streams.topics import output_topics
from tests.support.broker import KafkaBroker, create_topics

pytestmark = pytest.mark.kafka


async def _deliver_after_narrowed_refresh(bootstrap: str, known: str, late: str, track: bool) -> bool:
    """Queue a record for ``known`` (learned from an all-topics refresh), then produce to ``late`` (a new
    topic: aiokafka tracks it and narrows its refreshes). True if the ``known`` record is delivered."""
    # a record that cannot be delivered expires after 5 s (aiokafka's default, 40 s, held the stop of the
    # untracked case for 30 s: CI time)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=300, request_timeout_ms=5000)
    await producer.start()
    try:
        await producer.client.force_metadata_update()  # tracks nothing yet: every topic is fetched
        assert producer.client.cluster.partitions_for_topic(known) == {0, 1, 2, 3}
        if track:
            await track_topics(producer.client, [known, late])
        await asyncio.to_thread(create_topics, bootstrap, [late], 1)
        queued = await producer.send(known, b"v", partition=1)  # lingers in the accumulator
        await producer.send_and_wait(late, b"v")
        try:
            await asyncio.wait_for(asyncio.shield(queued), timeout=10)
        except (TimeoutError, KafkaError):  # never delivered: waited for, or expired (no leader known)
            return False
        return True
    finally:
        await asyncio.wait_for(producer.stop(), timeout=30)


@pytest.mark.parametrize(
    ("tracked", "delivered"),
    [
        (True, True),
        # the aiokafka behaviour the worker works around: if this starts delivering, the work-around may go
        (False, False),
    ],
)
def test_only_tracked_topics_keep_their_metadata(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str], tracked: bool, delivered: bool
) -> None:
    known = unique_name("known")
    create_topics(kafka_broker.bootstrap, [known], 4)
    late = unique_name("late")
    assert (
        asyncio.run(_deliver_after_narrowed_refresh(kafka_broker.bootstrap, known, late, tracked))
        is delivered
    )


@pytest.mark.parametrize("role", ["all", "join", "aggregate"])
def test_the_worker_tracks_every_topic_it_writes(role: str) -> None:
    settings = Settings(topic_prefix="tm.", app_id="tm-app", role=role)
    transport = KafkaTransport(settings, Metrics(CollectorRegistry()))
    changelogs = {
        "all": {"pending", "published", "aggregates"},
        "join": {"pending", "published"},
        "aggregate": {"aggregates"},
    }[role]
    assert set(transport.produced_topics) == {
        *output_topics(settings).values(),
        *(f"tm-app-{table}-changelog" for table in changelogs),
    }
