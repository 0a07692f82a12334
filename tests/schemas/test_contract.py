"""The event contract: what parses, what is rejected, and with which reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    QUALITY_DIMENSIONS,
    SCHEMA_VERSION,
    ChatTurn,
    HumanLabel,
    InvalidRecord,
    JudgeVerdict,
    Stream,
    parse_record,
)
from schemas.export import EXPORTED, write_json_schemas
from schemas.parsing import DEFAULT_MAX_RECORD_BYTES, REASONS
from tests.factories import chat_turn, human_label, judge_verdict, raw, signal, verdict

LLMBAR = Path(__file__).parents[1] / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it

BUILDERS = {
    Stream.CHAT_TURNS: (chat_turn, ChatTurn),
    Stream.JUDGE_VERDICTS: (judge_verdict, JudgeVerdict),
    Stream.HUMAN_LABELS: (human_label, HumanLabel),
}
ALL_STREAMS = list(BUILDERS)


def _reject(stream: Stream, data: bytes, **kwargs) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        parse_record(stream, data, **kwargs)
    assert info.value.reason in REASONS
    assert info.value.detail
    return info.value


# -- valid records ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_valid_record_of_each_stream_parses_into_its_model(stream):
    build, model = BUILDERS[stream]
    record = build(turn_id="turn-xyz")
    event = parse_record(stream, raw(record))
    assert type(event) is model
    assert event.turn_id == "turn-xyz"
    assert event.schema_version == SCHEMA_VERSION
    assert event.ts == datetime.fromisoformat(record["ts"])


def test_chat_turn_fields_are_kept():
    record = chat_turn(risk_topics=["earnings"], guardrail_flags=["pii"], modality="image", channel="voice")
    event = parse_record(Stream.CHAT_TURNS, raw(record))
    assert event.risk_topics == ["earnings"]
    assert event.guardrail_flags == ["pii"]
    assert (event.modality, event.channel, event.journey) == ("image", "voice", record["journey"])
    assert event.outcome.contained is True


def test_verdict_fields_are_kept():
    record = judge_verdict(verdicts=[verdict("safety", "fail", score=0.1, confidence=0.7, rationale="why")])
    event = parse_record(Stream.JUDGE_VERDICTS, raw(record))
    (v,) = event.verdicts
    assert (v.dimension, v.label, v.score, v.confidence, v.rationale) == ("safety", "fail", 0.1, 0.7, "why")
    assert v.is_failure


@pytest.mark.parametrize("pi", [0.25, 1.0, 1e-6, 1])
def test_human_label_keeps_the_inclusion_probability_of_its_review_request(pi):
    event = parse_record(Stream.HUMAN_LABELS, raw(human_label(inclusion_probability=pi)))
    assert event.inclusion_probability == pi
    assert event.schema_version == 1  # an additive optional field: still version 1


def test_human_label_without_inclusion_probability_has_none():
    assert parse_record(Stream.HUMAN_LABELS, raw(human_label())).inclusion_probability is None


# below 1e-6 a label's weight 1/p overflowed the calibrated rate's estimators (1e-200: (1/p)**2 is inf),
# and every later observation of that judge failed in the aggregation
@pytest.mark.parametrize("pi", [0, 0.0, -0.1, 1.0000001, 2, "often", [0.5], 9.9e-7, 1e-200, 5e-324])
def test_inclusion_probability_outside_a_millionth_to_one_is_rejected(pi):
    error = _reject(Stream.HUMAN_LABELS, raw(human_label(inclusion_probability=pi)))
    assert error.reason == "validation_error"
    assert "inclusion_probability" in error.detail


# -- timestamps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ALL_STREAMS)
@pytest.mark.parametrize("ts", ["2026-11-02T08:00:00", "2026-11-02 08:00:00", "2026-11-02T08:00:00.123456"])
def test_naive_timestamps_are_rejected(stream, ts):
    build, _ = BUILDERS[stream]
    error = _reject(stream, raw(build(ts=ts)))
    assert error.reason == "validation_error"
    assert "ts" in error.detail


@pytest.mark.parametrize("stream", ALL_STREAMS)
@pytest.mark.parametrize("ts", ["1793606400", "1793606400000", "1.7936064e9", "+1793606400", "2026-11-02"])
def test_epoch_numbers_in_quotes_and_dates_alone_are_rejected(stream, ts):
    # pydantic reads "1793606400" as Unix seconds (and a longer one as milliseconds): not RFC 3339, and the
    # report's event time (an ISO parse) disagreed, dropping such records from its counts
    build, _ = BUILDERS[stream]
    error = _reject(stream, raw(build(ts=ts)))
    assert error.reason == "validation_error" and "RFC 3339" in error.detail


@pytest.mark.parametrize(
    ("ts", "utc"),
    [
        ("2026-11-02t08:00:00z", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),  # RFC 3339 allows lower case
        ("2026-11-02T10:00:00+02:00", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        ("2026-11-02T03:30:00-04:30", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        ("2026-11-02T08:00:00Z", datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),
        ("2026-11-02T23:59:59.5-01:00", datetime(2026, 11, 3, 0, 59, 59, 500000, tzinfo=UTC)),
    ],
)
@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_timestamps_are_normalised_to_utc(stream, ts, utc):
    build, _ = BUILDERS[stream]
    event = parse_record(stream, raw(build(ts=ts)))
    assert event.ts == utc
    assert event.ts.utcoffset() == timedelta(0)
    assert (event.ts.year, event.ts.month, event.ts.day, event.ts.hour) == (
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
    )


@pytest.mark.parametrize(
    "ts",
    [
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-23:59",
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30Z
    ],
)
@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_timestamps_outside_2000_to_2099_are_rejected(stream, ts):
    build, _ = BUILDERS[stream]
    error = _reject(stream, raw(build(ts=ts)))
    assert error.reason == "validation_error"
    assert "ts" in error.detail


@pytest.mark.parametrize(
    "ts",
    [
        "2000-01-01T00:00:00Z",
        "2099-12-31T23:59:59.999999Z",
        "2100-01-01T00:30:00+01:00",
        "1999-12-31T23:30:00-01:00",
    ],
)
def test_timestamps_at_the_edges_of_the_range_are_accepted(ts):
    event = parse_record(Stream.CHAT_TURNS, raw(chat_turn(ts=ts)))
    assert 2000 <= event.ts.year <= 2099


# -- forward compatibility and versions --------------------------------------------------------------


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_unknown_fields_are_tolerated_at_every_level(stream):
    build, model = BUILDERS[stream]
    record = build(added_in_v1_5={"nested": [1, 2, 3]}, another="x")
    if "verdicts" in record:
        record["verdicts"] = [{**record["verdicts"][0], "new_verdict_field": True}]
    if "outcome" in record:
        record["outcome"] = {**record["outcome"], "sentiment": "positive"}
    event = parse_record(stream, raw(record))
    assert type(event) is model
    assert not hasattr(event, "another")
    assert "another" not in event.model_dump()


def test_missing_schema_version_means_the_current_one():
    record = chat_turn()
    del record["schema_version"]
    assert parse_record(Stream.CHAT_TURNS, raw(record)).schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("stream", ALL_STREAMS)
@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, SCHEMA_VERSION + 100, 2**40])
def test_newer_schema_version_is_unsupported(stream, version):
    build, _ = BUILDERS[stream]
    error = _reject(stream, raw(build(schema_version=version)))
    assert error.reason == "unsupported_version"
    assert str(version) in error.detail


@pytest.mark.parametrize("version", [str(SCHEMA_VERSION + 1), float(SCHEMA_VERSION + 1)])
def test_newer_schema_version_spelled_as_string_or_float_is_not_parsed_as_current(version):
    """A record that says it is version 2 must never be read as a version-1 event, however it is spelled."""
    with pytest.raises(InvalidRecord) as info:
        parse_record(Stream.CHAT_TURNS, raw(chat_turn(schema_version=version)))
    assert info.value.reason in ("unsupported_version", "validation_error")


@pytest.mark.parametrize("version", [0, -1, "one", None, [1]])
def test_invalid_schema_versions_are_validation_errors(version):
    error = _reject(Stream.CHAT_TURNS, raw(chat_turn(schema_version=version)))
    assert error.reason == "validation_error"


# -- undecodable input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"{'turn_id': 'x'}",
        b'{"turn_id": "x",}',
        b"\xff\xfe\x00",
        b'{"turn_id": "\xff"}',
        b'{"turn_id": "\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
        b"\x00",
    ],
)
@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_invalid_json_or_non_utf8_is_invalid_json(stream, data):
    assert _reject(stream, data).reason == "invalid_json"


@pytest.mark.parametrize("schema_id", [0, 42, 2**32 - 1])
@pytest.mark.parametrize("body", [raw(judge_verdict()), b"\x02\x0ahello", b""])  # JSON, Avro, nothing
def test_a_record_framed_by_schema_registry_says_so(schema_id, body):
    # a Confluent serializer writes 0x00 and a 4-byte schema id before the value: the dead letter said only
    # "unexpected character ... (char 0)"
    error = _reject(Stream.JUDGE_VERDICTS, b"\x00" + schema_id.to_bytes(4, "big") + body)
    assert error.reason == "invalid_json"
    assert error.detail.startswith(
        f"Schema Registry framing (schema id {schema_id}): convowatch reads plain JSON"
    )


@pytest.mark.parametrize("data", [b"[]", b'[{"turn_id": "x"}]', b'"text"', b"42", b"null", b"true", b"1.5"])
@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_json_that_is_not_an_object_is_not_an_object(stream, data):
    error = _reject(stream, data)
    assert error.reason == "not_an_object"


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_oversize_records_are_too_large_before_decoding(stream):
    build, _ = BUILDERS[stream]
    data = raw(build(padding="x" * DEFAULT_MAX_RECORD_BYTES))
    error = _reject(stream, data)
    assert error.reason == "too_large"
    assert str(len(data)) in error.detail
    # the limit applies to bytes, whatever they contain: garbage that large is too_large, not invalid_json
    assert _reject(stream, b"\xff" * (DEFAULT_MAX_RECORD_BYTES + 1)).reason == "too_large"


def test_the_size_limit_is_configurable_and_inclusive():
    data = raw(chat_turn())
    assert parse_record(Stream.CHAT_TURNS, data, max_bytes=len(data)).turn_id == "turn-0001"
    assert _reject(Stream.CHAT_TURNS, data, max_bytes=len(data) - 1).reason == "too_large"


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e400", b"-1e400"])
@pytest.mark.parametrize("field", ["latency_ms", "intent_confidence"])
def test_nan_and_infinity_tokens_are_rejected(field, token):
    data = raw(chat_turn())
    data = data[:-1] + b', "' + field.encode() + b'": ' + token + b"}"
    _reject(Stream.CHAT_TURNS, data)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_verdict_scores_are_rejected(token):
    data = raw(judge_verdict(verdicts=[verdict("relevance", "pass", score="PLACEHOLDER")]))
    data = data.replace(b'"PLACEHOLDER"', token)
    _reject(Stream.JUDGE_VERDICTS, data)


# -- perceptual scores (optional, multimodal outputs) --------------------------------------------------


def test_perceptual_scores_are_optional_and_kept():
    assert parse_record(Stream.JUDGE_VERDICTS, raw(judge_verdict())).scores == {}
    scores = {"artifact": 0.12, "prompt_alignment": 1, "clip": 0.315, "vlm/judge.v2:aesthetic": -0.5}
    event = parse_record(Stream.JUDGE_VERDICTS, raw(judge_verdict(scores=scores)))
    assert event.scores == {**scores, "prompt_alignment": 1.0}
    assert all(type(v) is float for v in event.scores.values())
    assert parse_record(Stream.JUDGE_VERDICTS, raw(judge_verdict(scores={f"s{i}": 0.5 for i in range(16)})))
    assert parse_record(Stream.JUDGE_VERDICTS, raw(judge_verdict(scores={"fid": 1e6, "loss": -1e6})))


@pytest.mark.parametrize(
    "scores",
    [
        {"clip": "0.3"},
        {"clip": True},
        {"clip": None},
        {"clip": [0.3]},
        {"": 0.3},
        {"has space": 0.3},
        {"x" * 65: 0.3},
        {f"s{i}": 0.5 for i in range(17)},
        [0.3],
        "clip",
        {"clip": 1e308, "fid": -1e308},  # their sums overflowed the drift detector's
        {"clip": 1_000_000.5},
    ],
)
def test_invalid_perceptual_scores_are_rejected(scores):
    error = _reject(Stream.JUDGE_VERDICTS, raw(judge_verdict(scores=scores)))
    assert error.reason == "validation_error"
    assert "scores" in error.detail


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_perceptual_scores_are_rejected(token):
    data = raw(judge_verdict(scores={"artifact": 0.1, "clip": "PLACEHOLDER"}))
    _reject(Stream.JUDGE_VERDICTS, data.replace(b'"PLACEHOLDER"', token))


# -- verdicts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dimension", sorted(QUALITY_DIMENSIONS))
@pytest.mark.parametrize("label", ["PASS", "Fail", "ok", "output_1", "yes", " pass", "0"])
@pytest.mark.parametrize("stream", [Stream.JUDGE_VERDICTS, Stream.HUMAN_LABELS])
def test_quality_dimension_labels_must_be_pass_or_fail(stream, dimension, label):
    build, _ = BUILDERS[stream]
    error = _reject(stream, raw(build(verdicts=[verdict(dimension, label)])))
    assert error.reason == "validation_error"
    assert dimension in error.detail


@pytest.mark.parametrize("dimension", sorted(QUALITY_DIMENSIONS))
@pytest.mark.parametrize("label", ["pass", "fail"])
def test_quality_dimension_accepts_pass_and_fail(dimension, label):
    event = parse_record(Stream.HUMAN_LABELS, raw(human_label(verdicts=[verdict(dimension, label)])))
    assert event.verdicts[0].label == label
    assert event.verdicts[0].is_failure is (label == "fail")


NO_SEP = str.maketrans("", "", "_-.")


@pytest.mark.parametrize(
    "spelled",
    sorted(
        {
            v
            for d in QUALITY_DIMENSIONS
            for v in (
                d.upper(),
                d.capitalize(),
                d.replace("_", "-"),
                d.replace("_", "."),
                d.replace("_", ""),
                "".join(w.capitalize() for w in d.split("_")),  # camel case
            )
        }
        - QUALITY_DIMENSIONS
    ),
)
@pytest.mark.parametrize("stream", [Stream.JUDGE_VERDICTS, Stream.HUMAN_LABELS])
def test_a_quality_dimension_spelled_otherwise_is_refused_not_taken_as_a_custom_one(stream, spelled):
    # "Safety": "fail" was read as a free categorical dimension: no defect, no escalation, nothing counted
    build, _ = BUILDERS[stream]
    error = _reject(stream, raw(build(verdicts=[verdict(spelled, "fail")])))
    assert error.reason == "validation_error"
    canonical = next(
        d for d in QUALITY_DIMENSIONS if d.replace("_", "") == spelled.casefold().translate(NO_SEP)
    )
    assert f"send {canonical!r}" in error.detail


@pytest.mark.parametrize("dimension", ["preference", "intent", "tone", "language"])
@pytest.mark.parametrize("label", ["output_1", "output_2", "tie", "refund_request", "PASS", "fail"])
@pytest.mark.parametrize("stream", [Stream.JUDGE_VERDICTS, Stream.HUMAN_LABELS])
def test_non_quality_dimensions_accept_any_label(stream, dimension, label):
    build, _ = BUILDERS[stream]
    event = parse_record(stream, raw(build(verdicts=[verdict(dimension, label)])))
    (v,) = event.verdicts
    assert (v.dimension, v.label) == (dimension, label)
    assert not v.is_failure  # only quality dimensions fail


def test_one_bad_verdict_rejects_the_whole_record():
    record = judge_verdict(verdicts=[verdict("relevance", "pass"), verdict("safety", "unsafe")])
    error = _reject(Stream.JUDGE_VERDICTS, raw(record))
    assert error.reason == "validation_error"
    assert "verdicts.1" in error.detail


@pytest.mark.parametrize("stream", [Stream.JUDGE_VERDICTS, Stream.HUMAN_LABELS])
@pytest.mark.parametrize("verdicts", [[], None, "pass", {}])
def test_empty_or_missing_verdicts_are_rejected(stream, verdicts):
    build, _ = BUILDERS[stream]
    error = _reject(stream, raw(build(verdicts=verdicts)))
    assert error.reason == "validation_error"
    assert "verdicts" in error.detail
    record = build()
    del record["verdicts"]
    assert _reject(stream, raw(record)).reason == "validation_error"


@pytest.mark.parametrize("stream", ALL_STREAMS)
@pytest.mark.parametrize("field", ["turn_id", "ts"])
def test_required_fields_are_required(stream, field):
    build, _ = BUILDERS[stream]
    record = build()
    del record[field]
    error = _reject(stream, raw(record))
    assert error.reason == "validation_error"
    assert field in error.detail


@pytest.mark.parametrize("turn_id", ["", " leading", "trailing ", "x" * 257])
def test_identifiers_are_bounded_and_trimmed(turn_id):
    assert _reject(Stream.CHAT_TURNS, raw(chat_turn(turn_id=turn_id))).reason == "validation_error"


# -- the shared LLMBar data ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stream", "count"),
    [
        ("chat_turns.jsonl", Stream.CHAT_TURNS, 200),
        ("judge_verdicts.jsonl", Stream.JUDGE_VERDICTS, 400),
        ("human_labels.jsonl", Stream.HUMAN_LABELS, 200),
    ],
)
def test_every_llmbar_record_parses(name, stream, count):
    lines = [line for line in (LLMBAR / name).read_bytes().splitlines() if line.strip()]
    assert len(lines) == count
    events = [parse_record(stream, line) for line in lines]
    assert all(type(e) is BUILDERS[stream][1] for e in events)
    assert len({e.turn_id for e in events}) == 200


# -- JSON Schema export ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("schemas")
    paths = write_json_schemas(out)
    return {p.name.split(".")[0]: json.loads(p.read_text()) for p in paths}, paths


def test_export_writes_one_valid_json_schema_per_event(exported):
    schemas, paths = exported
    assert (
        set(schemas)
        == set(EXPORTED)
        == {
            "chat_turn",
            "judge_verdict",
            "human_label",
            "signal",
            "defect",
            "escalation",
            "deadletter",
            "review_request",
            "divergence",
        }
    )
    for path in paths:
        assert path.name.endswith(f".v{SCHEMA_VERSION}.schema.json")
        assert path.read_text().endswith("\n")
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(f"/{name}.v{SCHEMA_VERSION}.schema.json")
        # a map's key pattern is checked on every key (``patternProperties`` lets other keys through)
        assert "patternProperties" not in json.dumps(schema)
        assert schema["type"] == "object"
        assert "properties" in schema


def _generated_events(seed: int = 11) -> list[tuple[str, dict]]:
    from streams.generator import TrafficGenerator

    items = list(TrafficGenerator(seed=seed, rate=5.0).records(120.0, drain=True))
    return [(stream, event) for _, stream, event in items]


def test_valid_events_validate_against_the_exported_schemas(exported):
    schemas, _ = exported
    stream_to_schema = {
        "chat_turns": "chat_turn",
        "judge_verdicts": "judge_verdict",
        "human_labels": "human_label",
        "signals": "signal",
    }
    validators = {name: jsonschema.Draft202012Validator(schemas[name]) for name in stream_to_schema.values()}
    events = [
        ("chat_turns", chat_turn()),
        ("judge_verdicts", judge_verdict()),
        ("human_labels", human_label()),
        ("signals", signal()),
    ]
    events += _generated_events()
    assert {s for s, _ in events} == set(stream_to_schema)
    for stream, event in events:
        parse_record(Stream(stream), raw(event))  # valid for the parser...
        validators[stream_to_schema[stream]].validate(event)  # ...and for the published schema
    # and the exported schema does reject what the parser rejects structurally
    broken = chat_turn(channel="fax")
    del broken["turn_id"]
    errors = list(validators["chat_turn"].iter_errors(broken))
    assert {e.validator for e in errors} >= {"required", "enum"}


# -- robustness ------------------------------------------------------------------------------------


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(stream=st.sampled_from(ALL_STREAMS), data=st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_invalid_record(stream, data):
    try:
        event = parse_record(stream, data, max_bytes=1024)
    except InvalidRecord as exc:
        assert exc.reason in REASONS
    else:
        assert type(event) is BUILDERS[stream][1]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(stream=st.sampled_from(ALL_STREAMS), data=st.data())
def test_valid_records_with_one_field_replaced_raise_only_invalid_record(stream, data):
    build, model = BUILDERS[stream]
    record = build()
    field = data.draw(st.sampled_from(sorted(record)))
    record[field] = data.draw(JSON_VALUES)
    try:
        encoded = json.dumps(record).encode()
    except (ValueError, OverflowError):
        return
    try:
        event = parse_record(stream, encoded)
    except InvalidRecord as exc:
        assert exc.reason in REASONS
    else:
        assert type(event) is model
