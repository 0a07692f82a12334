"""JudgeVerdict: an LLM-as-judge's scores for one turn (topic ``convowatch.judge.verdicts``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictFloat

from schemas.common import EventModel, FiniteFloat, ShortCode, Verdicts

#: Most perceptual scores one verdict may carry (each becomes a tracked distribution).
MAX_SCORES = 16
#: Largest magnitude of a perceptual score.
MAX_SCORE_MAGNITUDE = 1e6

#: Numeric perceptual scores of a multimodal output, by score name (``artifact``, ``prompt_alignment``,
#: ``clip``...): JSON numbers only (no strings, booleans, NaN or infinities), at most :data:`MAX_SCORES`.
#: convowatch tracks each score's distribution per modality and model version and expects values in [0, 1];
#: it accepts any within +-:data:`MAX_SCORE_MAGNITUDE` (beyond, sums of scores overflow a float).
Score = Annotated[StrictFloat, FiniteFloat, Field(ge=-MAX_SCORE_MAGNITUDE, le=MAX_SCORE_MAGNITUDE)]
Scores = Annotated[dict[ShortCode, Score], Field(max_length=MAX_SCORES)]


class JudgeVerdict(EventModel):
    """One judge's verdicts on one turn, one per dimension. Key: ``turn_id``.

    ``scores`` (optional, added in schema version 1 without a bump: older records simply have none) holds
    the judge's numeric perceptual scores of an image, audio, video or 3D output, e.g. a VLM's artifact,
    prompt-alignment or CLIP-style score.
    """

    judge_id: ShortCode
    judge_version: ShortCode
    verdicts: Verdicts
    scores: Scores = {}
