"""The operations each worker role needs on the cluster (the start-up ACL check), against its stages."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka.admin import AclOperation

from schemas import Stream
from streams.config import Settings
from streams.generator import TrafficGenerator, to_records
from streams.permissions import missing_operations, role_needs
from streams.pipeline import Pipeline
from streams.topics import (
    changelog_topics,
    consumer_group,
    input_topics,
    output_topics,
    partition_count_topic,
)
from streams.traffic_model import Incident

READ, WRITE, DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE


def stage_outputs() -> tuple[set[str], set[str]]:
    """The logical topics the join stage and the aggregation stage publish to, over an hour of generated
    traffic with a safety incident (the aggregation's defect spikes), a broken record of each input and
    every turn left to be evicted."""
    pipeline = Pipeline(Settings(), batched=False)
    incident = Incident(1200, "driver-v7", "driver_support", "safety", 0.3)
    generator = TrafficGenerator(seed=3, rate=3, incident=incident)
    records = [(r[2], r[3]) for r in to_records(generator.records(3600))]
    records += [(stream, b"{not json") for stream in Stream]
    joined, aggregated = [], []
    for offset, (stream, raw) in enumerate(records):
        joined += pipeline.ingest(stream, raw, source_topic=stream.value, partition=0, offset=offset)
    pipeline.joiner.watermark = float("inf")
    joined += pipeline.joiner.evict()
    joined += pipeline.keep_for_review(b"[]", source_topic="keep", partition=0, offset=0)
    for emit in joined:
        if emit.topic == "observations":
            aggregated += pipeline.aggregate(emit.value, 0)
    return {emit.topic for emit in joined}, {emit.topic for emit in aggregated}


@pytest.fixture(scope="module")
def stages() -> tuple[set[str], set[str]]:
    return stage_outputs()


def writes(settings: Settings) -> set[str]:
    return {name for (kind, name), ops in role_needs(settings).items() if kind == "topic" and WRITE in ops}


def reads(settings: Settings) -> set[str]:
    return {name for (kind, name), ops in role_needs(settings).items() if kind == "topic" and READ in ops}


def test_each_role_may_write_every_topic_its_stage_publishes_and_no_other(
    stages: tuple[set[str], set[str]],
) -> None:
    joined, aggregated = stages
    # the traffic reaches every kind of output: a role's list is checked, not just its first entries
    assert {"defects", "escalations", "deadletter", "divergences", "observations"} <= joined
    assert any(topic.startswith("defects.") for topic in joined)
    assert {"escalations", "review_requests", "review_keep"} <= aggregated
    settings = Settings()
    names = output_topics(settings)
    pending, published, aggregates = changelog_topics(settings)
    join, aggregate = (Settings(role=role) for role in ("join", "aggregate"))
    categories = {name for logical, name in names.items() if logical.startswith("defects.")}  # some unused
    assert {names[topic] for topic in joined} <= writes(join)
    others = {names[topic] for topic in joined if not topic.startswith("defects.")}
    # the state's partition count is not required: without it its check is off (streams.partition_marker)
    assert partition_count_topic(settings) not in writes(settings)
    assert writes(join) == others | categories | {pending, published}
    assert writes(aggregate) == {names[topic] for topic in aggregated} | {aggregates}
    assert writes(settings) == writes(join) | writes(aggregate)


def test_each_role_may_read_what_its_agents_consume_and_its_state() -> None:
    settings = Settings()
    names = output_topics(settings)
    pending, published, aggregates = changelog_topics(settings)
    join, aggregate = (Settings(role=role) for role in ("join", "aggregate"))
    inputs = set(input_topics(settings).values())
    assert reads(join) == inputs | {names["review_keep"], pending, published}
    assert reads(aggregate) == {names["observations"], aggregates}
    assert reads(settings) == reads(join) | reads(aggregate)


@pytest.mark.parametrize(("role", "group"), [("all", "cw"), ("join", "cw"), ("aggregate", "cw-aggregate")])
def test_each_role_reads_its_own_consumer_group(role: str, group: str) -> None:
    settings = Settings(app_id="cw", role=role)
    assert consumer_group(settings) == group
    assert {name for kind, name in role_needs(settings) if kind == "group"} == {group}
    assert role_needs(settings)[("group", group)] == {READ}


def test_missing_operations_names_each_one_grouped_by_operation() -> None:
    needs = {
        ("topic", "p.a"): {READ},
        ("topic", "p.b"): {READ, WRITE},
        ("topic", "p.c"): {WRITE},
        ("group", "g"): {READ},
    }
    allowed = {
        ("topic", "p.a"): {READ, DESCRIBE},
        ("topic", "p.b"): {READ, DESCRIBE},
        ("topic", "p.c"): set(),  # not even DESCRIBE: the broker answers with an authorization error
        ("group", "g"): {DESCRIBE},
    }
    assert missing_operations(needs, allowed) == "READ on group g; WRITE on topics p.b, p.c"


def test_what_the_broker_says_nothing_about_counts_as_allowed() -> None:
    # a broker older than KIP-430, a topic another broker has not heard of yet, a coordinator still loading
    needs = {("topic", "p.a"): {READ, WRITE}, ("group", "g"): {READ}}
    assert missing_operations(needs, {}) == ""
    assert missing_operations(needs, {("topic", "p.a"): {READ, WRITE, DESCRIBE}}) == ""


def test_a_broken_record_goes_to_the_join_stage_dead_letters() -> None:
    # the join alone dead-letters (the aggregation's observations are ours): keep_for_review's too
    pipeline = Pipeline(Settings(), batched=False)
    emits = pipeline.keep_for_review(orjson.dumps({"ts": datetime.now(UTC).isoformat()}), source_topic="k")
    assert [emit.topic for emit in emits] == ["deadletter"]
