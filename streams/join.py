"""Joins chat turns, judge verdicts and human labels by ``turn_id``, in any arrival order.

Pure and transport-agnostic: state lives in an injected :class:`~streams.state.StateStore` (a dict when
embedded, a Faust table on Kafka) holding JSON-native entries, written behind: once per touched turn at
:meth:`TurnJoiner.flush`. A verdict or label seen twice for the same turn, source and dimension counts once.
What a joined turn publishes is built by :class:`~streams.join_outputs.TurnOutputs`.

Observations for the aggregation stage carry ``src`` = [input topic/partition, offset, sequence]: a replay
after a crash re-emits them with the same ``src``, which lets the aggregates apply each exactly once.
"""

from __future__ import annotations

from typing import Any

from schemas import ChatTurn, HumanLabel, JudgeVerdict
from schemas.judge_verdict import MAX_SCORES
from streams.emit import Emit, Entry
from streams.expiry import ExpiryIndex
from streams.join_outputs import MAX_KEPT_TEXT, MIN_RATERS, TurnOutputs, kept, number_observations
from streams.metrics import Metrics
from streams.state import DictStore, StateStore, WriteBehind
from streams.taxonomy import Taxonomy

# what a turn publishes is built in streams.join_outputs; its names stay importable from here
__all__ = ["MAX_KEPT_TEXT", "MIN_RATERS", "Emit", "TurnJoiner", "TurnOutputs", "kept", "number_observations"]


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
        self.outputs = TurnOutputs(taxonomy, metrics, text_redaction, category_topics)
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.evict_every = evict_every
        self.watermark = 0.0  # newest event time seen (Unix seconds)
        self._since_evict = 0
        self.expiry = ExpiryIndex(width=ttl_seconds / 64)
        self._evictions: dict[str, Any] = {}  # label children by reason

    # -- input ---------------------------------------------------------------------------------------

    def handle(
        self,
        event: ChatTurn | JudgeVerdict | HumanLabel,
        partition: int | None = None,
        source: tuple[str, int | None] = ("", None),
    ) -> list[Emit]:
        """Join one event; ``source`` (input topic/partition, offset) tags the observations it causes."""
        ts = event.ts.timestamp()
        if ts > self.watermark:
            self.watermark = ts
        turn_id = event.turn_id
        state = self.state
        entry = state.get(turn_id)
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
        if ts > entry["last"]:
            entry["last"] = ts
        self.expiry.move(turn_id, old_last, entry["last"])
        if isinstance(event, JudgeVerdict):
            changed = self._add_judge(entry, event)
        elif isinstance(event, ChatTurn):
            changed = self._add_turn(entry, event)
        else:
            changed = self._add_human(entry, event)
        emits = self.outputs.outputs(turn_id, entry, source) if changed else []
        state.touch(turn_id, entry, partition, new=new)
        if self.autoflush:
            state.flush()
        pending = len(state)
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
            "ctx": self.outputs.context(turn),
        }
        return True

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
                outputs = self.outputs
                emits.extend(outputs.defects(key, entry, outputs.failures(entry)))
                emits.extend(number_observations(outputs.pairs(key, entry, final=True), ("", None)))
            self.state.delete(key, entry.get("p"))
            counter = self._evictions.get(reason)
            if counter is None:
                counter = self._evictions[reason] = self.metrics.join_evictions.labels(reason)
            counter.inc()
        if self.autoflush:
            self.state.flush()
        self.metrics.join_pending.set(len(self.state))
        return emits
