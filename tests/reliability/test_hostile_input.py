"""Hostile input on all three topics: the worker never crashes and accounts for every record.

Per stream, ``records_in = valid + dead-lettered`` (by the worker's counters), each count equal to what
:func:`schemas.parse_record` says of the records sent; the dead-letter topic holds exactly the dead-lettered
records, each with its original bytes (cut, with the whole original's SHA-256, when too large to publish).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import InvalidRecord, Stream, parse_record
from streams.config import Settings
from streams.kafka_client import confluent_config
from streams.topics import input_topics
from tests.reliability.harness import STREAMS, Worker, report, worker_env
from tests.reliability.hostile import Record, generated, hand_written
from tests.support.broker import KafkaBroker
from tests.support.verify import check_outputs, consumer_lag, embedded_oracle, read_json, summarise
from tests.support.wait import wait_until

pytestmark = pytest.mark.reliability

MAX_MESSAGE_BYTES = 4_194_304  # input topics take the 2 MB records; the worker dead-letters them as too_large


def expected_outcome(stream: Stream, value: bytes | None, max_bytes: int, max_future: float) -> str:
    try:
        event = parse_record(stream, value or b"", max_bytes=max_bytes)
    except InvalidRecord as exc:
        return exc.reason
    if max_future and event.ts.timestamp() > time.time() + max_future:  # none is near the limit
        return "future_timestamp"
    return "valid"


def original_digest(dead: dict[str, object]) -> str:
    """SHA-256 of a dead letter's whole original: from its bytes, or from ``detail`` when it was cut."""
    original = base64.b64decode(str(dead["original_base64"]))
    if len(original) == dead["original_size"]:
        return hashlib.sha256(original).hexdigest()
    match = re.search(r"sha256 of the whole original ([0-9a-f]{64})", str(dead["detail"]))
    assert match, f"truncated dead letter without a digest: {dead['detail']!r}"
    return match.group(1)


def test_hostile_input_is_dead_lettered_and_accounted_for(
    kafka_broker: KafkaBroker, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    tag = unique_name("hostile")
    prefix, app_id = tag + ".", unique_name("hostile-app")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    per_stream = {s: hand_written(s, tag, settings.max_record_bytes) + generated(s, tag) for s in Stream}
    records: list[Record] = []  # the streams interleaved, as they would arrive
    for i in range(max(len(v) for v in per_stream.values())):
        records.extend(v[i] for v in per_stream.values() if i < len(v))

    topics = input_topics(settings)
    new = [
        NewTopic(t, settings.partitions, 1, config={"max.message.bytes": str(MAX_MESSAGE_BYTES)})
        for t in topics.values()
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(new).values():
        future.result(30)

    worker = Worker(bootstrap, worker_env(prefix, app_id), tmp_path / "worker.log")
    try:
        worker.start()
        producer = Producer(confluent_config(settings, **{"message.max.bytes": MAX_MESSAGE_BYTES + 10_000}))
        errors: list[str] = []
        for stream, key, value in records:
            producer.produce(
                topics[stream], value, key, on_delivery=lambda e, _: errors.append(str(e)) if e else None
            )
            producer.poll(0)
        assert producer.flush(60) == 0 and not errors, errors

        sent = Counter(s.value for s, _, _ in records)
        wait_until(
            lambda: (
                all(worker.value("convowatch_records_in_total", stream=s) == sent[s] for s in STREAMS)
                and not consumer_lag(
                    bootstrap, app_id, [*topics.values(), settings.topic("internal.observations")]
                )
            ),
            timeout=120,
            interval=0.5,
            message=lambda: {s: worker.value("convowatch_records_in_total", stream=s) for s in STREAMS},
        )
        assert worker.alive(), worker.log_tail()
        samples = worker.scrape()
        dead = [v for _, v in read_json(bootstrap, prefix + "deadletter")]
        oracle = embedded_oracle([(s, v or b"") for s, _, v in records], settings)
        checks = check_outputs(bootstrap, prefix, oracle)
    finally:
        worker.stop()

    outcomes = Counter(
        (s.value, expected_outcome(s, v, settings.max_record_bytes, settings.max_future_seconds))
        for s, _, v in records
    )
    counters: Counter[tuple[str, str]] = Counter()
    for (name, labels), count in samples.items():
        d = dict(labels)
        if name == "convowatch_records_valid_total":
            counters[(d["stream"], "valid")] += int(count)
        elif name == "convowatch_records_deadlettered_total":
            counters[(d["stream"], d["reason"])] += int(count)
    assert counters == +outcomes  # per stream: valid, and dead-lettered by reason, as parse_record says
    for name in STREAMS:
        valid = counters[(name, "valid")]
        lettered = sum(n for (s, r), n in counters.items() if s == name and r != "valid")
        assert samples[("convowatch_records_in_total", (("stream", name),))] == valid + lettered == sent[name]
    assert not samples.get(("convowatch_internal_errors_total", (("stage", "aggregate"),)))

    assert len(dead) == sum(n for (_, r), n in counters.items() if r != "valid")
    sent_invalid = Counter(
        (s.value, hashlib.sha256(v or b"").hexdigest())
        for s, _, v in records
        if expected_outcome(s, v, settings.max_record_bytes, settings.max_future_seconds) != "valid"
    )
    assert Counter((d["stream"], original_digest(d)) for d in dead) == sent_invalid
    # the whole record is kept: its key too, and whether its value was null (a tombstone)
    sent_whole = Counter(
        (s.value, None if k is None else base64.b64encode(k).decode(), v is None)
        for s, k, v in records
        if expected_outcome(s, v, settings.max_record_bytes, settings.max_future_seconds) != "valid"
    )
    assert Counter((d["stream"], d["original_key_base64"], d["tombstone"]) for d in dead) == sent_whole
    assert {d["reason"] for d in dead} <= {r for _, r in outcomes} - {"valid"}
    truncated = [d for d in dead if len(base64.b64decode(d["original_base64"])) < d["original_size"]]
    for check in checks.values():
        assert check.ok, summarise(checks)

    report(
        "hostile_input",
        {
            "records": len(records),
            "bytes": sum(len(v or b"") for _, _, v in records),
            "by_stream_and_outcome": {f"{s}/{r}": n for (s, r), n in sorted(outcomes.items())},
            "dead_letters": len(dead),
            "dead_letters_truncated": len(truncated),
            "worker_alive": True,
        },
    )
