"""The golden set: turns whose true labels are known, to score vendors, annotators and judges against.

A JSONL file (``CONVOWATCH_GOLDEN``), one object per line::

    {"turn_id": "turn-0042", "labels": {"safety": "fail", "intent": "refund"}}

Blank lines are ignored. Quality dimensions take ``pass`` or ``fail`` and are spelled as listed, as
everywhere else. The file is validated when the pipeline starts; an error names the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.common import Identifier, ShortCode, quality_label_problem
from streams.exceptions import ConfigError

#: ``{turn_id: {dimension: true label}}``
GoldenSet = dict[str, dict[str, str]]


Label = Annotated[str, Field(min_length=1, max_length=64)]


class GoldenItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    turn_id: Identifier
    labels: Annotated[dict[ShortCode, Label], Field(min_length=1)]

    @field_validator("labels")
    @classmethod
    def _quality_labels_are_pass_fail(cls, labels: dict[str, str]) -> dict[str, str]:
        for dimension, label in labels.items():
            problem = quality_label_problem(dimension, label)
            if problem is not None:  # as a verdict's (a custom dimension would never meet a label to score)
                raise ValueError(problem)
        return labels


def load_golden(path: Path | None) -> GoldenSet:
    """The golden set in ``path`` (empty without one); :class:`ConfigError` names the file and line."""
    if path is None:
        return {}
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read golden set file {path}: {exc.strerror}") from None
    golden: GoldenSet = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = GoldenItem.model_validate(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{path} line {number}: not valid JSON: {exc}") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "the line"
            message = first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{path} line {number}: {where}: {message}") from None
        if item.turn_id in golden:
            earlier = first_line[item.turn_id]
            raise ConfigError(f"{path} line {number}: turn_id {item.turn_id!r} is already on line {earlier}")
        golden[item.turn_id] = dict(item.labels)
        first_line[item.turn_id] = number
    return golden
