"""convowatch's event contract: one pydantic v2 model per event, versioned by ``SCHEMA_VERSION``."""

from schemas.chat_turn import ChatTurn, Outcome
from schemas.common import FAIL, PASS, QUALITY_DIMENSIONS, SCHEMA_VERSION, Verdict
from schemas.exceptions import InvalidRecord, SchemaError
from schemas.human_label import HumanLabel
from schemas.judge_verdict import JudgeVerdict
from schemas.outputs import DeadLetter, Defect, Divergence, Escalation, ReviewRequest, Segment
from schemas.parsing import Stream, parse_record
from schemas.signal import ConversationSignal

__all__ = [
    "FAIL",
    "PASS",
    "QUALITY_DIMENSIONS",
    "SCHEMA_VERSION",
    "ChatTurn",
    "ConversationSignal",
    "DeadLetter",
    "Defect",
    "Divergence",
    "Escalation",
    "HumanLabel",
    "InvalidRecord",
    "JudgeVerdict",
    "Outcome",
    "ReviewRequest",
    "SchemaError",
    "Segment",
    "Stream",
    "Verdict",
    "parse_record",
]
