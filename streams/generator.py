"""A seeded, realistic traffic generator: chat turns, judge verdicts, late human labels and business
signals (handoffs, handle times, thumbs, carts, orders, recontacts) at the end of each conversation.

Everything is synthetic (no real personal data) and deterministic for a seed. Events come out in
non-decreasing event-time order; verdicts, labels and signals that happen after their turn are held in a
heap and emitted at their own, later, event time. Signals draw from their own random stream, so the other
streams are the same with or without them (``signals=False``).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import Stream
from streams.embedded import Record

DEFAULT_START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
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
DIMENSIONS = tuple(BASE_FAIL)
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


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC timestamp with a ``Z`` suffix, from integer Unix milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TrafficGenerator:
    """Synthetic traffic for two journeys, a model rollout (shopper-v41 → shopper-v42) and one judge.

    ``rate`` is turns per second of event time. The share of shopper conversations on ``shopper-v42``
    grows linearly from 0 at ``rollout_start_s`` to 90% after ``rollout_ramp_s`` more seconds; both
    default to fractions of the duration given to :meth:`records` (20% and 40%).
    """

    def __init__(
        self,
        seed: int = 7,
        rate: float = 200.0,
        start: datetime = DEFAULT_START,
        label_share: float = 0.1,
        incident: Incident | None = None,
        *,
        rollout_start_s: float | None = None,
        rollout_ramp_s: float | None = None,
        score_shift: ScoreShift | None = None,
        signals: bool = True,
        overlap_share: float = 0.1,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError("rate must be a positive number")
        if not 0.0 <= label_share <= 1.0:
            raise ValueError("label_share must be within [0, 1]")
        if not 0.0 <= overlap_share <= 1.0:
            raise ValueError("overlap_share must be within [0, 1]")
        self.seed = seed
        self.rate = rate
        self.start = start.astimezone(UTC)
        self.label_share = label_share
        self.incident = incident
        self.rollout_start_s = rollout_start_s
        self.rollout_ramp_s = rollout_ramp_s
        self.score_shift = score_shift
        self.signals = signals
        self.overlap_share = overlap_share

    def records(
        self, duration_s: float, *, drain: bool = False
    ) -> Iterator[tuple[float, str, dict[str, Any]]]:
        """(event time in Unix seconds, stream name, JSON-ready event) for ``duration_s`` event-seconds of
        traffic, in non-decreasing event time. Verdicts and labels due after the end are dropped, unless
        ``drain`` (then they follow, at their own times)."""
        rng = random.Random(self.seed)
        signal_rng = random.Random(f"{self.seed}/signals")  # its own stream: the others do not change
        rollout = (
            self.rollout_start_s if self.rollout_start_s is not None else 0.2 * duration_s,
            max(self.rollout_ramp_s if self.rollout_ramp_s is not None else 0.4 * duration_s, 1e-9),
        )
        start_ms = round(self.start.timestamp() * 1000)
        end_ms = start_ms + round(duration_s * 1000)
        heap: list[tuple[int, int, str, dict[str, Any]]] = []
        seq = 0
        conversations: list[dict[str, Any]] = []
        n_turns = n_convs = 0
        t = float(start_ms)
        while True:
            t += rng.expovariate(self.rate) * 1000
            now = int(t)
            if now >= end_ms:
                break
            # continue an open conversation, or start a new one
            if conversations and rng.random() < 0.6:
                conv = conversations[rng.randrange(len(conversations))]
            else:
                n_convs += 1
                conv = self._conversation(rng, rollout, n_convs, (now - start_ms) / 1000)
                conversations.append(conv)
                if len(conversations) > 64:
                    conversations.pop(0)
            conv["left"] -= 1
            if conv["left"] <= 0:
                conversations.remove(conv)
            n_turns += 1
            events = self._turn(rng, conv, n_turns, now, (now - start_ms) / 1000)
            if conv["left"] <= 0 and self.signals:
                events += self._signals(signal_rng, conv, now)
            for ms, stream, event in events:
                heapq.heappush(heap, (ms, seq, stream, event))
                seq += 1
            while heap and heap[0][0] <= now:
                ms, _, stream, event = heapq.heappop(heap)
                yield ms / 1000, stream, event
        while heap and (drain or heap[0][0] < end_ms):
            ms, _, stream, event = heapq.heappop(heap)
            yield ms / 1000, stream, event

    # -- one conversation, one turn --------------------------------------------------------------------

    def _conversation(
        self, rng: random.Random, rollout: tuple[float, float], number: int, elapsed_s: float
    ) -> dict[str, Any]:
        journey = _pick(rng, JOURNEYS)
        if journey == "shopper":
            begin, ramp = rollout
            v42_share = 0.9 * min(max((elapsed_s - begin) / ramp, 0.0), 1.0)
            model, channel = ("shopper-v42" if rng.random() < v42_share else "shopper-v41"), "chat"
        else:
            model, channel = "driver-v7", ("voice" if rng.random() < 0.3 else "chat")
        return {
            "id": f"conv-{self.seed}-{number:06d}",
            "journey": journey,
            "model": model,
            "channel": channel,
            "locale": rng.choice(LOCALES),
            "left": rng.randint(1, 6),
            "first_ms": None,
            "escalated": False,
            "failed": False,
            "completed": False,
            "shopping": False,
        }

    def _turn(
        self, rng: random.Random, conv: dict[str, Any], number: int, ms: int, elapsed_s: float
    ) -> list[tuple[int, str, dict[str, Any]]]:
        journey, model = conv["journey"], conv["model"]
        intent = _pick(rng, INTENTS[journey])
        turn_id = f"turn-{self.seed}-{number:07d}"
        risk = {"earnings": ["earnings"], "identity_verification": ["identity"]}.get(intent, [])
        if intent == "payout" and rng.random() < 0.03:
            risk = ["fraud"]

        # the judge's labels; an active incident overrides its dimension's failure rate
        incident = self.incident
        hit = (
            incident is not None
            and journey == incident.journey
            and model == incident.model_version
            and elapsed_s >= incident.start_after_s
        )
        fail_rates = dict(BASE_FAIL)
        if journey == "driver_support":
            fail_rates["compliance"] *= 1.5
        if model == "shopper-v42":
            fail_rates["relevance"] *= 0.8
        if hit and incident is not None:
            fail_rates[incident.dimension] = incident.fail_rate
        judged = {dim: rng.random() < p for dim, p in fail_rates.items()}
        failed = any(judged.values())

        item, ref = rng.choice(ITEMS), f"R-{rng.randrange(10**5):05d}"
        latency = rng.lognormvariate(math.log(1400 if conv["channel"] == "voice" else 900), 0.4)
        latency *= 0.9 if model == "shopper-v42" else 1.0
        user_text, response_text = (s.format(item=item, ref=ref) for s in TEXTS[intent])
        classified = intent if rng.random() < 0.95 else _pick(rng, INTENTS[journey])
        escalated = rng.random() < (0.25 if failed else 0.04)
        feedback = rng.random()
        modality, scores = _multimodal(self.seed, self.score_shift, conv, model, number, elapsed_s)
        turn = {
            "schema_version": 1,
            "turn_id": turn_id,
            "ts": iso_ms(ms),
            "conversation_id": conv["id"],
            "journey": journey,
            "channel": conv["channel"],
            "model_version": model,
            "modality": modality,
            "intent": classified,
            "intent_confidence": round(
                rng.uniform(0.75, 0.99) if classified == intent else rng.uniform(0.4, 0.7), 3
            ),
            "user_text": user_text,
            "response_text": response_text,
            "latency_ms": round(min(latency, 60_000.0), 1),
            "guardrail_flags": [rng.choice(GUARDRAILS)] if rng.random() < 0.01 else [],
            "risk_topics": risk,
            "outcome": {
                "contained": not escalated,
                "escalated_to_agent": escalated,
                "task_completed": (not escalated) and rng.random() < (0.5 if failed else 0.85),
                "user_feedback": (
                    "down" if feedback < (0.4 if failed else 0.03) else "up" if feedback > 0.9 else None
                ),
            },
            "attributes": {"locale": conv["locale"]},
        }
        out: list[tuple[int, str, dict[str, Any]]] = [(ms, "chat_turns", turn)]
        if conv["first_ms"] is None:
            conv["first_ms"] = ms
        conv["escalated"] |= escalated
        conv["failed"] |= failed
        conv["completed"] |= bool(turn["outcome"]["task_completed"])
        conv["shopping"] |= intent in SHOPPING_INTENTS

        verdicts = []
        for dim, fail in judged.items():
            score = rng.uniform(0.0, 0.4) if fail else rng.uniform(0.7, 1.0)
            v: dict[str, Any] = {
                "dimension": dim,
                "label": "fail" if fail else "pass",
                "score": round(score, 3),
                "confidence": round(rng.uniform(0.5, 1.0), 3),
            }
            if fail:
                v["rationale"] = RATIONALE[dim]
            verdicts.append(v)
        if rng.random() < 0.3:
            verdicts.append(
                {"dimension": "intent", "label": intent, "confidence": round(rng.uniform(0.6, 1.0), 3)}
            )
        judge_ms = ms + rng.randint(500, 10_000)
        out.append(
            (
                judge_ms,
                "judge_verdicts",
                {
                    "schema_version": 1,
                    "turn_id": turn_id,
                    "ts": iso_ms(judge_ms),
                    "judge_id": JUDGE_ID,
                    "judge_version": JUDGE_VERSION,
                    "verdicts": verdicts,
                    **({"scores": scores} if scores else {}),
                },
            )
        )

        if rng.random() < self.label_share:
            vendor = rng.choice(tuple(VENDORS))
            median_s = 600 if vendor == "vendor-a" else 1200
            delay_s = min(max(rng.lognormvariate(math.log(median_s), 0.9), 60.0), 6 * 3600.0)
            label_ms = ms + round(delay_s * 1000)
            human = []
            for dim, fail in judged.items():
                if fail:
                    incident_dim = hit and incident is not None and dim == incident.dimension
                    agree = 0.95 if incident_dim else HUMAN_CONFIRMS_FAIL
                    label = "fail" if rng.random() < agree else "pass"
                else:
                    label = "fail" if rng.random() < HUMAN_FALSE_FAIL[dim] else "pass"
                human.append({"dimension": dim, "label": label})
            out.append(
                (
                    label_ms,
                    "human_labels",
                    {
                        "schema_version": 1,
                        "turn_id": turn_id,
                        "ts": iso_ms(label_ms),
                        "annotator_id": rng.choice(VENDORS[vendor]),
                        "vendor_id": vendor,
                        "is_gold": rng.random() < 0.05,
                        "labeling_seconds": round(rng.uniform(20.0, 300.0), 1),
                        "verdicts": human,
                    },
                )
            )
            out.extend(self._second_label(out[-1][2], ms, number, judged, hit))
        return out

    def _second_label(
        self, first: dict[str, Any], ms: int, number: int, judged: dict[str, bool], hit: bool
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Another annotator's label on ``overlap_share`` of the labelled turns (agreement with the
        consensus), from a random stream of its own per turn: every other event is the same without it."""
        rng = random.Random(f"{self.seed}/overlap/{number}")
        if rng.random() >= self.overlap_share:
            return []
        vendor = rng.choice(tuple(VENDORS))
        annotator = rng.choice([a for a in VENDORS[vendor] if a != first["annotator_id"]])
        median_s = 600 if vendor == "vendor-a" else 1200
        label_ms = ms + round(min(max(rng.lognormvariate(math.log(median_s), 0.9), 60.0), 6 * 3600.0) * 1000)
        incident = self.incident.dimension if hit and self.incident is not None else None
        human = []
        for dim, fail in judged.items():
            agree = (0.95 if dim == incident else HUMAN_CONFIRMS_FAIL) if fail else 1 - HUMAN_FALSE_FAIL[dim]
            says_fail = rng.random() < agree if fail else rng.random() >= agree
            human.append({"dimension": dim, "label": "fail" if says_fail else "pass"})
        label = {**first, "ts": iso_ms(label_ms), "annotator_id": annotator, "vendor_id": vendor}
        label["labeling_seconds"] = round(rng.uniform(20.0, 300.0), 1)
        return [(label_ms, "human_labels", {**label, "verdicts": human})]

    def golden(self, duration_s: float) -> dict[str, dict[str, str]]:
        """A golden set (``CONVOWATCH_GOLDEN``) for :meth:`records` of ``duration_s``: every turn a label
        marks ``is_gold``, the judge's quality labels as the truth (the generator's annotators are the
        judge plus noise)."""
        truth: dict[str, dict[str, str]] = {}
        golden: dict[str, dict[str, str]] = {}
        for _, stream, event in self.records(duration_s, drain=True):
            if stream == "judge_verdicts":
                verdicts = event["verdicts"]
                truth[event["turn_id"]] = {
                    v["dimension"]: v["label"] for v in verdicts if v["dimension"] in BASE_FAIL
                }
            elif stream == "human_labels" and event["is_gold"] and event["turn_id"] in truth:
                golden[event["turn_id"]] = truth[event["turn_id"]]
        return golden

    def _signals(
        self, rng: random.Random, conv: dict[str, Any], end_ms: int
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Business signals of a conversation that ended at ``end_ms`` (its last turn)."""
        out: list[tuple[int, str, dict[str, Any]]] = []
        cid = conv["id"]

        def add(ms: int, kind: str, **fields: Any) -> None:
            event = {"schema_version": 1, "event_id": f"sig-{cid}-{len(out) + 1}", "conversation_id": cid}
            out.append((ms, "signals", {**event, "ts": iso_ms(ms), "kind": kind, **fields}))

        escalated, failed = conv["escalated"], conv["failed"]
        if escalated and rng.random() < 0.5:  # the contact centre reports half the handoffs itself
            add(end_ms + rng.randint(1_000, 5_000), "agent_handoff")
        handled_s = (end_ms - conv["first_ms"]) / 1000 + rng.uniform(20.0, 90.0)
        if escalated:
            handled_s += rng.lognormvariate(math.log(420.0), 0.5)  # the agent's part
        add(end_ms + 1_000, "handle_time", handle_time_seconds=round(handled_s, 1))
        if rng.random() < 0.2:
            up = rng.random() < (0.3 if failed else 0.85)
            add(end_ms + rng.randint(2_000, 30_000), "thumbs_up" if up else "thumbs_down")
        if conv["shopping"] and not escalated and rng.random() < 0.35:
            cart_ms, value = end_ms + rng.randint(10_000, 300_000), round(rng.uniform(10.0, 120.0), 2)
            add(cart_ms, "add_to_cart", value=value)
            if rng.random() < 0.6:
                add(cart_ms + rng.randint(30_000, 600_000), "purchase", order_id=f"order-{cid}", value=value)
        recontact = 0.25 if failed else 0.15 if escalated or not conv["completed"] else 0.05
        if rng.random() < recontact:  # the customer comes back about the same issue, hours later
            delay_s = min(max(rng.lognormvariate(math.log(7200.0), 1.0), 600.0), 48 * 3600.0)
            add(end_ms + round(delay_s * 1000), "recontact")
        return out


def _multimodal(
    seed: int, shift: ScoreShift | None, conv: dict[str, Any], model: str, number: int, elapsed_s: float
) -> tuple[str, dict[str, float]]:
    """The turn's modality and the judge's perceptual scores of it (none for text). They draw from a random
    stream of their own per turn, so every other field is the same as without them."""
    if conv["channel"] != "voice" and conv["journey"] != "shopper":
        return "text", {}
    rng = random.Random(f"{seed}/multimodal/{number}")
    modality = "audio" if conv["channel"] == "voice" else _pick(rng, SHOPPER_MODALITIES)
    scores = {}
    for name in MODALITY_SCORES.get(modality, ()):
        mean, concentration = PERCEPTUAL_SCORES[name]
        if (
            shift is not None
            and (shift.modality, shift.score, shift.model_version) == (modality, name, model)
            and elapsed_s >= shift.start_after_s
        ):
            mean += shift.separation / 2 if rng.random() < 0.5 else -shift.separation / 2
        scores[name] = round(rng.betavariate(mean * concentration, (1.0 - mean) * concentration), 3)
    return modality, scores


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def to_records(items: Iterable[tuple[float, str, dict[str, Any]]]) -> Iterator[Record]:
    """Generator output as :data:`streams.embedded.Record` tuples (source ``generator``, running offsets)."""
    for offset, (ts, stream, event) in enumerate(items):
        yield (ts, offset, Stream(stream), orjson.dumps(event), "generator", offset)
