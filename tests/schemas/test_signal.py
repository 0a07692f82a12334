"""ConversationSignal: the optional business-event stream (``convowatch.signals``)."""

from __future__ import annotations

from datetime import UTC, datetime

import jsonschema
import pytest

from schemas import ConversationSignal, InvalidRecord, Stream, parse_record
from schemas.export import EXPORTED
from tests.factories import raw, signal


def _reject(record: dict) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as info:
        parse_record(Stream.SIGNALS, raw(record))
    return info.value


def test_a_valid_signal_parses_with_its_fields():
    event = parse_record(Stream.SIGNALS, raw(signal(turn_id="ignored", unknown={"x": 1})))
    assert type(event) is ConversationSignal
    assert (event.event_id, event.conversation_id, event.kind) == ("sig-0001", "conv-0001", "thumbs_up")
    assert event.ts == datetime(2026, 11, 2, 8, 5, tzinfo=UTC)
    assert event.order_id is None and event.handle_time_seconds is None and event.value is None
    assert event.schema_version == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "thumbs_up"},
        {"kind": "thumbs_down"},
        {"kind": "add_to_cart"},
        {"kind": "add_to_cart", "value": 19.99},
        {"kind": "purchase", "order_id": "order-7"},
        {"kind": "purchase", "order_id": "order-7", "value": 0},
        {"kind": "agent_handoff"},
        {"kind": "recontact"},
        {"kind": "handle_time", "handle_time_seconds": 0},
        {"kind": "handle_time", "handle_time_seconds": 312.5},
    ],
)
def test_every_kind_with_its_fields_is_accepted(fields):
    event = parse_record(Stream.SIGNALS, raw(signal(**fields)))
    assert event.kind == fields["kind"]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"kind": "purchase"}, "needs order_id"),
        ({"kind": "thumbs_up", "order_id": "o"}, "order_id is only for purchase"),
        ({"kind": "handle_time"}, "needs handle_time_seconds"),
        ({"kind": "recontact", "handle_time_seconds": 5}, "handle_time_seconds is only for handle_time"),
        ({"kind": "agent_handoff", "value": 3.0}, "value is only for add_to_cart and purchase"),
        ({"kind": "handle_time", "handle_time_seconds": -1}, "handle_time_seconds"),
        ({"kind": "handle_time", "handle_time_seconds": 700_000}, "handle_time_seconds"),
        ({"kind": "refund"}, "kind"),
        ({"kind": "purchase", "order_id": ""}, "order_id"),
        ({"conversation_id": " padded "}, "conversation_id"),
        ({"event_id": None}, "event_id"),
        ({"ts": "2026-11-02T08:05:00"}, "ts"),
    ],
)
def test_kind_specific_and_malformed_fields_are_rejected(fields, detail):
    error = _reject(signal(**fields))
    assert error.reason == "validation_error"
    assert detail in error.detail


def test_missing_ids_and_newer_versions_are_rejected():
    for field in ("event_id", "conversation_id", "ts", "kind"):
        record = signal()
        del record[field]
        assert field in _reject(record).detail
    assert _reject(signal(schema_version=2)).reason == "unsupported_version"


def test_non_finite_values_are_rejected():
    data = raw(signal(kind="add_to_cart", value=1.5)).replace(b"1.5", b"Infinity")
    with pytest.raises(InvalidRecord):
        parse_record(Stream.SIGNALS, data)


def test_the_json_schema_is_exported_and_matches_the_parser():
    schema = EXPORTED["signal"].model_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(signal(kind="purchase", order_id="o-1", value=12.0))
    assert schema["properties"]["kind"]["enum"] == [
        "thumbs_up",
        "thumbs_down",
        "add_to_cart",
        "purchase",
        "agent_handoff",
        "recontact",
        "handle_time",
    ]
    assert set(schema["required"]) == {"event_id", "conversation_id", "ts", "kind"}
