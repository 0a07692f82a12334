"""Joins chat turns, judge verdicts and human labels by ``turn_id``, in any arrival order.

Pure and transport-agnostic: state lives in an injected :class:`~streams.state.StateStore` (a dict when
embedded, a Faust table on Kafka) holding JSON-native entries, written behind: once per touched turn at
:meth:`TurnJoiner.flush`. A verdict or label seen twice for the same turn, source and dimension counts once.

Observations for the aggregation stage carry ``src`` = [input topic/partition, offset, sequence]: a replay
after a crash re-emits them with the same ``src``, which lets the aggregates apply each exactly once.
"""

from __future__ import annotations

import hashlib
from typing import Any

from schemas import ChatTurn, HumanLabel, JudgeVerdict
from schemas.common import FAIL, QUALITY_DIMENSIONS
from schemas.judge_verdict import MAX_SCORES
from streams.emit import SEP, UNKNOWN_SEGMENT, Emit, Entry, iso
from streams.expiry import ExpiryIndex
from streams.metrics import Metrics
from streams.policy import HighRiskPolicy
from streams.state import DictStore, StateStore, WriteBehind
from streams.taxonomy import Taxonomy

#: Human labels on one dimension of one turn that make an inter-annotator item (emitted once).
MIN_RATERS = 2


class TurnJoiner:
    """Holds each turn's events until they can be judged; emits defects, escalations and agreement pairs."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        metrics: Metrics,
        store: StateStore | None = None,
        ttl_seconds: float = 7 * 24 * 3600,
        max_entries: int = 1_000_000,
        evict_every: int = 5_000,
        autoflush: bool = True,
        text_redaction: str = "drop",
        category_topics: bool = True,
    ) -> None:
        self.taxonomy = taxonomy
        self.metrics = metrics
        self.store: StateStore = store if store is not None else DictStore()
        self.state = WriteBehind(self.store)
        self.autoflush = autoflush
        if text_redaction not in ("keep", "hash", "drop"):
            raise ValueError(f"text_redaction must be keep, hash or drop, not {text_redaction!r}")
        self.text_redaction = text_redaction
        self.category_topics = category_topics
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.evict_every = evict_every
        self.watermark = 0.0  # newest event time seen (Unix seconds)
        self._since_evict = 0
        self.expiry = ExpiryIndex(width=ttl_seconds / 64)
        self.policy = HighRiskPolicy(taxonomy, metrics)

    # -- input ---------------------------------------------------------------------------------------

    def handle(
        self,
        event: ChatTurn | JudgeVerdict | HumanLabel,
        partition: int | None = None,
        source: tuple[str, int | None] = ("", None),
    ) -> list[Emit]:
        """Join one event; ``source`` (input topic/partition, offset) tags the observations it causes."""
        ts = event.ts.timestamp()
        self.watermark = max(self.watermark, ts)
        entry = self.state.get(event.turn_id)
        new = entry is None
        if entry is None:
            entry = {
                "p": partition,
                "last": ts,
                "turn": None,
                "judge": {},
                "human": {},
                "paired": [],
                "observed": [],
                "defects": [],
                "esc": None,
            }
        old_last = None if new else entry["last"]
        entry["last"] = max(entry["last"], ts)
        self.expiry.move(event.turn_id, old_last, entry["last"])
        if isinstance(event, ChatTurn):
            changed = self._add_turn(entry, event)
        elif isinstance(event, JudgeVerdict):
            changed = self._add_judge(entry, event)
        else:
            changed = self._add_human(entry, event)
        emits = self._outputs(event.turn_id, entry, source) if changed else []
        self.state.touch(event.turn_id, entry, partition, new=new)
        if self.autoflush:
            self.state.flush()
        pending = len(self.state)
        self.metrics.join_pending.set(pending)
        self._since_evict += 1
        if self._since_evict >= self.evict_every or pending > self.max_entries:
            emits.extend(self.evict())
        return emits

    def flush(self) -> int:
        """Write every turn touched since the last flush to the store; returns how many."""
        return self.state.flush()

    def _add_turn(self, entry: Entry, turn: ChatTurn) -> bool:
        if entry["turn"] is not None:
            self.metrics.duplicates.labels("chat_turns").inc()
            return False
        entry["turn"] = {
            "ts": turn.ts.timestamp(),
            "segment": {
                "journey": turn.journey,
                "intent": turn.intent,
                "model_version": turn.model_version,
                "channel": turn.channel,
                "modality": turn.modality,
            },
            "risk": sorted(set(turn.risk_topics) & self.taxonomy.high_risk_topics),
            "ctx": self._context(turn),
        }
        return True

    def _context(self, turn: ChatTurn) -> dict[str, Any]:
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
            ctx["user_text_sha256"] = hashlib.sha256(turn.user_text.encode()).hexdigest()
            ctx["response_text_sha256"] = hashlib.sha256(turn.response_text.encode()).hexdigest()
        return ctx

    def _add_judge(self, entry: Entry, verdict: JudgeVerdict) -> bool:
        record = entry["judge"].setdefault(verdict.judge_id, {"ts": verdict.ts.timestamp(), "labels": {}})
        changed = self._merge(record["labels"], verdict.verdicts, "judge_verdicts")
        for v in verdict.verdicts:  # the judge's confidence, for calibration against humans
            if v.confidence is not None and v.dimension not in record.get("conf", {}):
                record.setdefault("conf", {})[v.dimension] = v.confidence
        for name, score in verdict.scores.items():  # perceptual scores: the first value per name counts
            scores = record.setdefault("scores", {})
            if name not in scores and len(scores) < MAX_SCORES:
                scores[name] = score
        return changed

    def _add_human(self, entry: Entry, label: HumanLabel) -> bool:
        labels = entry["human"].setdefault(
            label.annotator_id,
            {"ts": label.ts.timestamp(), "vendor": label.vendor_id, "gold": label.is_gold, "labels": {}},
        )
        if label.inclusion_probability is not None:  # from the review request: weights the label by 1/p
            labels.setdefault("pi", label.inclusion_probability)
        return self._merge(labels["labels"], label.verdicts, "human_labels")

    def _merge(self, labels: dict[str, str], verdicts: list[Any], stream: str) -> bool:
        changed = False
        for v in verdicts:
            if v.dimension in labels:
                self.metrics.duplicates.labels(stream).inc()
            else:
                labels[v.dimension] = v.label
                changed = True
        return changed

    # -- output --------------------------------------------------------------------------------------

    def _failures(self, entry: Entry) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(source, source_id, dimension, source record) of every failing quality label, in a stable order."""
        found = []
        for source, group in (("judge", entry["judge"]), ("human", entry["human"])):
            for source_id, record in group.items():
                for dim, label in record["labels"].items():
                    if label == FAIL and dim in QUALITY_DIMENSIONS:
                        found.append((source, source_id, dim, record))
        return found

    def _outputs(self, turn_id: str, entry: Entry, source: tuple[str, int | None]) -> list[Emit]:
        emits: list[Emit] = []
        failures = self._failures(entry)
        if entry["turn"] is not None:
            emits.extend(self._defects(turn_id, entry, failures))
            emits.extend(self._observed(turn_id, entry))
        emits.extend(self._pairs(turn_id, entry))
        emits.extend(self.policy.evaluate(turn_id, entry, failures))
        number_observations(emits, source)
        return emits

    def _observed(self, turn_id: str, entry: Entry) -> list[Emit]:
        """Once per turn (``turn``), judge (``judged``) and annotator (``labelled``) meeting the turn, and
        once per turn with its first verdict (``reviewable``, for review sampling)."""
        turn = entry["turn"]
        ctx = turn["ctx"]
        common = {
            "turn_id": turn_id,
            "ts": turn["ts"],
            "segment": turn["segment"],
            "risk": turn["risk"],
            "guardrail_flags": ctx.get("guardrail_flags", []),
            "intent_confidence": ctx.get("intent_confidence"),
        }
        emits = []
        observed = entry.setdefault("observed", [])
        if "t" not in observed:  # the turn itself, for volume and latency per journey
            observed.append("t")
            value = {
                "kind": "turn",
                "latency_ms": ctx.get("latency_ms"),
                "outcome": ctx.get("outcome", {}),  # for outcome rates per model version
                **common,
            }
            emits.append(Emit("observations", turn["segment"]["journey"], value))
        for judge_id, record in entry["judge"].items():
            if f"j{SEP}{judge_id}" not in observed:
                observed.append(f"j{SEP}{judge_id}")
                value = {
                    "kind": "judged",
                    "judge_id": judge_id,
                    "labels": dict(record["labels"]),
                    "conf": dict(record.get("conf", {})),
                    "scores": dict(record.get("scores", {})),
                    **common,
                }
                emits.append(Emit("observations", judge_id, value))
        for annotator, record in entry["human"].items():
            if f"h{SEP}{annotator}" not in observed:
                observed.append(f"h{SEP}{annotator}")
                value = {
                    "kind": "labelled",
                    "annotator_id": annotator,
                    "vendor_id": record["vendor"],
                    "is_gold": record["gold"],
                    "labels": dict(record["labels"]),
                    "label_ts": record["ts"],
                    "inclusion_probability": record.get("pi"),
                    "judges": {j: dict(r["labels"]) for j, r in entry["judge"].items()},
                    **common,
                }
                emits.append(Emit("observations", "humans", value))  # human labels are few: one shard
        if entry["judge"] and "v" not in observed:
            # one review-sampling decision per turn, once its first verdict is known; one shard, because
            # the budget is global (no hotter than the shard of a single judge's ``judged`` observations)
            observed.append("v")
            value = {
                "kind": "reviewable",
                "judges": {
                    j: {"labels": dict(r["labels"]), "conf": dict(r.get("conf", {}))}
                    for j, r in entry["judge"].items()
                },
                "user_feedback": ctx.get("outcome", {}).get("user_feedback"),
                **common,
            }
            emits.append(Emit("observations", "review", value))
        emits.extend(self._raters(turn_id, entry, common))
        if "c" not in observed:  # the turn as a contact of its conversation, for business outcomes
            observed.append("c")
            conversation = ctx["conversation_id"]
            value = {
                "kind": "contact",
                "conversation_id": conversation,
                "turn_id": turn_id,
                "ts": turn["ts"],
                "segment": turn["segment"],
                "outcome": ctx.get("outcome", {}),
            }
            emits.append(Emit("observations", conversation, value))
        return emits

    def _raters(self, turn_id: str, entry: Entry, common: dict[str, Any]) -> list[Emit]:
        """Once a dimension of the turn has labels from ``MIN_RATERS`` annotators: one ``raters`` item."""
        by_dimension: dict[str, dict[str, str]] = {}
        for annotator, record in entry["human"].items():
            for dim, label in record["labels"].items():
                by_dimension.setdefault(dim, {})[annotator] = label
        emits = []
        observed = entry["observed"]
        for dim, labels in by_dimension.items():
            if len(labels) >= MIN_RATERS and f"r{SEP}{dim}" not in observed:
                observed.append(f"r{SEP}{dim}")
                value = {
                    "kind": "raters",
                    "dimension": dim,
                    "labels": labels,
                    "vendors": {a: entry["human"][a]["vendor"] for a in labels},
                    "judges": {j: r["labels"][dim] for j, r in entry["judge"].items() if dim in r["labels"]},
                    **common,
                }
                emits.append(Emit("observations", "humans", value))
        return emits

    def _defects(self, turn_id: str, entry: Entry, failures: list[Any]) -> list[Emit]:
        emits = []
        turn = entry["turn"]
        segment = turn["segment"] if turn else UNKNOWN_SEGMENT
        ts = turn["ts"] if turn else None
        for source, source_id, dim, record in failures:
            policy = self.taxonomy.policy(dim)
            defect_id = SEP.join((policy.category, turn_id, dim, source, source_id)).replace(SEP, "/")
            if defect_id in entry["defects"]:
                continue
            entry["defects"].append(defect_id)
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
                "turn": dict(turn["ctx"]) if turn else None,
                "verdicts": {judge_id: dict(r["labels"]) for judge_id, r in entry["judge"].items()},
                "labels": {
                    annotator: {"vendor_id": r["vendor"], "is_gold": r["gold"], "labels": dict(r["labels"])}
                    for annotator, r in entry["human"].items()
                },
            }
            m = self.metrics
            m.defects.labels(
                m.label("dimension", dim),
                policy.category,
                source,
                *(
                    m.label(name, segment.get(name))
                    for name in ("journey", "model_version", "channel", "modality")
                ),
            ).inc()
            emits.append(Emit("defects", defect_id, value))
            if self.category_topics:
                emits.append(Emit(f"defects.{policy.category}", defect_id, value))
        return emits

    def _pairs(self, turn_id: str, entry: Entry, final: bool = False) -> list[Emit]:
        """Judge/human pairs not yet emitted; they wait for the turn (for its segment) unless ``final``."""
        if entry["turn"] is None and not final:
            return []
        emits: list[Emit] = []
        human_labels: dict[str, str] = {}
        weights: dict[str, float | None] = {}  # that label's inclusion probability, if it was sampled
        for record in entry["human"].values():  # first human label per dimension, in arrival order
            for dim, label in record["labels"].items():
                if dim not in human_labels:
                    human_labels[dim], weights[dim] = label, record.get("pi")
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
                    emits.append(self._divergence(turn_id, entry, pair))
        return emits

    def _divergence(self, turn_id: str, entry: Entry, pair: dict[str, Any]) -> Emit:
        """A high-risk disagreement between judge and human, for labelling-guide review."""
        divergence_id = f"{turn_id}/{pair['judge_id']}/{pair['dimension']}"
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

    # -- bounded state -------------------------------------------------------------------------------

    def evict(self) -> list[Emit]:
        """Drop entries older than the TTL (event time), then the oldest beyond the size cap.

        An evicted turn that never arrived still publishes its defects, with an unknown segment: nothing
        is lost silently. Each deletion goes to the changelog partition the entry was written to.
        """
        self._since_evict = 0
        if len(self.expiry) != len(self.state):  # entries recovered from a changelog, not indexed yet
            self.expiry.rebuild((key, entry["last"]) for key, entry in self.state.items())
        horizon = self.watermark - self.ttl_seconds
        doomed: dict[str, tuple[Entry, str]] = {}
        for key in self.expiry.older_than(horizon):
            entry = self.state.get(key)
            if entry is not None and entry["last"] < horizon:
                doomed[key] = (entry, "ttl")
        excess = len(self.state) - len(doomed) - self.max_entries
        if excess > 0:
            wanted = excess + self.max_entries // 10  # a margin below the cap, so this is not every event
            for key in self.expiry.oldest_first():
                if key in doomed:
                    continue
                entry = self.state.get(key)
                if entry is not None:
                    doomed[key] = (entry, "capacity")
                    wanted -= 1
                    if wanted <= 0:
                        break
        emits: list[Emit] = []
        for key, (entry, reason) in doomed.items():
            self.expiry.remove(key, entry["last"])
            if entry["turn"] is None:  # publish what it holds, with an unknown segment
                emits.extend(self._defects(key, entry, self._failures(entry)))
                emits.extend(number_observations(self._pairs(key, entry, final=True), ("", None)))
            self.state.delete(key, entry.get("p"))
            self.metrics.join_evictions.labels(reason).inc()
        if self.autoflush:
            self.state.flush()
        self.metrics.join_pending.set(len(self.state))
        return emits


def number_observations(emits: list[Emit], source: tuple[str, int | None]) -> list[Emit]:
    """Tag each observation with ``src`` = [source, offset, n-th observation of this input record]."""
    seq = 0
    for emit in emits:
        if emit.topic == "observations":
            emit.value["src"] = [source[0], source[1], seq]
            seq += 1
    return emits


#: Longest chat text a defect keeps (characters): a turn may be as large as the input limit (1 MB), and a
#: defect carrying it whole would exceed the producer's request limit, failing its batch on every retry.
MAX_KEPT_TEXT = 16_384


def kept(text: str) -> str:
    """``text`` cut to :data:`MAX_KEPT_TEXT` characters, saying so (the turn's position finds the rest)."""
    if len(text) <= MAX_KEPT_TEXT:
        return text
    return f"{text[:MAX_KEPT_TEXT]}[... {len(text) - MAX_KEPT_TEXT} more characters cut]"
