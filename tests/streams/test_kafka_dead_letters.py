"""The Kafka agent's dead letters: the input record's key and tombstone flag, within a producer request."""

from __future__ import annotations


def test_a_dead_letter_keeps_a_long_key_cut_and_stays_publishable() -> None:
    # the key joined the dead letter whole: an 800 KB key made it too large to publish, and the worker
    # exited on it at every restart
    import base64
    from types import SimpleNamespace

    import orjson
    from prometheus_client import CollectorRegistry

    from streams.app import MAX_KEY_BYTES, KafkaTransport, truncated_dead_letter
    from streams.config import Settings
    from streams.kafka_client import MAX_WRITE_BYTES
    from streams.metrics import Metrics

    transport = KafkaTransport(Settings(broker="127.0.0.1:1"), Metrics(CollectorRegistry()))
    topic = next(iter(transport.streams_by_topic))
    key = b"k" * 800_000
    message = SimpleNamespace(topic=topic, partition=0, offset=5, key=key)
    [dead] = transport._ingest(SimpleNamespace(message=message, value=b"x" * 400_000))
    value = dead.value
    assert base64.b64decode(value["original_key_base64"]) == key[:MAX_KEY_BYTES]
    assert value["original_key_size"] == len(key) and value["tombstone"] is False
    encoded = orjson.dumps(value)
    if len(encoded) > MAX_WRITE_BYTES:
        encoded = truncated_dead_letter(value)
    assert len(encoded) <= MAX_WRITE_BYTES
