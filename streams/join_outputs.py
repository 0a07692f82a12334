"""What a joined turn publishes: defects, agreement pairs, divergences, high-risk escalations, and the
observations for the aggregation stage (built in ``streams.join_observations``); and what a turn's state
keeps of its chat text.

:class:`TurnOutputs` reads and marks a join entry (``streams.join``): the ``observed``, ``defects`` and
``paired`` lists of an entry make each output happen once per turn, whatever the arrival order.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from typing import Any

from schemas import ChatTurn
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.emit import SEP, UNKNOWN_SEGMENT, Emit, Entry, iso, output_id
from streams.golden import GoldenSet
from streams.join_gold import gold_observations
from streams.join_observations import number_observations, observations
from streams.metrics import Metrics
from streams.policy import HighRiskPolicy, judged_high_risk_fails
from streams.taxonomy import Taxonomy

#: Longest chat text a defect keeps (characters): a turn may be as large as the input limit (1 MB), and a
#: defect carrying it whole would exceed the producer's request limit, failing its batch on every retry.
MAX_KEPT_TEXT = 16_384
#: Most judges, and most annotators, whose labels a defect carries (its own rater first): a turn may hold
#: 100 of each with 64 dimensions apiece, over 1 MB of labels, more than one record may carry.
MAX_DEFECT_RATERS = 10
#: The segment labels of the defects counter, after dimension, category and source.
DEFECT_SEGMENT_LABELS = ("journey", "model_version", "channel", "modality")
#: A turn context's chat text (``text_redaction`` keep), and what ``hash`` keeps in its place
TEXT_FIELDS = ("user_text", "response_text")
HASH_FIELDS = ("user_text_hmac_sha256", "response_text_hmac_sha256")


class TurnOutputs:
    """Builds a join entry's outputs not emitted yet (see the module docstring)."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        metrics: Metrics,
        text_redaction: str = "drop",
        category_topics: bool = True,
        text_hash_key: bytes | None = None,
        golden: GoldenSet | None = None,
    ) -> None:
        if text_redaction not in ("keep", "hash", "drop"):
            raise ValueError(f"text_redaction must be keep, hash or drop, not {text_redaction!r}")
        if text_redaction == "hash" and not text_hash_key:
            raise ValueError("text_redaction 'hash' needs a key (CONVOWATCH_TEXT_HASH_KEY)")
        self._text_hash_key = text_hash_key
        self.taxonomy = taxonomy
        self.metrics = metrics
        self.text_redaction = text_redaction
        self.category_topics = category_topics
        self.policy = HighRiskPolicy(taxonomy, metrics)
        #: the golden set: labels and verdicts on its turns are scored as they come (streams.join_gold)
        self.golden: GoldenSet = golden or {}

    def context(self, turn: ChatTurn) -> dict[str, Any]:
        """What a defect record carries about its turn; chat text only as ``text_redaction`` allows."""
        ctx: dict[str, Any] = {"conversation_id": turn.conversation_id}
        if turn.intent_confidence is not None:
            ctx["intent_confidence"] = turn.intent_confidence
        if turn.latency_ms is not None:
            ctx["latency_ms"] = turn.latency_ms
        if turn.guardrail_flags:
            ctx["guardrail_flags"] = list(turn.guardrail_flags)
        outcome = turn.outcome.model_dump(exclude_none=True)
        if outcome:
            ctx["outcome"] = outcome
        if self.text_redaction == "keep":
            ctx["user_text"], ctx["response_text"] = kept(turn.user_text), kept(turn.response_text)
        elif self.text_redaction == "hash":
            ctx["user_text_hmac_sha256"] = self.text_hash(turn.user_text)
            ctx["response_text_hmac_sha256"] = self.text_hash(turn.response_text)
        return ctx

    def turn_context(self, turn: dict[str, Any]) -> dict[str, Any]:
        """A copy of the context a join entry's ``turn`` stored, redacted as ``text_redaction`` says now: the
        context was stored when the turn came, maybe under another setting (the worker restarted with a
        stricter one, and recovered its state): text kept then is hashed or dropped now, hashes are dropped
        under ``drop``. The entry's context is redacted too, so its next changelog record no longer holds
        what the setting refuses. (A text longer than :data:`MAX_KEPT_TEXT`, kept cut, hashes as cut.)"""
        ctx: dict[str, Any] = turn["ctx"]
        mode = self.text_redaction
        if mode == "keep" or not any(name in ctx for name in (*TEXT_FIELDS, *HASH_FIELDS)):
            return dict(ctx)
        if mode == "hash":
            if "user_text" not in ctx:  # hashed already (or dropped): nothing to redact
                return dict(ctx)
            redacted = {k: v for k, v in ctx.items() if k not in TEXT_FIELDS}
            for text, digest in zip(TEXT_FIELDS, HASH_FIELDS, strict=True):
                redacted[digest] = self.text_hash(ctx[text])
        else:
            redacted = {k: v for k, v in ctx.items() if k not in TEXT_FIELDS and k not in HASH_FIELDS}
        turn["ctx"] = redacted
        return dict(redacted)

    def text_hash(self, text: str) -> str:
        """HMAC-SHA256 of ``text`` under the configured key: equal texts match across records, but without
        the key a short text cannot be found by hashing guesses, as it could from a plain SHA-256."""
        assert self._text_hash_key is not None
        return hmac.new(self._text_hash_key, text.encode(), hashlib.sha256).hexdigest()

    def failures(self, entry: Entry) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(source, source_id, dimension, source record) of every failing quality label, in a stable order."""
        found = []
        for source, group in (("judge", entry["judge"]), ("human", entry["human"])):
            for source_id, record in group.items():
                for dim, label in record["labels"].items():
                    if label == FAIL and dim in QUALITY_DIMENSIONS:
                        found.append((source, source_id, dim, record))
        return found

    def outputs(self, turn_id: str, entry: Entry, source: tuple[str, int | None]) -> list[Emit]:
        """Everything the entry's latest change makes publishable; observations numbered from ``source``."""
        # first: before ``observations`` marks the raters observed (and before a ``labelled`` observation
        # of the same record, so that the vendor scorecard judges its SLAs with both)
        emits = gold_observations(turn_id, entry, self.golden.get(turn_id))
        failures = self.failures(entry)
        triggers = self.policy.triggers(entry, failures)
        # the turn's judged high-risk failures: decided here, once, for its observations and its pairs
        judged = judged_high_risk_fails(triggers)
        if entry["turn"] is not None:
            if failures:
                emits.extend(self.defects(turn_id, entry, failures))
            emits.extend(observations(turn_id, entry, judged))
        if entry["human"]:  # pairs need a human label
            emits.extend(self.pairs(turn_id, entry, bool(judged)))
        emits.extend(self.policy.evaluate(turn_id, entry, triggers))
        number_observations(emits, source)
        return emits

    def orphaned(self, turn_id: str, entry: Entry) -> list[Emit]:
        """What an entry whose turn never came publishes when it is evicted: its defects and pairs, with an
        unknown segment, and the gold observations of labels an entry of code before them holds unscored."""
        failures = self.failures(entry)
        emits = self.defects(turn_id, entry, failures)
        judged = judged_high_risk_fails(self.policy.triggers(entry, failures))
        emits.extend(self.pairs(turn_id, entry, bool(judged), final=True))
        emits.extend(gold_observations(turn_id, entry, self.golden.get(turn_id)))
        return emits

    def defects(self, turn_id: str, entry: Entry, failures: list[Any]) -> list[Emit]:
        """A defect per failing label not published yet (with an unknown segment if the turn is missing)."""
        emits = []
        turn = entry["turn"]
        segment = turn["segment"] if turn else UNKNOWN_SEGMENT
        ts = turn["ts"] if turn else None
        cut = sum(max(0, len(entry[side]) - MAX_DEFECT_RATERS) for side in ("judge", "human"))
        published = set(entry["defects"])
        for source, source_id, dim, record in failures:
            policy = self.taxonomy.policy(dim)
            parts = (policy.category, turn_id, dim, source, source_id)
            defect_id = output_id(*parts)
            mark = defect_mark(defect_id)
            if (
                mark in published
                or defect_id in published
                or _published_unescaped(published, defect_id, parts)
            ):
                continue
            entry["defects"].append(mark)
            published.add(mark)
            value = {
                "schema_version": 1,
                "defect_id": defect_id,
                "turn_id": turn_id,
                "dimension": dim,
                "category": policy.category,
                "label": FAIL,
                "source": source,
                "judge_id": source_id if source == "judge" else None,
                "vendor_id": record.get("vendor") if source == "human" else None,
                "annotator_id": source_id if source == "human" else None,
                "severity": policy.severity,
                "segment": dict(segment),
                "ts": iso(ts if ts is not None else record["ts"]),
                "turn": self.turn_context(turn) if turn else None,
                "verdicts": {
                    judge_id: dict(r["labels"]) for judge_id, r in _carried(entry["judge"], source_id)
                },
                "labels": {
                    annotator: {"vendor_id": r["vendor"], "is_gold": r["gold"], "labels": dict(r["labels"])}
                    for annotator, r in _carried(entry["human"], source_id)
                },
            }
            if cut:
                value["raters_cut"] = cut
            m = self.metrics
            m.defects.labels(
                m.label("dimension", dim),
                policy.category,
                source,
                *(m.label(name, segment.get(name)) for name in DEFECT_SEGMENT_LABELS),
            ).inc()
            emits.append(Emit("defects", defect_id, value))
            if self.category_topics:
                emits.append(Emit(f"defects.{policy.category}", defect_id, value))
        return emits

    def pairs(self, turn_id: str, entry: Entry, judged_high_risk: bool, final: bool = False) -> list[Emit]:
        """Judge/human pairs not yet emitted; they wait for the turn (for its segment) unless ``final``.
        ``judged_high_risk``: whether the judges fail the turn as high-risk (its labels weigh 1)."""
        if entry["turn"] is None and not final:
            return []
        emits: list[Emit] = []
        human_labels: dict[str, str] = {}
        weights: dict[str, float | None] = {}  # that label's inclusion probability, if it was sampled
        for dim, annotator in first_sampled(entry).items():
            record = entry["human"][annotator]
            human_labels[dim], weights[dim] = record["labels"][dim], record.get("pi")
        # review sampling requests every judged high-risk turn (again, with pi 1, if a later verdict made it
        # one): its inclusion probability is 1, whatever its label copied
        sampled = any(pi is not None and pi < 1.0 for pi in weights.values())
        if sampled and judged_high_risk:
            weights = dict.fromkeys(weights, 1.0)
        turn = entry["turn"]
        for judge_id, record in entry["judge"].items():
            for dim, label in record["labels"].items():
                pair_key = f"{judge_id}{SEP}{dim}"
                if dim not in human_labels or pair_key in entry["paired"]:
                    continue
                entry["paired"].append(pair_key)
                pair = {
                    "kind": "pair",
                    "turn_id": turn_id,
                    "judge_id": judge_id,
                    "judge_version": record.get("v"),  # None: an entry of code before the join kept it
                    "dimension": dim,
                    "judge_label": label,
                    "human_label": human_labels[dim],
                    "inclusion_probability": weights[dim],
                    "confidence": record.get("conf", {}).get(dim),
                    "segment": turn["segment"] if turn else None,
                    "ts": turn["ts"] if turn else record["ts"],
                }
                # all of a judge's aggregates live on one partition
                emits.append(Emit("observations", judge_id, pair))
                if label != human_labels[dim] and self.taxonomy.policy(dim).high_risk:
                    emits.append(self.divergence(turn_id, entry, pair))
        return emits

    def divergence(self, turn_id: str, entry: Entry, pair: dict[str, Any]) -> Emit:
        """A high-risk disagreement between judge and human, for labelling-guide review."""
        divergence_id = output_id(turn_id, pair["judge_id"], pair["dimension"])
        value = {
            "schema_version": 1,
            "divergence_id": divergence_id,
            "turn_id": turn_id,
            "dimension": pair["dimension"],
            "judge_id": pair["judge_id"],
            "judge_label": pair["judge_label"],
            "human_label": pair["human_label"],
            "human_labels": {
                annotator: {"vendor_id": r["vendor"], "label": r["labels"].get(pair["dimension"])}
                for annotator, r in entry["human"].items()
                if pair["dimension"] in r["labels"]
            },
            "segment": dict(pair["segment"] or UNKNOWN_SEGMENT),
            "ts": iso(pair["ts"]),
        }
        return Emit("divergences", divergence_id, value)


def first_sampled(entry: Entry) -> dict[str, str]:
    """Each dimension's first human label of the turn, in arrival order, that is not on a gold item (a
    honeypot audits its annotator, the gold view scores it; it is not a sampled label): dimension ->
    annotator. The join records it as labels come (``first``: an annotator may label a dimension after a
    later annotator did); an entry of code before that takes each annotator's labels in the order the
    annotators came."""
    recorded = entry.get("first")
    if recorded is not None:
        return recorded  # type: ignore[no-any-return]
    first: dict[str, str] = {}
    for annotator, record in entry["human"].items():
        if not record["gold"]:
            for dim in record["labels"]:
                first.setdefault(dim, annotator)
    return first


def _carried(raters: dict[str, Any], first: str) -> list[tuple[str, Any]]:
    """The raters whose labels a defect carries: ``first`` (the defect's own, if among them), then the
    others in arrival order, :data:`MAX_DEFECT_RATERS` in all."""
    if len(raters) <= MAX_DEFECT_RATERS:
        return list(raters.items())
    own = [(first, raters[first])] if first in raters else []
    others = (item for item in raters.items() if item[0] != first)
    return own + list(itertools.islice(others, MAX_DEFECT_RATERS - len(own)))


def kept(text: str) -> str:
    """``text`` cut to :data:`MAX_KEPT_TEXT` characters, saying so (the turn's position finds the rest)."""
    if len(text) <= MAX_KEPT_TEXT:
        return text
    return f"{text[:MAX_KEPT_TEXT]}[... {len(text) - MAX_KEPT_TEXT} more characters cut]"


def defect_mark(defect_id: str) -> str:
    """What a join entry's ``defects`` list keeps of a defect it published: a 96-bit digest of its id (24
    characters). The id holds the turn id, up to 256 characters and 1,536 bytes of JSON (escaped control
    characters), and its other parts may triple with their escaped ``/``: a turn's 800 failing labels kept
    as ids made its entry up to 1.8 MB, over a changelog record. The whole ids that entries written before
    the digests keep are still recognised."""
    return hashlib.blake2b(defect_id.encode(), digest_size=12).hexdigest()


def _published_unescaped(published: set[str], defect_id: str, parts: tuple[str, ...]) -> bool:
    """Whether an entry published this defect under the id of code before 2026-11-26, its parts joined
    unescaped (an entry of the upgrade's pending turns: republished, the defect would reach its consumers
    twice, under two ids); ``published``: its ``defects`` list."""
    if "%" not in defect_id:  # no part held a "/" or "%": the same id
        return False
    return "/".join(parts) in published
