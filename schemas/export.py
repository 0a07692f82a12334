"""JSON Schema export of every event (``convowatch schemas --out DIR``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from schemas.chat_turn import ChatTurn
from schemas.common import SCHEMA_VERSION
from schemas.human_label import HumanLabel
from schemas.judge_verdict import JudgeVerdict
from schemas.outputs import DeadLetter, Defect, Divergence, Escalation, ReviewRequest
from schemas.signal import ConversationSignal

#: The JSON Schema dialect of every exported schema.
DIALECT = "https://json-schema.org/draft/2020-12/schema"

INPUTS: dict[str, type[BaseModel]] = {
    "chat_turn": ChatTurn,
    "judge_verdict": JudgeVerdict,
    "human_label": HumanLabel,
    "signal": ConversationSignal,
}
#: Records convowatch publishes: exported open (consumers ignore fields added within a version).
OUTPUTS: dict[str, type[BaseModel]] = {
    "defect": Defect,
    "escalation": Escalation,
    "deadletter": DeadLetter,
    "review_request": ReviewRequest,
    "divergence": Divergence,
}
EXPORTED: dict[str, type[BaseModel]] = INPUTS | OUTPUTS


class ContractJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, with a map's keys checked as the parser checks them.

    pydantic writes the key pattern of a ``dict[ShortCode, X]`` into ``patternProperties`` only, which checks
    the values of matching keys and lets any other key through, where the parser refuses the record: the
    pattern goes to ``propertyNames`` (with the key's length limits) and the values' schema to
    ``additionalProperties``.
    """

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        by_pattern = json_schema.pop("patternProperties", None)
        if by_pattern:
            ((pattern, values),) = by_pattern.items()
            json_schema["propertyNames"] = {**json_schema.get("propertyNames", {}), "pattern": pattern}
            json_schema["additionalProperties"] = values
        return json_schema


def _opened(schema: Any) -> Any:
    """``schema`` with every ``additionalProperties: false`` left out (the output models forbid unknown
    fields, which keeps them complete: a test fails on a field the worker publishes and they lack)."""
    if isinstance(schema, dict):
        return {k: _opened(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
    if isinstance(schema, list):
        return [_opened(v) for v in schema]
    return schema


def json_schema(name: str) -> dict[str, Any]:
    """The exported JSON Schema of the event ``name`` (a key of :data:`EXPORTED`)."""
    schema = EXPORTED[name].model_json_schema(schema_generator=ContractJsonSchema)
    if name in OUTPUTS:
        schema = _opened(schema)
    return {
        "$schema": DIALECT,
        "$id": f"https://convowatch.dev/schemas/{name}.v{SCHEMA_VERSION}.schema.json",
        **schema,
    }


def write_json_schemas(out_dir: Path) -> list[Path]:
    """Write one ``<name>.v<version>.schema.json`` per event into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXPORTED:
        path = out_dir / f"{name}.v{SCHEMA_VERSION}.schema.json"
        path.write_text(json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
