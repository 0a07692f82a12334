"""The exported schemas of convowatch's outputs: they describe what the worker publishes, and stay open, so a
schema exported at one v1 commit still validates the records of a later one (fields are added within v1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import orjson
import pytest
from pydantic import ValidationError

from schemas import Defect, Stream
from schemas.export import OUTPUTS, json_schema
from streams.config import Settings
from streams.pipeline import Pipeline
from tests.factories import chat_turn, human_label, judge_verdict, raw, verdict

SCHEMA_OF_TOPIC = {
    "defects": "defect",
    "escalations": "escalation",
    "deadletter": "deadletter",
    "review_requests": "review_request",
    "divergences": "divergence",
}


def _published() -> dict[str, list[dict[str, Any]]]:
    """Each output topic's records, as the worker writes them (JSON), from a small embedded run."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    pipeline = Pipeline(Settings())
    out = []
    for i in range(40):
        turn_id, ts = f"t-{i}", (start + timedelta(seconds=6 * i)).isoformat().replace("+00:00", "Z")
        records = [
            (
                Stream.CHAT_TURNS,
                chat_turn(turn_id=turn_id, ts=ts, risk_topics=["earnings"] if i % 7 == 0 else []),
            ),
            (
                Stream.JUDGE_VERDICTS,
                judge_verdict(
                    turn_id=turn_id,
                    ts=ts,
                    verdicts=[
                        verdict("safety", "fail" if i % 5 == 0 else "pass", confidence=0.6),
                        verdict("relevance", "fail" if i % 3 == 0 else "pass"),
                    ],
                ),
            ),
            (
                Stream.HUMAN_LABELS,
                human_label(
                    turn_id=turn_id, ts=ts, verdicts=[verdict("safety", "pass"), verdict("relevance", "fail")]
                ),
            ),
        ]
        for stream, record in records:
            out += pipeline.process(stream, raw(record), source_topic=f"convowatch.{stream.value}")
    out += pipeline.process(Stream.JUDGE_VERDICTS, b"not json", source_topic="convowatch.judge_verdicts")
    out += pipeline.finish()
    published: dict[str, list[dict[str, Any]]] = {}
    for emit in out:
        if emit.topic in SCHEMA_OF_TOPIC:
            published.setdefault(emit.topic, []).append(json.loads(orjson.dumps(emit.value)))
    return published


@pytest.fixture(scope="module")
def published() -> dict[str, list[dict[str, Any]]]:
    return _published()


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema(name), format_checker=jsonschema.FormatChecker())


def test_every_output_topic_is_published_and_valid_for_its_exported_schema(published):
    assert set(published) == set(SCHEMA_OF_TOPIC)
    for topic, records in published.items():
        validator = _validator(SCHEMA_OF_TOPIC[topic])
        for record in records:
            validator.validate(record)


def _with_added_fields(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with a field added to it and to its segment, as a later v1 commit may add one."""
    later = {**record, "field_added_later": {"x": [1]}}
    if "segment" in record:
        later["segment"] = {**record["segment"], "field_added_later": "x"}
    return later


def test_output_schemas_accept_fields_added_later(published):
    # a consumer validating with a schema exported last week rejected today's defects (raters_cut) and
    # dead letters (original_key_base64, original_key_size, tombstone): consumers must ignore unknown fields
    for topic, records in published.items():
        validator = _validator(SCHEMA_OF_TOPIC[topic])
        for record in records:
            validator.validate(_with_added_fields(record))


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_output_schemas_close_nothing(name):
    assert '"additionalProperties": false' not in json.dumps(json_schema(name))


def test_output_models_still_forbid_unknown_fields():
    # inside convowatch the models stay closed: a test validating what the worker publishes fails on a field
    # the model (and so the exported schema) lacks
    defect = _published()["defects"][0]
    Defect.model_validate(defect)
    with pytest.raises(ValidationError, match="field_added_later"):
        Defect.model_validate({**defect, "field_added_later": 1})


#: Every time of every output: RFC 3339 in UTC, written with ``Z``
TIME_FIELDS = ("ts", "event_time", "received_at", "requested_at")


def test_every_output_writes_its_times_in_utc_with_z(published):
    # dead letters wrote received_at with +00:00, where every other output writes Z
    seen = set()
    for topic, records in published.items():
        for record in records:
            for field in TIME_FIELDS:
                if field in record:
                    seen.add((topic, field))
                    assert record[field].endswith("Z"), (topic, field, record[field])
                    assert datetime.fromisoformat(record[field]).utcoffset() == timedelta(0)
    assert ("deadletter", "received_at") in seen and ("review_requests", "requested_at") in seen
