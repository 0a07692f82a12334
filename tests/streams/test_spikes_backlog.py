"""A defect spike read from a backlog: a worker catching up reads each input partition in chunks, round
robin, and at low traffic one chunk spans the whole incident. Until 2026-11-26 the spike fired and resolved
once per chunk that went back in time (9 and 8 times in its two segments, each a new ``escalation_id`` and
a page); it fires and resolves once, as read in event order."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import orjson
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.config import Settings
from streams.generator import DEFAULT_START, TrafficGenerator
from streams.metrics import Metrics
from streams.partitioning import java_partition
from streams.pipeline import Pipeline
from streams.traffic_model import Incident

PARTITIONS = 8


def incident_records() -> list[tuple[Stream, bytes, str]]:
    """15 minutes at 10 turns a second: 40% of shopper-v42's answers unsafe from minute 5 to minute 10
    (judged fail until then, pass after: the model was fixed). (stream, record, partitioning key)."""
    gen = TrafficGenerator(
        seed=11,
        rate=10,
        rollout_start_s=0,
        rollout_ramp_s=1,
        incident=Incident(300, "shopper-v42", "shopper", "safety", 0.4),
    )
    fixed = (DEFAULT_START + timedelta(seconds=600)).isoformat().replace("+00:00", "Z")
    records = []
    for _, stream, event in gen.records(900, drain=True):
        raw = orjson.dumps(event)
        if stream in ("judge_verdicts", "human_labels") and event["ts"] > fixed:
            raw = raw.replace(b'"dimension":"safety","label":"fail"', b'"dimension":"safety","label":"pass"')
        records.append((Stream(stream), raw, event.get("turn_id") or event.get("conversation_id") or ""))
    return records


def as_a_backlog(records: list[tuple[Stream, bytes, str]], chunk: int) -> list[tuple[Stream, bytes, str]]:
    """``records`` in the order a consumer catching up reads them: ``chunk`` records of each partition of
    each input topic in turn."""
    queues: dict[tuple[Stream, int], list[tuple[Stream, bytes, str]]] = defaultdict(list)
    for record in records:
        queues[(record[0], java_partition(record[2].encode(), PARTITIONS))].append(record)
    order: list[tuple[Stream, bytes, str]] = []
    while any(queues.values()):
        for queue in queues.values():
            order.extend(queue[:chunk])
            del queue[:chunk]
    return order


def spike_statuses(records: list[tuple[Stream, bytes, str]]) -> dict[str, list[str]]:
    """The statuses each ``defect_spike`` escalation went through, by segment (journey, model version)."""
    settings = Settings(partitions=PARTITIONS)
    pipeline = Pipeline(settings, Metrics(CollectorRegistry(), label_max_values=settings.label_max_values))
    ids: dict[str, str] = {}
    statuses: dict[str, list[str]] = defaultdict(list)
    for stream, raw, _ in records:
        for emit in pipeline.process(stream, raw, source_topic=stream.value):
            value = emit.value
            if emit.topic == "escalations" and value.get("kind") == "defect_spike":
                segment = value["segment"]
                name = f"{segment['journey']}/{segment.get('model_version') or '*'}"
                if ids.setdefault(emit.key, name) == name and value["revision"] == 1:
                    statuses[name].append("new")
                statuses[name].append(value["status"])
    return dict(statuses)


def test_a_spike_read_from_a_backlog_fires_and_resolves_once_per_segment_as_in_event_order() -> None:
    records = incident_records()
    once = {"shopper/*": ["new", "firing", "resolved"], "shopper/shopper-v42": ["new", "firing", "resolved"]}
    assert spike_statuses(records) == once
    assert spike_statuses(as_a_backlog(records, chunk=500)) == once
