"""The one place where untrusted bytes become events."""

from __future__ import annotations

from enum import StrEnum

import orjson
from pydantic import ValidationError

from schemas.chat_turn import ChatTurn
from schemas.common import SCHEMA_VERSION, EventModel
from schemas.exceptions import InvalidRecord
from schemas.human_label import HumanLabel
from schemas.judge_verdict import JudgeVerdict
from schemas.signal import ConversationSignal

#: Records larger than this are dead-lettered without being decoded.
DEFAULT_MAX_RECORD_BYTES = 1_048_576


class Stream(StrEnum):
    """The input streams, by their logical names (also used as metric label values). The first three are
    keyed by ``turn_id``; ``signals`` (business events, optional) by ``conversation_id``."""

    CHAT_TURNS = "chat_turns"
    JUDGE_VERDICTS = "judge_verdicts"
    HUMAN_LABELS = "human_labels"
    SIGNALS = "signals"


MODELS: dict[Stream, type[EventModel] | type[ConversationSignal]] = {
    Stream.CHAT_TURNS: ChatTurn,
    Stream.JUDGE_VERDICTS: JudgeVerdict,
    Stream.HUMAN_LABELS: HumanLabel,
    Stream.SIGNALS: ConversationSignal,
}

#: Each stream's JSON validator: ``model_validate_json`` without its per-call wrapper (same validator, same
#: errors; the models are complete at import, so their validators are final).
_VALIDATE_JSON = {stream: model.__pydantic_validator__.validate_json for stream, model in MODELS.items()}

#: First byte of a record framed by a Confluent Schema Registry serializer, before its 4-byte schema id.
SCHEMA_REGISTRY_MAGIC = b"\x00"

#: Longest field location quoted in a validation error's summary.
MAX_LOCATION_CHARS = 200

#: Bounded set of dead-letter reasons (safe as a metric label).
REASONS = (
    "too_large",
    "invalid_json",
    "not_an_object",
    "unsupported_version",
    "validation_error",
    "future_timestamp",  # decided by the pipeline against its clock (CONVOWATCH_MAX_FUTURE_SECONDS)
    "too_many_raters",  # decided by the join: a turn keeps at most 100 judges' and 100 annotators' labels
    "too_many_dimensions",  # decided by the join: at most 64 dimensions per judge or annotator on a turn
    "too_many_labels",  # decided by the join: a turn keeps at most 800 labels (110 KB), all raters' together
)


def parse_record(
    stream: Stream, raw: bytes, *, max_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> ChatTurn | JudgeVerdict | HumanLabel | ConversationSignal:
    """Decode and validate one record of ``stream``; raise :class:`InvalidRecord` with a reason otherwise."""
    if len(raw) > max_bytes:
        raise InvalidRecord("too_large", f"record is {len(raw)} bytes, the limit is {max_bytes}")
    try:  # the fast path: pydantic's own JSON parser, one pass
        event = _VALIDATE_JSON[stream](raw)
    except ValidationError as exc:
        _diagnose(raw)
        raise InvalidRecord("validation_error", _summarise(exc)) from None
    if event.schema_version > SCHEMA_VERSION:
        raise _unsupported(event.schema_version)
    return event  # type: ignore[return-value]


def _unsupported(version: int) -> InvalidRecord:
    return InvalidRecord(
        "unsupported_version",
        f"schema_version {version} is newer than the supported {SCHEMA_VERSION}; upgrade convowatch",
    )


def _diagnose(raw: bytes) -> None:
    """Name the real reason of a rejected record: not JSON, not an object, or a newer version."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if raw[:1] == SCHEMA_REGISTRY_MAGIC and len(raw) >= 5:  # JSON never starts with a NUL byte
            schema_id = int.from_bytes(raw[1:5], "big")
            raise InvalidRecord(
                "invalid_json",
                f"Schema Registry framing (schema id {schema_id}): convowatch reads plain JSON; produce "
                "with a plain JSON serializer (no magic byte and schema id before the JSON)",
            ) from None
        raise InvalidRecord("invalid_json", str(exc)) from None
    if not isinstance(data, dict):
        raise InvalidRecord("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise _unsupported(version)


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        if len(where) > MAX_LOCATION_CHARS:  # a location quotes the record's keys, which can be huge
            where = f"{where[:MAX_LOCATION_CHARS]}..."
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
