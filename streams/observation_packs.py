"""Observations on Kafka travel in packs: one record per shard key per batch, not one per observation.

The join emits about two observations per input event, and most of them share a few shard keys (a
segment, a judge). Sent one by one they doubled the records the worker wrote and the aggregation stage
read, and both sides pay a per-record cost (the producer's send, the consumer's and Faust's per-event
handling) far above the cost of the observation itself. A pack is a JSON array of observations with the
same shard key, in the order the join emitted them; packs stay under :data:`PACK_MAX_BYTES`.

Nothing in an observation depends on the record that carried it: each carries its own source position
(``src``), by which the aggregation stage applies it at most once, so packing changes no result.
A record holding a single JSON object (written before packs existed) is read as a pack of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

#: Largest pack written, in bytes; well under the producer's 1,000,000-byte request limit. An observation
#: larger than this on its own (they are small: a few hundred bytes) is sent as a pack of one.
PACK_MAX_BYTES = 256_000


def packs(encoded: list[bytes], max_bytes: int = PACK_MAX_BYTES) -> Iterator[bytes]:
    """JSON arrays of the JSON-encoded observations ``encoded``, in order, each at most ``max_bytes``
    (unless one observation alone is larger).

    >>> list(packs([b'{"a":1}', b'{"b":2}', b'{"c":3}'], max_bytes=17))
    [b'[{"a":1},{"b":2}]', b'[{"c":3}]']
    """
    chunk: list[bytes] = []
    size = 1  # the closing bracket; each member adds its length plus one (an opening bracket or a comma)
    for value in encoded:
        if chunk and size + len(value) + 1 > max_bytes:
            yield b"[" + b",".join(chunk) + b"]"
            chunk, size = [], 1
        chunk.append(value)
        size += len(value) + 1
    if chunk:
        yield b"[" + b",".join(chunk) + b"]"


def unpack(raw: bytes) -> list[dict[str, Any]]:
    """The observations of one record: a pack, or a single observation.

    >>> unpack(b'[{"kind":"turn"},{"kind":"judged"}]')
    [{'kind': 'turn'}, {'kind': 'judged'}]
    >>> unpack(b'{"kind":"turn"}')
    [{'kind': 'turn'}]
    """
    value = orjson.loads(raw)
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise ValueError(f"an observations record must hold a JSON array or object, got {type(value).__name__}")


def positioned(observations: list[dict[str, Any]], source: str, offset: int) -> list[dict[str, Any]]:
    """``observations`` of one pack (``source``: its topic and partition, ``offset``: its own), each without
    a source position given the pack's, so that a pack delivered again (the aggregation stage replaying
    after a crash) applies them once. (On Kafka the join's evictions give their outputs positions of their
    own, ``(evictions):<partition>``; embedded, and from code before 2026-11-26, they come without.)

    >>> positioned([{"src": ["", None, 0]}, {"src": ["chat:1", 7, 0]}], "observations:2", 40)
    [{'src': ['observations:2', 40, 0]}, {'src': ['chat:1', 7, 0]}]
    """
    for i, observation in enumerate(observations):
        if observation["src"][1] is None:
            observation["src"] = [source, offset, i]
    return observations
