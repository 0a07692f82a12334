"""Pieces shared by every event model: versions, timestamps, verdicts."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    model_validator,
)

#: The newest ``schema_version`` this build understands. Older versions are accepted; newer are dead-lettered.
SCHEMA_VERSION = 1

#: Least inclusion probability a review request or a human label may carry: a label weighs 1/probability,
#: and a weight near the float limit overflows the estimators it feeds (1e-200 squared).
MIN_INCLUSION_PROBABILITY = 1e-6

PASS = "pass"
FAIL = "fail"

#: Dimensions whose labels are ``pass`` or ``fail``. Any other dimension carries a free categorical label.
QUALITY_DIMENSIONS = frozenset(
    {
        "relevance",
        "execution_accuracy",
        "safety",
        "hallucination",
        "bias",
        "personalization",
        "compliance",
        "privacy",
    }
)


#: Each quality dimension by its letters and digits alone, and what a short code may put between them
_QUALITY_BY_LETTERS = {d.replace("_", ""): d for d in QUALITY_DIMENSIONS}
_SEPARATORS = str.maketrans("", "", "_.:/@+-")


def quality_dimension(name: str) -> str | None:
    """The quality dimension ``name`` spells otherwise (another case, other separators or none); None if none,
    or if ``name`` is one as listed. The parser refuses such a name: read as a custom dimension, its fails
    would go unnoticed.

    >>> [quality_dimension(n) for n in ("Safety", "execution-accuracy", "ExecutionAccuracy", "bias", "tone")]
    ['safety', 'execution_accuracy', 'execution_accuracy', None, None]
    """
    if name in QUALITY_DIMENSIONS:
        return None
    return _QUALITY_BY_LETTERS.get(name.casefold().translate(_SEPARATORS))


def quality_label_problem(dimension: str, label: str) -> str | None:
    """What is wrong with ``label`` on ``dimension``, for a quality dimension (a label other than ``pass`` or
    ``fail``, or the dimension's name spelled otherwise); None if nothing. Verdicts and the golden set alike.

    >>> quality_label_problem("Safety", "fail")
    "'Safety' is the quality dimension 'safety' spelled otherwise: send 'safety'"
    """
    if dimension in QUALITY_DIMENSIONS:
        if label in (PASS, FAIL):
            return None
        return f"{dimension!r} is a quality dimension: label must be 'pass' or 'fail', got {label!r}"
    canonical = quality_dimension(dimension)
    if canonical is None:  # a free categorical dimension
        return None
    # "Safety" from a judge's JSON, read as a custom dimension: its fails would raise no defect, no escalation
    return f"{dimension!r} is the quality dimension {canonical!r} spelled otherwise: send {canonical!r}"


# Event times outside this range are rejected: they are clock bugs, and would poison event-time windows.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible_time(value: datetime) -> datetime:
    if not EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME:
        raise ValueError(f"timestamp {value.isoformat()} is outside {EARLIEST_EVENT_TIME.year}..2099")
    return value.astimezone(UTC)


#: RFC 3339 date-time with an offset (pydantic alone also takes "1700000000" as Unix seconds, in quotes too);
#: ASCII digits, as ``\d`` means in a JSON Schema pattern (ECMA-262), not in Python's ``re``
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})"
)


def _text_only(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 string with an offset, e.g. 2026-11-02T08:00:00Z")


#: An RFC 3339 timestamp with an explicit offset, normalised to UTC. Naive timestamps are rejected. Its JSON
#: Schema carries the shape as a ``pattern`` too: ``format`` is only an annotation in draft 2020-12, which
#: most validators do not check unless told to.
EventTime = Annotated[
    AwareDatetime,
    BeforeValidator(_text_only),
    AfterValidator(_plausible_time),
    Field(json_schema_extra={"pattern": f"^{_RFC3339.pattern}$"}),
]

#: Identifiers and short codes: non-empty, bounded, no surrounding whitespace.
Identifier = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^\S(.*\S)?$")]
ShortCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/@+-]+$")]


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class EventModel(BaseModel):
    """Base of every input event: unknown fields are tolerated (forward compatible), models are frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, str_max_length=1_000_000)

    schema_version: Annotated[StrictInt, Field(ge=1)] = SCHEMA_VERSION
    turn_id: Identifier
    ts: EventTime


class Verdict(BaseModel):
    """One label on one dimension, from a judge or a human."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    dimension: ShortCode
    label: Annotated[str, Field(min_length=1, max_length=64)]
    score: FiniteFloat | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    rationale: Annotated[str, Field(max_length=20_000)] | None = None

    @model_validator(mode="after")
    def _quality_labels_are_pass_fail(self) -> Verdict:
        problem = quality_label_problem(self.dimension, self.label)
        if problem is not None:
            raise ValueError(f"dimension {problem}")
        return self

    @property
    def is_failure(self) -> bool:
        return self.dimension in QUALITY_DIMENSIONS and self.label == FAIL


def one_per_dimension(verdicts: list[Verdict]) -> list[Verdict]:
    """One verdict per dimension, in the order dimensions first come: of a quality dimension given more than
    once in a record (a judge checking sub-policies), the first fail if any, else the first; of another
    dimension, the first. The verdict kept brings its own score, confidence and rationale.

    >>> pass_, fail = Verdict(dimension="safety", label="pass"), Verdict(dimension="safety", label="fail")
    >>> tone = Verdict(dimension="tone", label="warm")
    >>> [v.label for v in one_per_dimension([pass_, tone, fail])], one_per_dimension([fail, pass_]) == [fail]
    (['fail', 'warm'], True)
    """
    kept: dict[str, Verdict] = {}
    for verdict in verdicts:
        held = kept.get(verdict.dimension)
        if held is None or (verdict.is_failure and not held.is_failure):
            kept[verdict.dimension] = verdict  # a dict keeps a key's first place when its value is replaced
    return list(kept.values())


#: A record's verdicts, one per dimension once parsed (:func:`one_per_dimension`): any fail of a quality
#: dimension in the record makes it fail, whatever the order.
Verdicts = Annotated[list[Verdict], Field(min_length=1, max_length=64), AfterValidator(one_per_dimension)]
