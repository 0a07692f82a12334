"""``convowatch produce``: send JSONL files (or generated traffic) to the input topics, keyed by turn_id
(signals by conversation_id)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas import Stream
from streams.admin import create_topics
from streams.config import Settings
from streams.embedded import merge_by_event_time, read_jsonl
from streams.exceptions import ConvowatchError
from streams.kafka_client import confluent_config
from streams.topics import input_topics


def turn_key(raw: bytes, field: str = "turn_id") -> bytes | None:
    """The record's ``turn_id`` (or ``field``) as the message key (``None`` for records too broken to have
    one: they still go to the topic, and the worker dead-letters them)."""
    try:
        value = orjson.loads(raw).get(field)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value.encode() if isinstance(value, str) else None


class InputProducer:
    """A confluent-kafka producer for the three input topics; ``close`` flushes and reports failures."""

    def __init__(self, settings: Settings) -> None:
        self.topics = input_topics(settings)
        # also checks the broker answers, and that the inputs agree in partition count (whatever it is)
        create_topics(settings, list(self.topics.values()), expect_partitions=False)
        self.producer = Producer(
            confluent_config(
                settings,
                **{
                    "linger.ms": 20,
                    "enable.idempotence": True,
                    "compression.type": "lz4",
                    "message.max.bytes": 4_194_304,
                },
            )
        )
        self.sent = dict.fromkeys((s.value for s in Stream), 0)
        self.errors: list[str] = []

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors.append(f"{message.topic()}: {error.str()}")

    def send(self, stream: Stream, raw: bytes, key: bytes | None = None) -> None:
        if key is None:
            key = turn_key(raw, "conversation_id" if stream is Stream.SIGNALS else "turn_id")
        while True:
            try:
                self.producer.produce(
                    self.topics[stream],
                    raw,
                    key,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                self.producer.poll(0.1)  # local queue full: let deliveries drain
            except KafkaException as exc:  # refused locally (larger than a record may be): the others go on
                refused = exc.args[0].str()
                self.errors.append(f"{self.topics[stream]}: a {len(raw)}-byte record refused: {refused}")
                return
        self.sent[stream.value] += 1
        self.producer.poll(0)

    def close(self, timeout: float = 60.0) -> dict[str, int]:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise ConvowatchError(f"{remaining} records were not delivered within {timeout:.0f}s")
        if self.errors:  # after the flush: the records that could go went
            raise ConvowatchError(f"{len(self.errors)} records failed delivery, first: {self.errors[0]}")
        return self.sent


def produce_files(settings: Settings, files: dict[Stream, Path]) -> dict[str, int]:
    """Send every line of each file to its input topic, merged by event time."""
    for stream, path in files.items():
        if not path.is_file():
            raise ConvowatchError(f"{stream.value} file not found: {path}")
    producer = InputProducer(settings)
    for _, _, stream, raw, _, _ in merge_by_event_time(read_jsonl(p, s) for s, p in files.items()):
        producer.send(stream, raw)
    return producer.close()


def produce_records(settings: Settings, records: Iterable[tuple[Stream, bytes]]) -> dict[str, int]:
    producer = InputProducer(settings)
    for stream, raw in records:
        producer.send(stream, raw)
    return producer.close()
