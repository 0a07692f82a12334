"""The Kafka agent's dead letters: the input record's key and tombstone flag, within a producer request."""

from __future__ import annotations

import asyncio
from typing import Any


def test_a_dead_letter_keeps_a_long_key_cut_and_stays_publishable() -> None:
    # the key joined the dead letter whole: an 800 KB key made it too large to publish, and the worker
    # exited on it at every restart
    import base64
    from types import SimpleNamespace

    import orjson
    from prometheus_client import CollectorRegistry

    from streams.app import KafkaTransport
    from streams.batch_publisher import truncated_dead_letter
    from streams.config import Settings
    from streams.join_agent import MAX_KEY_BYTES
    from streams.metrics import Metrics
    from streams.state import MAX_WRITE_BYTES

    transport = KafkaTransport(Settings(broker="127.0.0.1:1"), Metrics(CollectorRegistry()))
    topic = next(iter(transport.streams_by_topic))
    join = transport.join_agent
    assert join is not None
    key = b"k" * 800_000
    message = SimpleNamespace(topic=topic, partition=0, offset=5, key=key)
    [dead] = join.ingest(SimpleNamespace(message=message, value=b"x" * 400_000))
    value = dead.value
    assert base64.b64decode(value["original_key_base64"]) == key[:MAX_KEY_BYTES]
    assert value["original_key_size"] == len(key) and value["tombstone"] is False
    encoded = orjson.dumps(value)
    if len(encoded) > MAX_WRITE_BYTES:
        encoded = truncated_dead_letter(value)
    assert len(encoded) <= MAX_WRITE_BYTES


def test_a_refused_honeypot_label_keeps_its_key_in_its_dead_letter_and_is_scored(tmp_path) -> None:
    # a record the join's caps refuse on a golden turn publishes its gold observation after its dead letter;
    # the dead letter, no longer alone, must still get the record's key
    import base64
    from types import SimpleNamespace

    import orjson
    from prometheus_client import CollectorRegistry

    from schemas import Stream
    from streams.app import KafkaTransport
    from streams.config import Settings
    from streams.join_caps import MAX_RATERS_PER_TURN
    from streams.metrics import Metrics

    golden = tmp_path / "golden.jsonl"
    golden.write_bytes(orjson.dumps({"turn_id": "hp", "labels": {"relevance": "pass"}}) + b"\n")
    transport = KafkaTransport(Settings(broker="127.0.0.1:1", golden=golden), Metrics(CollectorRegistry()))
    join = transport.join_agent
    assert join is not None
    topic = next(t for t, stream in transport.streams_by_topic.items() if stream == Stream.HUMAN_LABELS)
    for offset in range(MAX_RATERS_PER_TURN + 1):
        label = {
            "turn_id": "hp",
            "ts": "2026-11-02T09:00:00Z",
            "annotator_id": f"ann-{offset}",
            "vendor_id": "vendor-x",
            "is_gold": True,
            "verdicts": [{"dimension": "relevance", "label": "fail"}],
        }
        message = SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"hp")
        emits = join.ingest(SimpleNamespace(message=message, value=orjson.dumps(label)))
    dead, gold = emits
    assert dead.value["reason"] == "too_many_raters"
    assert base64.b64decode(dead.value["original_key_base64"]) == b"hp" and dead.value["tombstone"] is False
    assert base64.b64decode(dead.value["original_base64"]) == orjson.dumps(label)
    assert gold.value["kind"] == "gold_label" and gold.value["annotator_id"] == f"ann-{MAX_RATERS_PER_TURN}"
    assert gold.value["src"] == [f"{topic}:0", MAX_RATERS_PER_TURN, 0]


def test_an_output_too_large_for_a_record_is_counted_and_not_sent_and_the_batch_goes_on() -> None:
    # sent, it would fail the producer's size check and the batch at every retry: a crash loop
    import asyncio

    from prometheus_client import CollectorRegistry

    from streams.app import KafkaTransport
    from streams.config import Settings
    from streams.emit import Emit
    from streams.metrics import Metrics

    registry = CollectorRegistry()
    transport = KafkaTransport(Settings(broker="127.0.0.1:1"), Metrics(registry))
    sent = _record_sends(transport)
    emits = [Emit("defects", "huge", {"turn": "x" * 1_000_000}), Emit("defects", "small", {"turn": "x"})]
    asyncio.run(transport.publisher.publish(emits, lambda: None, NoState(), {}))
    assert [(topic, key) for topic, key, _ in sent] == [("convowatch.defects", b"small")]
    assert registry.get_sample_value("convowatch_internal_errors_total", {"stage": "publish"}) == 1.0
    assert registry.get_sample_value("convowatch_outputs_total", {"topic": "defects"}) == 1.0


def test_an_observation_too_large_for_a_record_is_counted_and_not_sent_and_the_batch_goes_on() -> None:
    # observations were not size-checked: one over the producer's request limit (a ``reviewable`` carrying
    # 100 judges' 64 labels, 1.37 MB, before the join capped a turn's labels) failed the batch and the worker
    # at every restart
    import asyncio

    import orjson
    from prometheus_client import CollectorRegistry

    from streams.app import KafkaTransport
    from streams.config import Settings
    from streams.emit import Emit
    from streams.metrics import Metrics
    from streams.state import MAX_WRITE_BYTES

    registry = CollectorRegistry()
    transport = KafkaTransport(Settings(broker="127.0.0.1:1"), Metrics(registry))
    sent = _record_sends(transport)
    pad = MAX_WRITE_BYTES - len(orjson.dumps({"kind": "reviewable", "pad": ""}))
    fits = {"kind": "reviewable", "pad": "x" * (pad - 2)}  # a pack of one: exactly MAX_WRITE_BYTES
    emits = [
        Emit("observations", "review", {"kind": "reviewable", "pad": "x" * pad}),  # its pack: 2 bytes over
        Emit("observations", "review", fits),
        Emit("observations", "review", {"kind": "turn"}),
        Emit("defects", "small", {"turn": "x"}),
    ]
    asyncio.run(transport.publisher.publish(emits, lambda: None, NoState(), {}))
    assert sent == [
        ("convowatch.defects", b"small", 12),
        ("convowatch.internal.observations", b"review", MAX_WRITE_BYTES),
        ("convowatch.internal.observations", b"review", len(orjson.dumps([{"kind": "turn"}]))),
    ]
    assert registry.get_sample_value("convowatch_internal_errors_total", {"stage": "publish"}) == 1.0
    assert registry.get_sample_value("convowatch_outputs_total", {"topic": "observations"}) == 2.0


def _record_sends(transport: Any) -> list[tuple[str, bytes, int]]:
    """(topic, key, value size) of each record the worker hands to its producer, acknowledged at once: the
    broker is not the point here."""
    sent: list[tuple[str, bytes, int]] = []

    class Producer:
        async def send(self, topic: str, key: bytes, value: bytes, *args: Any) -> asyncio.Future[None]:
            sent.append((topic, key, len(value)))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    transport.app.producer = Producer()
    return sent


class NoState:
    """A table store with nothing to write."""

    async def send(self, producer: Any) -> list[Any]:
        return []
