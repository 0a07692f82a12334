"""The exported JSON Schemas against the parser, on edge cases producers run into: a record the schema accepts
is one the parser accepts, but for the rules only the parser checks (README, Event contract (v1)); and the
parser's leniencies (what it takes that the schema refuses) are the listed ones.

The schemas are checked with check-jsonschema, as a producer would (jsonschema underneath, asserting
``format`` with RFC 3339 date-times, and ECMA-262 regular expressions as JSON Schema specifies them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import InvalidRecord, Stream, parse_record
from schemas.export import json_schema, write_json_schemas
from tests.factories import chat_turn, human_label, judge_verdict, signal, verdict

SCHEMA_OF = {
    Stream.CHAT_TURNS: "chat_turn",
    Stream.JUDGE_VERDICTS: "judge_verdict",
    Stream.HUMAN_LABELS: "human_label",
    Stream.SIGNALS: "signal",
}
BUILD: dict[Stream, Callable[..., dict[str, Any]]] = {
    Stream.CHAT_TURNS: chat_turn,
    Stream.JUDGE_VERDICTS: judge_verdict,
    Stream.HUMAN_LABELS: human_label,
    Stream.SIGNALS: signal,
}

#: Rules only the parser checks (README, Event contract (v1)): the schema accepts such a record, the parser
#: dead-letters it.
PARSER_ONLY = {
    "newer_version": "schema_version above the supported one",
    "integer_version": "schema_version as a JSON integer (1, not 1.0)",
    "time_range": "event times within 2000-2099",
    "quality_label": "pass or fail on a quality dimension",
    "quality_spelling": "quality dimension names spelled as listed",
    "signal_kind": "the fields a signal kind requires or forbids",
}
#: What the parser takes beyond the schema (pydantic's lax mode), not to be relied on: the schema refuses
#: such a record, the parser accepts it.
PARSER_LENIENT = {
    "number_as_string": "a number in a string where a number goes (perceptual scores excepted)",
    "bool_as_number": "true or false where a number goes (perceptual scores excepted)",
    "bool_spelled": '"true", "false", 0 or 1 where a boolean goes',
    "time_shape": "a time without seconds, an offset without a colon, a space for T",
}


@dataclass(frozen=True)
class Case:
    stream: Stream
    label: str
    data: bytes
    expected: str | None = None  # None: schema and parser agree; else a key of PARSER_ONLY or PARSER_LENIENT


def case(stream: Stream, label: str, expected: str | None = None, **fields: Any) -> Case:
    """The stream's valid record with ``fields`` replaced (``...`` removes one)."""
    record = BUILD[stream]()
    for name, value in fields.items():
        if value is ...:
            del record[name]
        else:
            record[name] = value
    return Case(stream, label, json.dumps(record, ensure_ascii=False).encode(), expected)


def spliced(stream: Stream, label: str, placeholder_field: str, token: bytes, expected: str | None) -> Case:
    """The stream's valid record with ``placeholder_field``'s value written as the raw JSON ``token``."""
    data = case(stream, label, **{placeholder_field: "PLACEHOLDER"}).data
    return Case(stream, label, data.replace(b'"PLACEHOLDER"', token), expected)


J, C, H, S = Stream.JUDGE_VERDICTS, Stream.CHAT_TURNS, Stream.HUMAN_LABELS, Stream.SIGNALS


def judge_case(label: str, expected: str | None = None, **fields: Any) -> Case:
    return case(J, label, expected, **fields)


def one_verdict(label: str, expected: str | None = None, **fields: Any) -> Case:
    return judge_case(label, expected, verdicts=[verdict("safety", "pass") | fields])


CASES = [
    *(case(stream, f"{stream.value}: valid") for stream in BUILD),
    # map keys: the schema checks a key as the parser does
    judge_case("scores key with a space", scores={"clip score": 0.5}),
    judge_case("scores key with a space, value a string", scores={"clip score": "high"}),
    judge_case("scores key of 65 characters", scores={"k" * 65: 0.5}),
    judge_case("scores key empty", scores={"": 0.5}),
    judge_case("scores key unicode", scores={"clïp": 0.5}),
    judge_case("scores key of every allowed character", scores={"a-Z_0.9:x/y@v+w": 0.5}),
    judge_case("scores value a string", scores={"clip": "0.5"}),
    judge_case("scores value true", scores={"clip": True}),
    judge_case("scores value an integer", scores={"clip": 1}),
    judge_case("scores value past 1e6", scores={"clip": 1_000_000.5}),
    judge_case("17 scores", scores={f"s{i}": 0.5 for i in range(17)}),
    case(C, "attributes key with a space", attributes={"market id": "de"}),
    case(C, "attributes key with a slash and an at", attributes={"team/eu@de": "x"}),
    case(C, "attributes key of 65 characters", attributes={"k" * 65: "x"}),
    case(C, "attributes key with a newline", attributes={"market\n": "de"}),
    case(C, "attributes value an integer", attributes={"market": 3}),
    case(C, "attributes value of 257 characters", attributes={"market": "x" * 257}),
    case(C, "65 attributes", attributes={f"a{i}": "x" for i in range(65)}),
    # times
    judge_case("ts with nanoseconds", ts="2026-11-26T08:00:00.123456789Z"),
    judge_case("ts with 7 fraction digits and an offset", ts="2026-11-26T08:00:00.1234567+00:00"),
    judge_case("ts lower-case t and z", ts="2026-11-26t08:00:00z"),
    judge_case("ts offset -00:00", ts="2026-11-26T08:00:00-00:00"),
    judge_case("ts naive", ts="2026-11-26T08:00:00"),
    judge_case("ts date only", ts="2026-11-26"),
    judge_case("ts Unix seconds in a string", ts="1795000000"),
    judge_case("ts Unix seconds as a number", ts=1795000000),
    judge_case("ts month 13", ts="2026-13-26T08:00:00Z"),
    judge_case("ts with a trailing newline", ts="2026-11-26T08:00:00Z\n"),
    judge_case("ts 1999", "time_range", ts="1999-12-31T23:59:59Z"),
    judge_case("ts 2100", "time_range", ts="2100-01-01T00:00:00Z"),
    judge_case("ts leap second", ts="2016-12-31T23:59:60Z"),  # refused as a date-time and by the parser
    judge_case("ts without seconds", "time_shape", ts="2026-11-26T08:00Z"),
    judge_case("ts offset without a colon", "time_shape", ts="2026-11-26T08:00:00+0530"),
    judge_case("ts with a space for T", "time_shape", ts="2026-11-26 08:00:00Z"),
    # versions
    judge_case("schema_version absent", schema_version=...),
    judge_case("schema_version 2", "newer_version", schema_version=2),
    judge_case("schema_version 1.0", "integer_version", schema_version=1.0),
    judge_case("schema_version '1'", schema_version="1"),
    judge_case("schema_version 0", schema_version=0),
    judge_case("schema_version null", schema_version=None),
    # identifiers and codes
    judge_case("turn_id of 256 characters", turn_id="x" * 256),
    judge_case("turn_id of 257 characters", turn_id="x" * 257),
    judge_case("turn_id of 256 astral characters", turn_id="😀" * 256),
    judge_case("turn_id unicode", turn_id="tür-ñ-😀"),
    judge_case("turn_id with an inner newline", turn_id="a\nb"),
    judge_case("turn_id with a trailing newline", turn_id="ab\n"),
    judge_case("turn_id ending in a no-break space", turn_id="abc\u00a0"),
    judge_case("turn_id a number", turn_id=12345),
    judge_case("judge_id unicode", judge_id="jügé"),
    judge_case("judge_id with a trailing newline", judge_id="j1\n"),
    judge_case("judge_id empty", judge_id=""),
    # verdicts
    one_verdict("confidence 1.5", confidence=1.5),
    one_verdict("confidence a string", "number_as_string", confidence="0.9"),
    one_verdict("confidence true", "bool_as_number", confidence=True),
    one_verdict("score a string", "number_as_string", score="3"),
    one_verdict("rationale null", rationale=None),
    one_verdict("rationale of 20001 characters", rationale="x" * 20_001),
    spliced(
        J,
        "verdict score 1e400",
        "verdicts",
        b'[{"dimension": "safety", "label": "pass", "score": 1e400}]',
        None,
    ),
    spliced(J, "perceptual score 1e400", "scores", b'{"clip": 1e400}', None),
    judge_case("label PASS on safety", "quality_label", verdicts=[verdict("safety", "PASS")]),
    judge_case("label ok on safety", "quality_label", verdicts=[verdict("safety", "ok")]),
    judge_case("dimension Safety", "quality_spelling", verdicts=[verdict("Safety", "fail")]),
    judge_case("label empty", verdicts=[verdict("tone", "")]),
    judge_case("label whitespace on a free dimension", verdicts=[verdict("tone", "  ")]),
    judge_case("dimension with a space", verdicts=[verdict("sub policy", "fail")]),
    judge_case("a dimension twice", verdicts=[verdict("safety", "pass"), verdict("safety", "fail")]),
    judge_case("no verdicts", verdicts=[]),
    judge_case("65 verdicts", verdicts=[verdict(f"d{i}", "x") for i in range(65)]),
    judge_case("an unknown field", x_added_later={"a": [1]}),
    spliced(J, "a key given twice (the last stands)", "judge_id", b'"j 1", "judge_id": "j1"', None),
    spliced(J, "a key given twice (the last is wrong)", "judge_id", b'"j1", "judge_id": "j 1"', None),
    # chat turns
    case(C, "latency negative", latency_ms=-1),
    case(C, "latency a string", "number_as_string", latency_ms="120"),
    case(C, "channel Chat", channel="Chat"),
    case(C, "modality IMAGE", modality="IMAGE"),
    case(C, "user_text null", user_text=None),
    case(C, "outcome null", outcome=None),
    case(C, "outcome.contained 'true'", "bool_spelled", outcome={"contained": "true"}),
    case(C, "outcome.contained 1", "bool_spelled", outcome={"contained": 1}),
    case(C, "guardrail flag with a space", guardrail_flags=["pii detected"]),
    case(C, "risk_topics null", risk_topics=None),
    case(C, "intent_confidence 1.01", intent_confidence=1.01),
    case(C, "journey empty", journey=""),
    spliced(C, "latency NaN", "latency_ms", b"NaN", None),
    # human labels
    case(H, "is_gold 'false'", "bool_spelled", is_gold="false"),
    case(H, "is_gold 0", "bool_spelled", is_gold=0),
    case(H, "inclusion_probability 0", inclusion_probability=0),
    case(H, "inclusion_probability 1e-6", inclusion_probability=1e-6),
    case(H, "labeling_seconds a string", "number_as_string", labeling_seconds="30"),
    # signals
    case(S, "purchase with order_id", kind="purchase", order_id="o1", value=12.5),
    case(S, "purchase without order_id", "signal_kind", kind="purchase"),
    case(S, "order_id on a thumbs_up", "signal_kind", order_id="o1"),
    case(S, "order_id null on a thumbs_up", order_id=None),
    case(S, "value a string", "number_as_string", kind="add_to_cart", value="12.5"),
    case(S, "kind PURCHASE", kind="PURCHASE"),
]


def _schema_refusals(out: Path, cases: list[Case]) -> dict[int, list[str]]:
    """check-jsonschema's errors on each case (by index), each stream's cases validated in one run."""
    checker = Path(sys.executable).with_name("check-jsonschema")
    assert checker.is_file(), f"{checker} not found: install the test extras (make venv)"
    write_json_schemas(out)
    errors: dict[int, list[str]] = {}
    for stream, name in SCHEMA_OF.items():
        files = {}
        for i, c in enumerate(cases):
            if c.stream is stream:
                files[str(out / f"case{i}.json")] = i
                (out / f"case{i}.json").write_bytes(c.data)
        schema = out / f"{name}.v1.schema.json"
        result = subprocess.run(
            [str(checker), "--schemafile", str(schema), "-o", "json", *files],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        report = json.loads(result.stdout)
        for error in report["errors"] + report["parse_errors"]:  # not JSON to it (NaN): refused too
            errors.setdefault(files[error["filename"]], []).append(f"{error.get('path')}: {error['message']}")
    return errors


def _parser_refusal(c: Case) -> str | None:
    try:
        parse_record(c.stream, c.data)
    except InvalidRecord as exc:
        return f"{exc.reason}: {exc.detail}"
    return None


def test_the_exported_schemas_accept_what_the_parser_accepts_but_for_the_listed_rules(tmp_path):
    assert len({(c.stream, c.label) for c in CASES}) == len(CASES), "two cases of the same name"
    schema_errors = _schema_refusals(tmp_path, CASES)
    wrong = []
    for i, c in enumerate(CASES):
        schema_ok, parser_error = i not in schema_errors, _parser_refusal(c)
        if c.expected in PARSER_ONLY:
            right = schema_ok and parser_error is not None
        elif c.expected in PARSER_LENIENT:
            right = not schema_ok and parser_error is None
        else:
            assert c.expected is None, c.expected
            right = schema_ok == (parser_error is None)
        if not right:
            wrong.append(
                f"{c.stream.value} {c.label!r} (expected {c.expected or 'agreement'}): schema "
                f"{'accepts' if schema_ok else schema_errors[i]}, parser {parser_error or 'accepts'}"
            )
    assert not wrong, "\n".join(wrong)
    used = {c.expected for c in CASES}
    assert set(PARSER_ONLY) | set(PARSER_LENIENT) <= used, "a listed rule no case shows"


@pytest.mark.parametrize("ts", ["2026-11-26T08:00:00", "2026-11-26", "1795000000", "26/11/2026 08:00:00Z"])
def test_the_time_shape_is_checked_by_validators_that_do_not_assert_formats(ts):
    # JSON Schema 2020-12 makes ``format`` an annotation: a validator checks date-time only when told to
    validator = jsonschema.Draft202012Validator(json_schema("judge_verdict"))  # no format checker
    errors = list(validator.iter_errors(judge_verdict(ts=ts)))
    assert [e.validator for e in errors] == ["pattern"]
    assert [list(e.absolute_path) for e in errors] == [["ts"]]
