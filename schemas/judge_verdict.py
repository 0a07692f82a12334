"""JudgeVerdict: an LLM-as-judge's scores for one turn (topic ``convowatch.judge.verdicts``)."""

from __future__ import annotations

from schemas.common import EventModel, ShortCode, Verdicts


class JudgeVerdict(EventModel):
    """One judge's verdicts on one turn, one per dimension. Key: ``turn_id``."""

    judge_id: ShortCode
    judge_version: ShortCode
    verdicts: Verdicts
