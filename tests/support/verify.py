"""Verifying a worker's outputs on Kafka against an oracle: the same input replayed by the embedded
:class:`~streams.pipeline.Pipeline` (same join and aggregation code, one process, no crashes).

Outputs are compared after deduplication by key, as a consumer would: defects by ``defect_id`` (every copy of
a key must be identical), escalations by ``(escalation_id, revision)`` (an update is a new revision of the
same id). Raw counts minus unique keys are the duplicates that at-least-once delivery produced.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.aggregate import Aggregator
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore
from streams.views.agreement import AgreementView

#: Output topics whose records are compared with the oracle (per-category defect topics are added). They are
#: per turn; escalations of other kinds than these come from order-sensitive detectors over all turns
#: (drift, spikes, traffic), which see the partitions interleaved differently on every run: not compared.
COMPARED = ("defects", "escalations", "divergences")
PER_TURN_ESCALATIONS = frozenset({"high_risk_failure"})


def read_raw(
    bootstrap: str, topic: str, timeout: float = 30.0, config: dict[str, Any] | None = None
) -> list[tuple[bytes | None, bytes | None]]:
    """Every message on ``topic`` now (all partitions, from the beginning): (key, value), tombstones too."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            **(config or {}),
            "group.id": f"verify-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.message.max.bytes": 4_194_304,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining = set(partitions)
        out: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: partitions {sorted(remaining)} not read to the end in {timeout}s"
                )
            for message in consumer.consume(1000, 0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(message.partition())
                        continue
                    raise RuntimeError(error.str())
                out.append((message.key(), message.value()))
        return out
    finally:
        consumer.close()


def read_json(
    bootstrap: str, topic: str, config: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    return [((k or b"").decode(), orjson.loads(v)) for k, v in read_raw(bootstrap, topic, config=config) if v]


def consumer_lag(
    bootstrap: str, group: str, topics: Iterable[str], config: dict[str, Any] | None = None
) -> int:
    """Records on ``topics`` that consumer group ``group`` has not committed yet."""
    consumer = Consumer({"bootstrap.servers": bootstrap, **(config or {}), "group.id": group})
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in consumer.list_topics(t, timeout=10).topics[t].partitions
        ]
        lag = 0
        for tp in consumer.committed(tps, timeout=10):
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def committed_offsets(
    bootstrap: str, group: str, topics: Iterable[str], config: dict[str, Any] | None = None
) -> dict[tuple[str, int], int]:
    """Committed offset of every partition of ``topics`` for ``group`` (0 where nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, **(config or {}), "group.id": group})
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in consumer.list_topics(t, timeout=10).topics[t].partitions
        ]
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


@dataclass
class Oracle:
    """What an uninterrupted run publishes for the input: records by logical topic, agreement rows."""

    records: dict[str, list[tuple[str, dict[str, Any]]]]
    agreement: list[dict[str, Any]]
    counts: dict[str, int]
    pending: int  # turns held by the join at the end

    def keys(self, topic: str) -> set[str]:
        return {k for k, _ in self.records.get(topic, [])}

    def escalation_ids(self) -> set[str]:
        return self.keys("escalations")


def embedded_oracle(records: Sequence[tuple[Stream, bytes]], settings: Settings) -> Oracle:
    """Replay ``records`` in order through the embedded pipeline (no end-of-input eviction: the worker
    does not evict at the end of a stream either)."""
    pipeline = Pipeline(settings, Metrics(CollectorRegistry(), label_max_values=settings.label_max_values))
    out: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for stream, raw in records:
        for emit in pipeline.process(stream, raw, source_topic=stream.value):
            out[emit.topic].append((emit.key, emit.value))
    pipeline.flush()
    report = pipeline.report()
    return Oracle(dict(out), report["agreement"], report["events"], len(pipeline.joiner.state))


def agreement_from_changelog(
    bootstrap: str, app_id: str, config: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The agreement rows held in the worker's ``aggregates`` table, read from its changelog topic."""
    store = DictStore()
    for key, value in read_raw(bootstrap, f"{app_id}-aggregates-changelog", config=config):
        name = orjson.loads(key or b'""')
        if value is None:
            store.data.pop(name, None)
        else:
            store.data[name] = orjson.loads(value)
    return AgreementView.rows(Aggregator(Metrics(CollectorRegistry()), store))


#: Fields that snapshot a turn's other labels when a record was published: they depend on the order in
#: which the three input topics' records happened to be consumed, so they are not compared.
SNAPSHOT_FIELDS = frozenset({"verdicts", "labels", "human_labels"})


@dataclass
class TopicCheck:
    """One output topic against the oracle, after dedup by key.

    Defects: each ``defect_id`` once, its fields (bar :data:`SNAPSHOT_FIELDS`) equal to the oracle's and
    equal across copies. Escalations: each ``escalation_id`` once, its last record (what a compacted topic
    keeps) equal to the oracle's last, bar ``revision``, whose count depends on consumption order.
    """

    topic: str
    raw: int = 0
    unique: int = 0
    expected: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)  # copies that differ, or differ from the oracle
    fields: Counter[str] = field(default_factory=Counter)  # which fields differed
    max_revision_not_last: list[str] = field(default_factory=list)  # escalations only
    revisions: int = 0  # escalations: distinct (id, revision) pairs

    @property
    def duplicates(self) -> int:
        return self.raw - self.unique

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.differing)

    def summary(self) -> dict[str, Any]:
        out = {
            "topic": self.topic,
            "raw": self.raw,
            "unique": self.unique,
            "expected": self.expected,
            "duplicates": self.duplicates,
            "missing": len(self.missing),
            "unexpected": len(self.unexpected),
            "differing": len(self.differing),
        }
        if self.fields:
            out["differing_fields"] = dict(self.fields)
        if self.topic == "escalations":
            out["distinct_revisions"] = self.revisions
            out["max_revision_not_last"] = len(self.max_revision_not_last)
        return out


def _stable(topic: str, value: dict[str, Any]) -> dict[str, Any]:
    drop = {"revision"} if topic == "escalations" else SNAPSHOT_FIELDS
    return {k: v for k, v in value.items() if k not in drop}


def check_topic(
    topic: str, actual: list[tuple[str, dict[str, Any]]], oracle: list[tuple[str, dict[str, Any]]]
) -> TopicCheck:
    expected: dict[str, dict[str, Any]] = {}
    for key, value in oracle:
        expected[key] = _stable(topic, value)  # escalations: the last revision wins
    check = TopicCheck(topic, raw=len(actual), expected=len(expected))
    first: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}
    top: dict[str, dict[str, Any]] = {}  # escalations: the record with the highest revision
    escalations = topic == "escalations"
    for key, value in actual:
        stable = _stable(topic, value)
        if not escalations and key in first and first[key] != stable:
            check.differing.append(key)
            check.fields.update(k for k in stable if stable[k] != first[key].get(k))
        first.setdefault(key, stable)
        last[key] = stable
        if escalations and value.get("revision", 0) >= top.get(key, {}).get("revision", 0):
            top[key] = value
    check.unique = len(last)
    check.missing = sorted(expected.keys() - last.keys())
    check.unexpected = sorted(last.keys() - expected.keys())
    for key in sorted(last.keys() & expected.keys()):
        if last[key] != expected[key]:
            check.differing.append(key)
            check.fields.update(k for k in expected[key] if last[key].get(k) != expected[key][k])
    if escalations:
        check.revisions = len({(k, v.get("revision")) for k, v in actual})
        check.max_revision_not_last = sorted(k for k in top if _stable(topic, top[k]) != last[k])
    return check


def check_outputs(
    bootstrap: str, prefix: str, oracle: Oracle, config: dict[str, Any] | None = None
) -> dict[str, TopicCheck]:
    """Every compared output topic (and each ``defects.<category>`` the oracle used) against the oracle."""
    topics = sorted(set(COMPARED) | {t for t in oracle.records if t.startswith("defects.")})
    checks = {}
    for topic in topics:
        actual, expected = read_json(bootstrap, prefix + topic, config), oracle.records.get(topic, [])
        if topic == "escalations":
            actual, expected = per_turn(actual), per_turn(expected)
        checks[topic] = check_topic(topic, actual, expected)
    return checks


def per_turn(records: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in records if v.get("kind") in PER_TURN_ESCALATIONS]


def aggregate_escalations(
    bootstrap: str, prefix: str, oracle: Oracle, config: dict[str, Any] | None = None
) -> dict[str, dict[str, int]]:
    """Escalations from order-sensitive detectors, per kind: distinct ids on Kafka and in the oracle."""
    out: dict[str, dict[str, int]] = {}
    for where, records in (
        ("kafka", read_json(bootstrap, prefix + "escalations", config)),
        ("oracle", oracle.records.get("escalations", [])),
    ):
        ids: dict[str, set[str]] = defaultdict(set)
        for key, value in records:
            if value.get("kind") not in PER_TURN_ESCALATIONS:
                ids[value.get("kind", "?")].add(key)
        for kind, keys in ids.items():
            out.setdefault(kind, {"kafka": 0, "oracle": 0})[where] = len(keys)
    return out


def summarise(checks: dict[str, TopicCheck]) -> str:
    rows = [c.summary() for c in checks.values()]
    return "\n".join(str(r) for r in rows) + "\n" + _first_problems(checks)


def _first_problems(checks: dict[str, TopicCheck]) -> str:
    out = []
    for c in checks.values():
        for name in ("missing", "unexpected", "differing"):
            items = getattr(c, name)
            if items:
                out.append(f"{c.topic} {name} (first 5 of {len(items)}): {items[:5]}")
    return "\n".join(out)


def count_by(items: Iterable[Any]) -> dict[Any, int]:
    return dict(Counter(items))
