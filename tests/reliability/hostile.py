"""Hostile records for the three input topics: hand-written cases plus hypothesis-generated ones.

Each record is ``(stream, key, value)``; ``value`` ``None`` is a tombstone, ``key`` ``None`` a record without
a key. Hypothesis drives the generation (seeded, no example database); the records are then produced to
Kafka in one go and checked against what :func:`schemas.parse_record` says of each.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Stream
from tests.factories import chat_turn, human_label, judge_verdict, signal, verdict

Record = tuple[Stream, bytes | None, bytes | None]

FACTORIES = {
    Stream.CHAT_TURNS: chat_turn,
    Stream.JUDGE_VERDICTS: judge_verdict,
    Stream.HUMAN_LABELS: human_label,
    Stream.SIGNALS: signal,  # turn_id overrides are ignored (an unknown field): parse_record is the oracle
}
MB = 1_000_000


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def _deep(depth: int) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = {"n": node}
    return node


def hand_written(stream: Stream, tag: str, max_record_bytes: int) -> list[Record]:
    """The same list of cases for each stream; turn ids are unique per case."""
    make = FACTORIES[stream]
    out: list[Record] = []

    def add(case: str, value: bytes | None, key: bytes | str | None = "turn") -> None:
        turn = f"{tag}-{stream.value}-{case}"
        k = turn.encode() if key == "turn" else key
        out.append((stream, k if not isinstance(k, str) else k.encode(), value))

    def valid(case: str, **overrides: Any) -> dict[str, Any]:
        return make(turn_id=f"{tag}-{stream.value}-{case}", **overrides)

    for i, junk in enumerate(
        [b"not json", b"{", b"", b"null", b"[]", b'"a string"', b"123", b"true", b"{}", b"[{}]"]
    ):
        add(f"junk{i}", junk)
    add("non-utf8", b"\xff\xfe\x00\x80garbage")
    add("non-utf8-in-string", b'{"turn_id": "\xff\xfe", "ts": "2026-11-02T08:00:00Z"}')
    add("nan", _dump(valid("nan")).replace(b'"schema_version": 1', b'"schema_version": NaN'))
    add("infinity", _dump(valid("infinity"))[:-1] + b', "score": Infinity}')
    add("huge-number", _dump(valid("huge-number"))[:-1] + b', "x": 1e999}')
    add("deep-nesting-rejected", b'{"a": ' * 3000 + b"1" + b"}" * 3000)
    add("deep-nesting-extra-field", _dump(valid("deep-nesting-extra-field", extra=_deep(200))))
    add("extra-fields", _dump(valid("extra-fields", unknown_field=1, another={"x": [1, 2]})))
    for field in ("turn_id", "ts", *(("judge_id", "verdicts") if stream is Stream.JUDGE_VERDICTS else ())):
        record = valid(f"missing-{field}")
        del record[field]
        add(f"missing-{field}", _dump(record))
    for i, (field, wrong) in enumerate(
        [("turn_id", 42), ("ts", 1700000000), ("ts", None), ("schema_version", "1"), ("turn_id", "")]
    ):
        add(f"wrong-type{i}", _dump(valid(f"wrong-type{i}") | {field: wrong}))
    add("ts-1970", _dump(valid("ts-1970", ts="1970-01-01T00:00:00Z")))
    add("ts-2150", _dump(valid("ts-2150", ts="2150-01-01T00:00:00Z")))
    add("ts-naive", _dump(valid("ts-naive", ts="2026-11-02T08:00:00")))
    add("ts-2099", _dump(valid("ts-2099", ts="2099-12-31T23:59:59Z")))
    add("ts-2000", _dump(valid("ts-2000", ts="2000-01-01T00:00:00+14:00")))
    add("version-2", _dump(valid("version-2", schema_version=2)))
    add("version-99", _dump(valid("version-99", schema_version=99)))
    add("version-0", _dump(valid("version-0", schema_version=0)))
    add("duplicate", _dump(valid("duplicate")))
    add("duplicate", _dump(valid("duplicate")))
    add("tombstone", None)
    add("no-key-valid", _dump(valid("no-key-valid")), key=None)
    add("no-key-junk", b"junk without a key", key=None)
    if stream is not Stream.CHAT_TURNS:  # labels and verdicts for turns never seen
        add("never-seen", _dump(valid("never-seen", verdicts=[verdict("safety", "fail")])))
    filler = max_record_bytes - 2_000
    if stream is Stream.CHAT_TURNS:
        add("valid-near-limit", _dump(valid("valid-near-limit", user_text="x" * filler)))
    else:
        big = [verdict(f"d{i}", "ok", rationale="r" * 19_000) for i in range(min(64, filler // 19_100))]
        add("valid-near-limit", _dump(valid("valid-near-limit", verdicts=big)))
    add("too-large", b'{"turn_id": "' + b"x" * (2 * MB) + b'"}')
    add("invalid-1mb", b"[" * 10 + b"y" * (MB - 100))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def generated(stream: Stream, tag: str, examples: int = 120) -> list[Record]:
    """Hypothesis-generated records: arbitrary bytes, arbitrary JSON, and valid records with one field
    removed, replaced by an arbitrary JSON value, or an extra field added."""
    make = FACTORIES[stream]
    found: list[Record] = []
    counter = iter(range(10**9))

    mutation = st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(sorted(make())), st.none()),
        st.tuples(st.just("set"), st.sampled_from(sorted(make())), json_values),
        st.tuples(st.just("add"), st.text(min_size=1, max_size=12), json_values),
    )
    value = st.one_of(
        st.binary(max_size=300).map(lambda b: ("bytes", b)),
        json_values.map(lambda v: ("json", v)),
        mutation.map(lambda m: ("mutation", m)),
    )

    @settings(
        max_examples=examples,
        derandomize=True,  # the same records on every run
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(value)
    def collect(item: tuple[str, Any]) -> None:
        kind, payload = item
        turn = f"{tag}-{stream.value}-gen{next(counter)}"
        if kind == "bytes":
            found.append((stream, turn.encode(), payload))
        elif kind == "json":
            found.append((stream, turn.encode(), json.dumps(payload).encode()))
        else:
            op, field, new = payload
            record = make(turn_id=turn)
            if op == "drop":
                record.pop(field, None)
            else:
                record[field] = new
            # keyed by its turn_id, as producers must: records of one turn stay in one partition
            turn_id = record.get("turn_id")
            key = turn_id if isinstance(turn_id, str) else turn
            found.append((stream, key.encode(errors="surrogatepass"), json.dumps(record).encode()))

    collect()
    return found
