"""What the pipeline's stages hand back: records to publish, and the shapes they share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

Entry = dict[str, Any]
UNKNOWN_SEGMENT: dict[str, str | None] = dict.fromkeys(
    ("journey", "intent", "model_version", "channel", "modality")
)
SEP = "\x1f"  # joins parts of internal keys: not in a ShortCode; an Identifier (it may hold one) comes last


@dataclass(frozen=True, slots=True)
class Emit:
    """A record to publish: logical topic (defects, escalations, pairs, deadletter), key and value."""

    topic: str
    key: str
    value: dict[str, Any]


#: How the JSON of a join entry begins (streams.join_entry.new_entry makes them so): its changelog partition,
#: then its last event time.
_ENTRY_HEAD = re.compile(rb'\{"p":(\d+|null),"last":(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)[,}]')


def entry_head(value: Entry | bytes) -> tuple[Any, Any]:
    """A join entry's ``p`` (changelog partition) and ``last`` (event time); of an entry kept as JSON bytes,
    read from the start of its JSON without decoding the rest (decoded when laid out otherwise)."""
    if isinstance(value, bytes):
        match = _ENTRY_HEAD.match(value)
        if match is not None:
            return (None if match[1] == b"null" else int(match[1])), float(match[2])
        entry: Entry = orjson.loads(value)
        return entry.get("p"), entry.get("last")
    return value.get("p"), value.get("last")


def sampled_labels(labelled: dict[str, Any]) -> dict[str, str]:
    """The labels of a ``labelled`` observation that count for its turn: the dimensions it is the turn's first
    label on that is not on a gold item (``first_dimensions``), so that a per-turn human figure sees each
    turn once; all of them in an observation written before that field."""
    labels: dict[str, str] = labelled["labels"]
    first = labelled.get("first_dimensions")
    return labels if first is None else {d: labels[d] for d in first if d in labels}


def output_id(*parts: str) -> str:
    """The id of a published record made of ``parts``, joined with ``/``. A part's own ``%`` and ``/`` are
    escaped (``%25``, ``%2F``), so two different combinations never share an id: turn ids, dimensions, judge
    and annotator ids may hold a ``/``. Parts without either character read as they are.

    >>> output_id("unsafe", "t-1", "safety", "judge", "judge-a")
    'unsafe/t-1/safety/judge/judge-a'
    >>> output_id("unsafe", "t/1", "safety", "judge", "a"), output_id("unsafe", "t", "1/safety", "judge", "a")
    ('unsafe/t%2F1/safety/judge/a', 'unsafe/t/1%2Fsafety/judge/a')
    """
    return "/".join(p.replace("%", "%25").replace("/", "%2F") if "/" in p or "%" in p else p for p in parts)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
