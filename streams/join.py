"""Joins chat turns, judge verdicts and human labels by ``turn_id``, in any arrival order.

Pure and transport-agnostic: state lives in an injected :class:`~streams.state.StateStore` (a dict when
embedded, a Faust table on Kafka) holding JSON-native entries, written behind: once per touched turn at
:meth:`TurnJoiner.flush`. What an entry holds, and how each record adds to it: :mod:`streams.join_entry`;
what a joined turn publishes is built by :class:`~streams.join_outputs.TurnOutputs`.

Observations for the aggregation stage carry ``src`` = [input topic/partition, offset, sequence]: a replay
after a crash re-emits them with the same ``src``, which lets the aggregates apply each exactly once.

With ``keep_outputs`` (the Kafka transport), an entry also keeps, under ``out``, what each input record
made it publish in the current batch, until the broker has it, and an evicted entry's final state is written
before its tombstone (set aside under a key of its own if a later record of the batch makes the entry anew,
which records the evicted entry took do not join on a replay): a replay after a crash publishes the kept
outputs again, with the same ``src``, rather than recomputing them (:mod:`streams.kept_outputs`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson

from schemas import ChatTurn, HumanLabel, InvalidRecord, JudgeVerdict
from streams.emit import Emit, Entry, entry_head
from streams.expiry import ExpiryIndex
from streams.golden import GoldenSet
from streams.join_caps import RefusedRecord, check_caps, fits_a_record
from streams.join_entry import add_human, add_judge, add_turn, new_entry
from streams.join_gold import refused_gold_observations
from streams.join_observations import MIN_RATERS, number_observations
from streams.join_outputs import MAX_KEPT_TEXT, TurnOutputs, kept
from streams.kept_outputs import KeptOutputs
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
        keep_outputs: bool = False,
        text_hash_key: bytes | None = None,
        golden: GoldenSet | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.metrics = metrics
        #: JSON bytes by default, as on Kafka (streams.tables.TableStore): nothing for the garbage collector
        self.store: StateStore = store if store is not None else DictStore(json_values=True)
        self.state = WriteBehind(self.store)
        self.autoflush = autoflush
        self.outputs = TurnOutputs(taxonomy, metrics, text_redaction, category_topics, text_hash_key, golden)
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.evict_every = evict_every
        self.watermark = 0.0  # newest event time seen (Unix seconds)
        self._since_evict = 0
        self.expiry = ExpiryIndex(width=ttl_seconds / 64)
        self._reindex = False
        self._evictions: dict[str, Any] = {}  # label children by reason
        self.keep_outputs = keep_outputs
        self.kept_outputs = KeptOutputs(self.outputs)
        #: what recovered entries kept of their eviction: published with the next record, before any eviction
        self._evicted_again: list[Emit] = []
        #: turns sent for human review or escalated as high-risk failures (entries marked ``keep``): the size
        #: cap passes over the newest of them, up to half of it, so their labels, hours or days later, still
        #: meet them, and update their escalation (the TTL applies)
        self.kept_for_review: set[str] = set()

    # -- input ---------------------------------------------------------------------------------------

    def handle(
        self,
        event: ChatTurn | JudgeVerdict | HumanLabel,
        partition: int | None = None,
        source: tuple[str, int | None] = ("", None),
    ) -> list[Emit]:
        """Join one event; ``source`` (input topic/partition, offset) tags the observations it causes."""
        if self._evicted_again:
            again, self._evicted_again = self._evicted_again, []
            try:
                return again + self.handle(event, partition, source)
            except Exception:  # a refused record (a dead letter): they go out with the next one
                self._evicted_again = again
                raise
        ts = event.ts.timestamp()
        if self.keep_outputs and self.kept_outputs.published_before(source):
            # read again after a restart: its state and outputs reached the broker. Its time still moves the
            # watermark, as it did the first time: an entry evicted since must be evicted again as then
            if ts > self.watermark:
                self.watermark = ts
            return []
        turn_id = event.turn_id
        state = self.state
        entry = state.get(turn_id)
        if entry is not None and "anew" in entry:  # made anew after an eviction: a record of the evicted one?
            taken = self.kept_outputs.taken_before(turn_id, entry, source)
            if taken is not None:
                self.watermark = max(self.watermark, ts)
                return taken
        if entry is not None and not isinstance(event, ChatTurn):
            try:
                check_caps(entry, event)
            except InvalidRecord as refused:  # dead-lettered; its labels of a golden turn are still scored
                gold = refused_gold_observations(turn_id, entry, event, self.outputs.golden.get(turn_id))
                raise RefusedRecord(refused, number_observations(gold, source)) from None
        if ts > self.watermark:
            self.watermark = ts
        new = entry is None
        if entry is None:
            entry = new_entry(partition, ts)
        if isinstance(event, JudgeVerdict):
            changed = add_judge(entry, event, self.metrics)
        elif isinstance(event, ChatTurn):
            changed = add_turn(
                entry, event, self.metrics, self.taxonomy.high_risk_topics, self.outputs.context
            )
        else:
            changed = add_human(entry, event, self.metrics)
        if changed:
            emits = self.outputs.outputs(turn_id, entry, source)
            if entry["esc"] is not None and entry["turn"] is not None and not entry.get("keep"):
                self._keep_escalated(turn_id, entry)
            if self.keep_outputs and emits:
                self.kept_outputs.keep(turn_id, entry, source, emits)
        elif self.keep_outputs and "out" in entry:
            emits = self.kept_outputs.kept(turn_id, entry, source)
        else:
            emits = []
        # evicted earlier in the batch? its final state must not be overwritten, nor its records join this
        # (once the event went through: one failing midway leaves the final state under the turn's own key)
        if new and self.keep_outputs and (before := self.kept_outputs.set_aside(state, turn_id, partition)):
            entry["anew"] = before
        if self.keep_outputs:
            self.kept_outputs.read(source)
        # last: once the event went through (one failing midway leaves the index and the kept entry alike)
        old_last = None if new else entry["last"]
        if ts > entry["last"]:
            entry["last"] = ts
        self.expiry.move(turn_id, old_last, entry["last"])
        state.touch(turn_id, entry, entry["p"], new=new)  # one changelog partition, where its deletion goes
        if self.autoflush:
            state.flush()
        pending = len(state)
        self.metrics.join_pending.set(pending)
        self._since_evict += 1
        if self._since_evict >= self.evict_every or pending > self.max_entries:
            emits.extend(self.evict())
        return emits

    def flush(self) -> int:
        """Write every turn touched since the last flush to the store; returns how many. Recovered final
        states set aside wait until a batch has published what they kept (:meth:`KeptOutputs.flush
        <streams.kept_outputs.KeptOutputs.flush>`)."""
        return self.kept_outputs.flush(self.state, due_again=bool(self._evicted_again))

    def keep_for_review(self, turn_id: str) -> bool:
        """``turn_id`` was sent for human review: keep it past the size cap, until the TTL, so that its
        labels meet it. Whether the join holds the turn; one it evicted already (or holds only later
        verdicts and labels of, in an entry of their own) is counted in
        ``convowatch_join_review_keeps_total{result="gone"}``."""
        m = self.metrics
        entry = self.state.get(turn_id)
        if entry is None or entry["turn"] is None:
            m.join_review_keeps.labels("gone").inc()
            return False
        marked = entry.get("keep")
        self._mark_kept(turn_id, entry)
        if not marked:
            self.state.touch(turn_id, entry, entry["p"])
            if self.autoflush:
                self.state.flush()
        m.join_review_keeps.labels("kept").inc()
        return True

    def _mark_kept(self, turn_id: str, entry: Entry) -> None:
        """Mark ``entry`` ``keep``: the size cap passes over it (:meth:`_spared`); the caller writes it."""
        entry["keep"] = 1
        self.kept_for_review.add(turn_id)
        self.metrics.join_kept_for_review.set(len(self.kept_for_review))

    def _keep_escalated(self, turn_id: str, entry: Entry) -> None:
        """A high-risk failure: kept past the size cap as a turn sent for review is, so that a later verdict
        or label updates its escalation (the next revision, every trigger so far). Evicted, the turn's
        escalation state went with it, and the later record started the escalation again at revision 1 in
        an entry of its own: an older revision than the one published, with only the new trigger and an
        unknown segment, which Alertmanager's sink refuses and which ends the topic's key on stale content.
        (Judged high-risk turns are requested for review too; a human's fail is not, nor is a turn whose
        request comes back after the cap evicted it.) Not an entry without its turn: it publishes its defects
        when evicted, with an unknown segment, and kept it would hold them until the TTL; it is kept once its
        turn comes. The event being handled writes the entry."""
        self._mark_kept(turn_id, entry)

    def open_escalations(self, within_seconds: float) -> Iterator[tuple[str, int | None, dict[str, Any]]]:
        """(turn id, partition, latest revision) of every high-risk escalation firing in an entry the store
        holds whose last event is within ``within_seconds`` of the newest one's: after a restart or a
        rebalance, for the Alertmanager sink to send again (it expires them after as long without an update;
        one human review resolved is not sent again, as the views send no resolved escalation again). A
        scan: only entries with an escalation are decoded (``"esc":null`` otherwise)."""
        escalated: list[tuple[str, Entry]] = []
        newest = -math.inf
        for key, value in self.state.items(raw=True):
            if isinstance(value, bytes):
                newest = max(newest, float(entry_head(value)[1]))
                if b'"esc":null' in value:
                    continue
                value = orjson.loads(value)
            else:
                newest = max(newest, float(value["last"]))
            if value.get("esc"):
                escalated.append((key, value))
        for turn_id, entry in escalated:
            if entry["last"] >= newest - within_seconds:
                escalation = self.outputs.policy.escalation(turn_id, entry)
                if escalation["status"] == "firing":
                    yield turn_id, entry.get("p"), escalation

    # -- outputs kept until published (keep_outputs: streams.kept_outputs) ----------------------------

    @property
    def must_publish(self) -> bool:
        """Whether an entry keeps so much of the current batch's outputs that the transport must publish them
        before it joins more of the batch (:data:`~streams.kept_outputs.KEPT_BYTES_TO_PUBLISH`)."""
        return self.kept_outputs.heavy

    def published(self) -> None:
        """The current batch's outputs are acknowledged: entries it touched drop the outputs they keep
        (:meth:`KeptOutputs.published <streams.kept_outputs.KeptOutputs.published>`)."""
        self.kept_outputs.published(self.state)

    def published_marks(self) -> dict[str, int]:
        """Per source, the offset through which outputs are acknowledged, if it advanced since the last call:
        for the transport to write after the batch's outputs (:meth:`KeptOutputs.published_marks
        <streams.kept_outputs.KeptOutputs.published_marks>`)."""
        return self.kept_outputs.published_marks()

    def eviction_marks(self) -> dict[str, int]:
        """Per partition's eviction source, the last position given to an eviction's outputs, if it advanced
        since the last call: for the transport to write with the batch's state
        (:meth:`KeptOutputs.eviction_marks <streams.kept_outputs.KeptOutputs.eviction_marks>`)."""
        return self.kept_outputs.eviction_marks()

    def rebalanced(self, published_through: dict[str, int] | None = None) -> None:
        """Partitions were reassigned and the state recovered: reading starts again at committed offsets.
        ``published_through``: the recovered marks of :meth:`published_marks` and :meth:`eviction_marks` (of
        the partitions owned now). The expiry index and the turns kept for review are rebuilt from the store
        now and ``convowatch_join_kept_for_review_turns`` exported: until 2026-11-26 those of partitions
        gained were found only at the next eviction pass (every ``evict_every`` events), and a quiet worker
        that took a partition over showed none of them. One pass over the entries, decoding only those
        marked: 1.6 to 1.9 s for a million pending turns of JSON bytes (2026-11-26, 2 cores), which the first
        eviction pass paid before and no longer does."""
        self._evicted_again = self.kept_outputs.rebalanced(self.state, dict(published_through or {}))
        self._rebuild_index()
        self.metrics.join_kept_for_review.set(len(self.kept_for_review))

    # -- bounded state -------------------------------------------------------------------------------

    def evict(self) -> list[Emit]:
        """Drop entries older than the TTL (event time), then the oldest beyond the size cap.

        An evicted turn that never arrived still publishes its defects, with an unknown segment: nothing
        is lost silently. Each deletion goes to the changelog partition the entry was written to; with
        ``keep_outputs``, an entry the batch touched, or that keeps outputs, is written as it ends first.
        """
        self._since_evict = 0
        if self._reindex or len(self.expiry) != len(self.state):  # entries recovered, not indexed yet
            self._rebuild_index()
        horizon = self.watermark - self.ttl_seconds
        # keys only: each entry is decoded when its turn comes, and gone before the next one is
        doomed: dict[str, str] = dict.fromkeys(self.expiry.expired(horizon), "ttl")
        excess = len(self.state) - len(doomed) - self.max_entries
        if excess > 0:
            wanted = excess + self.max_entries // 10  # a margin below the cap, so this is not every event
            # the spared are at most half of the cap, the margin a tenth: the others always make up ``wanted``
            spared = self._spared(doomed)
            for key in self.expiry.oldest_first():
                if key not in doomed and key not in spared:
                    doomed[key] = "capacity"
                    wanted -= 1
                    if wanted <= 0:
                        break
        emits: list[Emit] = []
        for key, reason in doomed.items():
            entry = self.state.get(key)
            if entry is None or (reason == "ttl" and not entry["last"] < horizon):
                self._reindex = True  # the index disagrees with the store (an event that failed midway)
                continue
            if not self.expiry.remove(key, entry["last"]):
                self._reindex = True  # indexed elsewhere: rebuilt at the end of this pass
            evicted: list[Emit] = []
            if entry["turn"] is None:  # publish what it holds, with an unknown segment
                evicted = self.outputs.orphaned(key, entry)
                # labels of turns evicted before them, or never sent: lost to agreement and calibration
                m = self.metrics
                m.join_unmatched.labels("judge_verdicts").inc(len(entry["judge"]))
                m.join_unmatched.labels("human_labels").inc(len(entry["human"]))
            if not self.keep_outputs:
                emits.extend(number_observations(evicted, ("", None)))
                self.state.delete(key, entry.get("p"))
            else:  # a replay after a crash before the tombstone must find the state the entry ended in
                emits.extend(self.kept_outputs.evicted(key, entry, evicted))
                if (key in self.state.dirty or "out" in entry) and fits_a_record(entry):
                    self.state.retire(key, entry, entry.get("p"))
                else:
                    self.state.delete(key, entry.get("p"))
            self.kept_for_review.discard(key)
            counter = self._evictions.get(reason)
            if counter is None:
                counter = self._evictions[reason] = self.metrics.join_evictions.labels(reason)
            counter.inc()
        if self._reindex:
            self._rebuild_index()
        if self.autoflush:
            self.state.flush()
        self.metrics.join_pending.set(len(self.state))
        self.metrics.join_kept_for_review.set(len(self.kept_for_review))
        return emits

    def _spared(self, doomed: dict[str, str]) -> set[str]:
        """The turns kept for review that the cap passes over: all of them (but those ``doomed`` already)
        while they are at most half of it, else the newest half of it: a surge of high-risk turns, always
        sent for review, cannot fill the cap with them, nor unprotect them all."""
        spared = self.kept_for_review - doomed.keys()
        surplus = len(spared) - self.max_entries // 2
        if surplus > 0:
            for key in self.expiry.oldest_first():
                if key in spared:
                    spared.discard(key)
                    surplus -= 1
                    if surplus <= 0:
                        break
        return spared

    def forget_unheld(self) -> None:
        """After a rebalance dropped the entries of partitions this worker no longer owns: forget them among
        the turns kept for review (:meth:`rebalanced` found those of partitions it gained)."""
        self.kept_for_review = {key for key in self.kept_for_review if self.store.get(key) is not None}
        self.metrics.join_kept_for_review.set(len(self.kept_for_review))

    def _rebuild_index(self) -> None:
        """The expiry index and the turns kept for review, from the store (recovered or rebalanced)."""
        review = self.kept_for_review
        review.clear()

        def heads() -> Iterator[tuple[str, float]]:
            for key, value in self.state.items(raw=True):
                # JSON: a quote inside a JSON string is escaped, so this misses no entry marked; it finds
                # those with a rater or dimension named "keep" too, so they are decoded to make sure
                if isinstance(value, bytes) and b'"keep":' in value:
                    if orjson.loads(value).get("keep"):
                        review.add(key)
                elif not isinstance(value, bytes) and value.get("keep"):
                    review.add(key)
                yield key, float(entry_head(value)[1])

        self.expiry.rebuild(heads())
        self._reindex = False
