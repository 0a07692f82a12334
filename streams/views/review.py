"""Review sampling: which judged turns to send to human review, published to ``convowatch.review.requests``.

The join emits one ``reviewable`` observation per turn, when the turn and its first verdict have met (so
the judge's labels and confidences and the live model's signals are known), and one more (``update``)
if a later verdict makes the turn a high-risk failure: a judge prompted per dimension may send its
``safety`` fail after its ``relevance`` pass, or a second judge may fail it. That turn is then requested
with probability 1 (same ``request_id``, now ``high_risk``, replacing an earlier request: its inclusion
probability is 1, since it would have been requested either way, and the join weighs the pairs of a turn
judged high-risk by 1 whatever probability its label copied). The sampler counts it as the same turn
(``decided_before``): its recent traffic moves it among the high-risk turns, not adding one, and the
request is a new spend (requests counted, budget spent) only if the turn was not requested before, as far
as the sampler remembers (its last 128 requests; ``convowatch_review_requests_total`` counts the request
published again). One :class:`~detectors.ReviewSampler` under ``review`` decides every turn: the budget
is global, so the observations share one shard key. That shard sees one observation per judged turn, as
the shard of a single judge's ``judged`` observations does; the decision costs microseconds, but it is
one partition's worth of throughput, not the cluster's.

What the sampler is told about a turn:

- ``high_risk``: what ``streams/policy.py`` escalates as ``high_risk_failure``: a judge fails a high-risk
  dimension (taxonomy: ``safety``, ``bias``), or any quality dimension of a turn about a high-risk topic
  (``earnings``, ``identity``, ``fraud``). Requested with probability 1. A risky topic alone, with every
  verdict passing, is not high-risk: in traffic like the generator's that is one turn in six, which would
  spend the budget on turns the judge finds fine. The join decides it with the escalation and the weight of
  the turn's labels, and the observation carries the dimensions (``high_risk_fails``); one from a join of
  code before that is decided by the same rule from the judges' labels it carries;
- ``confidence``: the judge's least sure confidence (closest to 0.5) over the labels it gave;
- ``disagreement``: the live model's signals contradict the judge: a guardrail flag on a turn a judge
  passes on ``safety``; a thumbs-down on a turn every judge passes; or the live model's intent differs
  from a judge's ``intent`` label;
- ``segment``: the journey (per-segment floors and coverage).

Each sampled turn becomes a :class:`~schemas.ReviewRequest` with its inclusion probability ``pi``; the
labelling tool copies ``pi`` into the HumanLabel, and the calibrated defect rate (``streams/views/ppi.py``)
weights that label by ``1 / pi`` (Horvitz-Thompson), which keeps it unbiased although the sampling is not
uniform. Exactly once on replay: a replayed observation is skipped by :meth:`Aggregator.update` and
publishes nothing. The sampler's state is in the aggregate's changelog; if it were lost, a re-run would
draw the same uniform number per turn (a hash of the seed and the turn id) but against the pi of a fresh
sampler, so only high-risk turns (pi = 1) would surely decide the same; a request re-published has the
same ``request_id``. The request counter, like the defect counters, counts a replay again.

Each request also goes to the join, on ``convowatch.internal.review.keep`` keyed by ``turn_id`` (so in the
partition of the turn's inputs; embedded, in process): the join keeps a turn sent for review past its size
cap, until the TTL, so that its labels meet it (:meth:`~streams.join.TurnJoiner.keep_for_review`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from detectors.review_sampler import ReviewSampler
from schemas.common import FAIL, PASS, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator
from streams.emit import UNKNOWN_SEGMENT, Emit, iso
from streams.metrics import Metrics
from streams.policy import judged_high_risk_fails_of
from streams.taxonomy import Taxonomy

#: The sampler's reason names as published (``segment`` is the coverage of the turn's segment).
REASONS = {"segment": "segment_coverage"}
#: Sampler parameters that follow the configuration when a stored sampler is restored.
CONFIGURED = ("budget_per_hour", "segment_floor_per_hour", "min_probability", "seed")
#: The aggregate key of the one sampler (the budget is global).
SAMPLER_KEY = "review"


class ReviewView:
    kinds: tuple[str, ...] = ("reviewable",)

    def __init__(
        self,
        metrics: Metrics,
        taxonomy: Taxonomy,
        budget_per_hour: float = 60.0,
        segment_floor_per_hour: float = 0.0,
        min_probability: float = 0.001,
        seed: int = 0,
        queues: dict[str, str] | None = None,
        default_queue: str = "default",
    ) -> None:
        self.metrics = metrics
        self.taxonomy = taxonomy
        self.params: dict[str, Any] = {
            "budget_per_hour": budget_per_hour,
            "segment_floor_per_hour": segment_floor_per_hour,
            "min_probability": min_probability,
            "seed": seed,
        }
        ReviewSampler(**self.params)  # bad values fail at start, not on the first turn
        self.queues = dict(queues or {})
        self.default_queue = default_queue
        metrics.review_budget_per_hour.set(budget_per_hour)

    def _make(self) -> ReviewSampler:
        return ReviewSampler(**self.params)

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        signals = review_signals(obs, self.taxonomy)
        if obs.get("update") and not signals["high_risk"]:  # decided already, and nothing forces it now
            return []
        segment = obs["segment"] or UNKNOWN_SEGMENT
        journey = segment.get("journey") or ""

        def decide(sampler: ReviewSampler) -> None:
            # a stored sampler follows a changed configuration; its recent-traffic state is kept
            for name in CONFIGURED:
                if getattr(sampler, name) != self.params[name]:
                    setattr(sampler, name, self.params[name])
            sampler.update(
                obs["turn_id"],
                obs["ts"],
                segment=journey,
                high_risk=signals["high_risk"],
                confidence=signals["confidence"],
                disagreement=bool(signals["disagreements"]),
                decided_before=bool(obs.get("update")),
            )

        sampler = aggregator.update(SAMPLER_KEY, obs, partition, self._make, decide)
        if sampler is None:  # a replay: decided and published already
            return []
        self.metrics.review_expected_per_hour.set(sampler.expected_requests_per_hour)
        if not sampler.requested:
            return []
        reason = sampler.reason or "random"
        reason = REASONS.get(reason, reason)
        top = 1.0 + sampler.disagreement_weight + sampler.uncertainty_weight + sampler.segment_weight
        request_id = f"review/{obs['turn_id']}"
        evidence: dict[str, Any] = {
            "risk_topics": list(obs["risk"]),
            "high_risk_fails": signals["high_risk_fails"],
            "disagreements": signals["disagreements"],
            "judge_confidence": signals["confidence"],
        }
        request = {
            "schema_version": 1,
            "request_id": request_id,
            "turn_id": obs["turn_id"],
            "reason": reason,
            "priority": 1.0 if reason == "high_risk" else min(sampler.priority / top, 1.0),
            "inclusion_probability": sampler.inclusion_probability,
            "queue": self.queues.get(journey, self.default_queue),
            "segment": dict(segment),
            "judge_ids": sorted(obs["judges"]),
            "ts": iso(obs["ts"]),
            "requested_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "evidence": {k: v for k, v in evidence.items() if v not in (None, [])},
        }
        m = self.metrics
        m.review_requests.labels(reason, m.label("journey", journey or None)).inc()
        # to the join, keyed like its inputs: it keeps the turn past its size cap, so that the labels meet it
        keep = {"turn_id": obs["turn_id"], "ts": iso(obs["ts"])}
        return [Emit("review_requests", request_id, request), Emit("review_keep", obs["turn_id"], keep)]


def review_signals(obs: dict[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    """What a ``reviewable`` observation tells the sampler (see the module doc). ``taxonomy``: for an
    observation without the join's ``high_risk_fails`` (from code before it) only."""
    judges: dict[str, dict[str, Any]] = obs["judges"]
    fails: list[str] | None = obs.get("high_risk_fails")
    if fails is None:  # decided as the join of that code decided it
        labels = (record["labels"] for record in judges.values())
        fails = judged_high_risk_fails_of(taxonomy, labels, bool(obs["risk"]))
    # the confidence closest to 0.5 (the first such): the judge's least certain verdict
    confidence, distance = None, float("inf")
    for record in judges.values():
        for c in record["conf"].values():
            d = abs(2.0 * c - 1.0)
            if d < distance:
                confidence, distance = c, d
    disagreements = []
    if obs["guardrail_flags"] and any(r["labels"].get("safety") == PASS for r in judges.values()):
        disagreements.append("guardrail_flag_judge_passes_safety")
    quality = [
        label for r in judges.values() for dim, label in r["labels"].items() if dim in QUALITY_DIMENSIONS
    ]
    if obs.get("user_feedback") == "down" and quality and FAIL not in quality:
        disagreements.append("thumbs_down_judge_passes")
    intent = (obs["segment"] or {}).get("intent")
    judged_intents = {r["labels"]["intent"] for r in judges.values() if "intent" in r["labels"]}
    if intent is not None and judged_intents and intent not in judged_intents:
        disagreements.append("intent_differs_from_judge")
    return {
        "high_risk": bool(fails),
        "high_risk_fails": fails,
        "confidence": confidence,
        "disagreements": disagreements,
    }
