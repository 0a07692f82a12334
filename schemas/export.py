"""JSON Schema export of every event (``convowatch schemas --out DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.chat_turn import ChatTurn
from schemas.common import SCHEMA_VERSION
from schemas.human_label import HumanLabel
from schemas.judge_verdict import JudgeVerdict
from schemas.outputs import DeadLetter, Defect, Divergence, Escalation, ReviewRequest
from schemas.signal import ConversationSignal

EXPORTED: dict[str, type[BaseModel]] = {
    "chat_turn": ChatTurn,
    "judge_verdict": JudgeVerdict,
    "human_label": HumanLabel,
    "signal": ConversationSignal,
    "defect": Defect,
    "escalation": Escalation,
    "deadletter": DeadLetter,
    "review_request": ReviewRequest,
    "divergence": Divergence,
}


def write_json_schemas(out_dir: Path) -> list[Path]:
    """Write one ``<name>.v<version>.schema.json`` per event into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in EXPORTED.items():
        schema = model.model_json_schema()
        schema["$id"] = f"https://convowatch.dev/schemas/{name}.v{SCHEMA_VERSION}.schema.json"
        path = out_dir / f"{name}.v{SCHEMA_VERSION}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
