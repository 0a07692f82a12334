"""The events of one synthetic turn (chat turn, judge verdict, late human labels) and the business signals
at the end of a conversation, drawn from :mod:`streams.traffic_model`.

Every event is ``(event time in Unix ms, stream name, JSON-ready event)``; the
:class:`~streams.generator.TrafficGenerator` emits them in event-time order.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.traffic_model import (
    BASE_FAIL,
    GUARDRAILS,
    HUMAN_CONFIRMS_FAIL,
    HUMAN_FALSE_FAIL,
    INTENTS,
    ITEMS,
    JUDGE_ID,
    JUDGE_VERSION,
    MODALITY_SCORES,
    PERCEPTUAL_SCORES,
    RATIONALE,
    SHOPPER_MODALITIES,
    SHOPPING_INTENTS,
    TEXTS,
    VENDORS,
    Incident,
    ScoreShift,
    pick,
)


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC timestamp with a ``Z`` suffix, from integer Unix milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class TurnSimulator:
    """Draws the events of one turn: the chat turn, the judge's verdict and, on ``label_share`` of the
    turns, a human label after a realistic delay (a second annotator's on ``overlap_share`` of those)."""

    seed: int
    label_share: float
    overlap_share: float
    incident: Incident | None = None
    score_shift: ScoreShift | None = None

    def events(
        self, rng: random.Random, conv: dict[str, Any], number: int, ms: int, elapsed_s: float
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """The events of turn ``number`` of ``conv``, at ``ms`` (``elapsed_s`` into the run); ``conv``'s
        running outcome (escalated, failed, completed, shopping) is updated."""
        journey, model = conv["journey"], conv["model"]
        intent = pick(rng, INTENTS[journey])
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
        classified = intent if rng.random() < 0.95 else pick(rng, INTENTS[journey])
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


def conversation_signals(
    rng: random.Random, conv: dict[str, Any], end_ms: int
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
    modality = "audio" if conv["channel"] == "voice" else pick(rng, SHOPPER_MODALITIES)
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
