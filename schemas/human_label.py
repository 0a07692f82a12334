"""HumanLabel: an annotator's labels for one turn (topic ``convowatch.human.labels``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.common import MIN_INCLUSION_PROBABILITY, EventModel, ShortCode, Verdicts


class HumanLabel(EventModel):
    """One annotator's labels on one turn; ``is_gold`` marks honeypot items. Key: ``turn_id``.

    ``inclusion_probability`` is copied by the labelling tool from the review request the turn was labelled
    for (``convowatch.review.requests``): the calibrated defect rate weights the label by its inverse.
    Absent means the turn was not sampled by convowatch (weight 1). At least 1e-6 (a weight of at most 10^6).
    """

    annotator_id: ShortCode
    vendor_id: ShortCode
    is_gold: bool = False
    labeling_seconds: Annotated[float, Field(ge=0.0, le=604_800.0)] | None = None
    inclusion_probability: Annotated[float, Field(ge=MIN_INCLUSION_PROBABILITY, le=1.0)] | None = None
    verdicts: Verdicts
