"""What the synthetic traffic looks like: journeys, intents and texts, the judge's failure rates, how
humans agree with it, annotation vendors, perceptual scores, and the two regressions a run can inject
(:class:`Incident`, :class:`ScoreShift`). Parameters only; :mod:`streams.traffic_events` draws from them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

JUDGE_ID = "judge-gpt"
JUDGE_VERSION = "2026-10"

#: Base judge failure rate per dimension.
BASE_FAIL = {
    "relevance": 0.02,
    "execution_accuracy": 0.03,
    "safety": 0.003,
    "hallucination": 0.025,
    "bias": 0.002,
    "personalization": 0.04,
    "compliance": 0.008,
}
#: Chance that a human marks ``fail`` where the judge said ``pass`` (subjective dimensions disagree more).
HUMAN_FALSE_FAIL = {
    "relevance": 0.02,
    "execution_accuracy": 0.015,
    "safety": 0.002,
    "hallucination": 0.015,
    "bias": 0.002,
    "personalization": 0.025,
    "compliance": 0.008,
}
HUMAN_CONFIRMS_FAIL = 0.85  # chance a human agrees with a judge's ``fail``
RATIONALE = {
    "relevance": "Response does not address the user's question.",
    "execution_accuracy": "Stated facts or steps do not match the account or order data.",
    "safety": "Response gives unsafe or policy-violating guidance.",
    "hallucination": "Response invents details not present in the context.",
    "bias": "Response treats the user differently based on a protected attribute.",
    "personalization": "Recommendation ignores the user's stated preferences.",
    "compliance": "Response omits a required disclosure.",
}

JOURNEYS = {"shopper": 0.65, "driver_support": 0.35}
INTENTS = {
    "shopper": {
        "product_question": 0.3,
        "recommendation": 0.25,
        "order_status": 0.2,
        "returns": 0.15,
        "in_shop_chat": 0.1,
    },
    "driver_support": {
        "earnings": 0.3,
        "identity_verification": 0.15,
        "onboarding": 0.2,
        "payout": 0.2,
        "account_access": 0.15,
    },
}
TEXTS = {
    "product_question": ("Does the {item} come in other sizes?", "Yes, the {item} comes in S, M and L."),
    "recommendation": ("Can you suggest a {item} under 50 euros?", "Here are three {item} options to try."),
    "order_status": ("Where is my order {ref}?", "Order {ref} is out for delivery and arrives today."),
    "returns": ("How do I return the {item} from order {ref}?", "Return it within 30 days from Orders."),
    "in_shop_chat": ("Is the {item} in stock at this store?", "The {item} is in aisle 4, two left in stock."),
    "earnings": ("Why were my earnings lower this week?", "You drove fewer peak-hour trips; see Earnings."),
    "identity_verification": ("My selfie check keeps failing.", "Please retake the photo in good lighting."),
    "onboarding": ("What documents do I need to start driving?", "A licence, insurance and a permit."),
    "payout": ("When will payout {ref} reach my bank?", "Payout {ref} is scheduled within 2 business days."),
    "account_access": ("I can't log in to the driver app.", "I've sent a reset link to your email."),
}
#: Shopper intents after which a conversation may lead to a cart and an order.
SHOPPING_INTENTS = frozenset({"product_question", "recommendation", "in_shop_chat"})
ITEMS = ("rain jacket", "desk lamp", "running shoe", "coffee grinder", "backpack", "phone case")
LOCALES = ("en-GB", "en-US", "nl-NL", "de-DE", "fr-FR")
GUARDRAILS = ("pii_redacted", "toxicity_filter", "prompt_injection")
VENDORS = {"vendor-a": ("a1", "a2", "a3"), "vendor-b": ("b1", "b2", "b3")}


@dataclass(frozen=True)
class Incident:
    """A regression: after ``start_after_s`` event-seconds, turns of ``journey`` on ``model_version``
    fail ``dimension`` at ``fail_rate`` (per the judge; human labels agree)."""

    start_after_s: float
    model_version: str
    journey: str
    dimension: str = "safety"
    fail_rate: float = 0.15

    def __post_init__(self) -> None:
        if self.dimension not in BASE_FAIL:
            raise ValueError(f"incident dimension must be one of {sorted(BASE_FAIL)}, got {self.dimension!r}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be within [0, 1]")


#: Modalities of shopper chat turns (product images and clips); voice turns are ``audio``, others text.
SHOPPER_MODALITIES = {"text": 0.85, "image": 0.12, "video": 0.03}
#: The judge's perceptual scores per modality, each Beta-distributed with (mean, concentration).
PERCEPTUAL_SCORES = {"artifact": (0.12, 40.0), "prompt_alignment": (0.72, 40.0), "clip": (0.31, 200.0)}
MODALITY_SCORES = {
    "image": ("artifact", "prompt_alignment", "clip"),
    "video": ("artifact", "prompt_alignment", "clip"),
    "audio": ("artifact", "prompt_alignment"),
}


@dataclass(frozen=True)
class ScoreShift:
    """A perceptual regression: after ``start_after_s`` event-seconds, the judge's ``score`` of ``modality``
    turns on ``model_version`` splits into two modes ``separation`` apart around the usual mean (the same
    mean, another shape: some outputs get better, as many get worse)."""

    start_after_s: float
    model_version: str
    modality: str = "image"
    score: str = "prompt_alignment"
    separation: float = 0.3

    def __post_init__(self) -> None:
        if self.score not in MODALITY_SCORES.get(self.modality, ()):
            raise ValueError(f"{self.modality} turns carry no {self.score!r} score: see MODALITY_SCORES")
        mean, half = PERCEPTUAL_SCORES[self.score][0], self.separation / 2
        if not (half > 0.0 and mean - half >= 0.02 and mean + half <= 0.98):
            raise ValueError("separation must be positive and keep both modes within [0.02, 0.98]")


def pick(rng: random.Random, weights: dict[str, float]) -> str:
    """One key of ``weights``, drawn with those weights."""
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]
