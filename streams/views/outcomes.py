"""Business outcomes per conversation, per segment: the capability metrics' counterpart.

Two observation kinds, both with shard key ``conversation_id`` (on Kafka one worker holds a conversation):
``contact``, one per chat turn (from the join: segment and the turn's ``outcome``), and ``signal``, one per
:class:`~schemas.ConversationSignal` (forwarded by the join stage, see :func:`signal_observation`).

A conversation is every turn and signal with one ``conversation_id``; its segment (journey, model version,
channel) is that of its first turn seen. Counted under that segment:

- **started** (``convowatch_conversations_total``): at its first turn;
- **escalated**: once, at the first turn whose outcome says ``escalated_to_agent`` (or ``contained: false``)
  or the first ``agent_handoff`` signal;
- **task completed**: once, at the first turn whose outcome says ``task_completed``;
- **feedback** up/down: every turn outcome ``user_feedback`` and every ``thumbs_*`` signal (a signal
  re-sent with the same ``event_id`` counts once);
- **converted** (step ``add_to_cart`` / ``purchase``): once per step; **orders**: each distinct ``order_id``
  of its ``purchase`` signals; **handle time**: each ``handle_time`` signal;
- **closed**: when no turn or signal came for ``idle_seconds`` of event time; **contained** = closed and
  never escalated;
- **settled**: ``recontact_window_seconds`` after the close; **resolved at first contact** = settled with no
  recontact, i.e. no ``recontact`` signal and no new turn after the close. The record is then deleted.

Ratios: containment = contained / closed, escalation = escalated / started, task completion = completed /
started, first-contact resolution = resolved / settled, contacts per order = started / orders.

Signals that come before the conversation's first turn wait for it; a conversation without turns is dropped
at its close (``convowatch_conversation_events_dropped_total{reason="no_turns"}``), as are turns and signals
of a conversation that would have settled already (``reason="late"``), and signals of a conversation past
its first 512 distinct ones (``reason="too_many_signals"``: see :mod:`streams.views.outcome_ids`, which also
says how event and order ids are remembered).

State: one small JSON record per open or closed conversation in the aggregate store (key
``conversation<SEP><id>``), bounded by event time (deleted when settled) and by ``max_conversations``
(the oldest are then dropped undecided: not counted as closed, contained, settled or resolved, but in
``convowatch_conversation_evictions_total``).
Event time is a watermark per observation partition, persisted (``conversation_wm<SEP><partition>``) so a
restarted worker does not count replayed observations of settled conversations as new ones. Each record
keeps the source positions it applied, so a replay is not counted twice.
"""

from __future__ import annotations

from typing import Any

from schemas import ConversationSignal
from streams.aggregate import Aggregator, key
from streams.emit import SEP, Emit
from streams.expiry import ExpiryIndex
from streams.metrics import Metrics
from streams.views.outcome_counts import SEGMENT, OutcomeCounts
from streams.views.outcome_ids import MAX_SIGNALS, digest, holds, upgrade

CONVERSATION, WATERMARK = "conversation", "conversation_wm"


def signal_observation(signal: ConversationSignal, source: tuple[str, int | None]) -> Emit:
    """The ``signal`` observation of one input signal (the join stage forwards it: no join by turn)."""
    value = {
        "kind": "signal",
        "conversation_id": signal.conversation_id,
        "event_id": signal.event_id,
        "signal": signal.kind,
        "ts": signal.ts.timestamp(),
        "order_id": signal.order_id,
        "handle_time_seconds": signal.handle_time_seconds,
        "src": [source[0], source[1], 0],
    }
    return Emit("observations", signal.conversation_id, value)


def _first_time(entry: dict[str, Any], src: list[Any], peek: bool = False) -> bool:
    """Record ``src`` = [source, offset, seq] in ``entry`` (unless ``peek``); False if it was applied
    already (a replay)."""
    source, offset, seq = src
    if offset is None:
        return True
    applied = entry["src"]
    last = applied.get(source)
    if last is not None and [offset, seq] <= last:
        return False
    if not peek:
        applied[source] = [offset, seq]
    return True


class OutcomeView:
    """Conversation-level business outcomes (see the module docstring for what is counted when)."""

    kinds: tuple[str, ...] = ("contact", "signal")

    def __init__(
        self,
        metrics: Metrics,
        idle_seconds: float = 1800.0,
        recontact_window_seconds: float = 259_200.0,
        max_conversations: int = 1_000_000,
    ) -> None:
        if not idle_seconds > 0 or not recontact_window_seconds > 0:
            raise ValueError("idle_seconds and recontact_window_seconds must be positive")
        if max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        self.recontact_window_seconds = recontact_window_seconds
        self.max_conversations = max_conversations
        self.counts = OutcomeCounts(metrics)
        # derived, per observation partition: open conversations by last activity, closed ones by close
        self._open: dict[int | None, ExpiryIndex] = {}
        self._closed: dict[int | None, ExpiryIndex] = {}
        self._watermark: dict[int | None, float] = {}
        self._checked: dict[int | None, float] = {}
        self._size = 0
        self._step = min(idle_seconds, recontact_window_seconds) / 16  # event time between expiry checks

    # -- observations --------------------------------------------------------------------------------

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        if partition not in self._open:
            self._rebuild(aggregator, partition)
        ts = float(obs["ts"])
        wm = self._watermark.get(partition, ts)
        k = f"{CONVERSATION}{SEP}{obs['conversation_id']}"
        entry = aggregator.record(k)
        if entry is not None and ts > entry["last"] and _first_time(entry, obs["src"], peek=True):
            # decide by event time what the expiry pass (which runs every few minutes of event time, and only
            # on this partition's observations) has not decided yet: the conversation closed before this,
            # or even settled (then this starts a new conversation)
            entry = self._decide_before(aggregator, k, entry, ts)
        new = entry is None
        if entry is None:
            if ts < wm - self.idle_seconds - self.recontact_window_seconds:
                self.counts.drop("late")
            else:
                entry = {"p": partition, "seg": None, "last": ts, "end": None, "f": [], "od": "", "ed": ""}
                entry |= {"src": {}, "pend": [], "sig": 0}
                self._open_index(partition).move(k, None, ts)
                self._size += 1
        elif not self._indexed(k, entry):  # written by another worker while it owned the partition
            self._rebuild(aggregator, entry["p"])
            if not self._indexed(k, entry):  # stored under another partition: index it where it is
                self._index(k, entry)
                self._size += 1
        if entry is not None and _first_time(entry, obs["src"]):
            if entry["end"] is None and ts > entry["last"]:
                self._open_index(entry["p"]).move(k, entry["last"], ts)
                entry["last"] = ts
            if obs["kind"] == "contact":
                self._contact(entry, obs)
            else:
                self._signal(entry, obs)
            aggregator.put_record(k, entry, entry["p"], new=new)
        self._advance(aggregator, partition, ts)
        return []

    def _decide_before(
        self, aggregator: Aggregator, k: str, entry: dict[str, Any], ts: float
    ) -> dict[str, Any] | None:
        """Close ``entry`` if ``ts`` comes more than the idle time after its last event, and settle it if
        ``ts`` is past its recontact window; the entry left, or None (settled or dropped)."""
        if entry["end"] is None and ts - entry["last"] > self.idle_seconds:
            self._close(aggregator, k, entry)
            entry = aggregator.record(k)
            if entry is None:  # signals only: dropped at its close
                return None
        if entry["end"] is not None and ts > entry["end"] + self.recontact_window_seconds:
            self._settle(aggregator, k, entry)
            return None
        return entry

    def _contact(self, entry: dict[str, Any], obs: dict[str, Any]) -> None:
        if entry["seg"] is None:
            segment = obs.get("segment") or {}
            entry["seg"] = [segment.get(name) for name in SEGMENT]
            self._count(entry, "started")
            for name, value in entry.pop("pend"):
                self._count(entry, name, value)
        elif entry["end"] is not None and obs["ts"] > entry["end"] and "re" not in entry["f"]:
            # the customer came back after the close (a late turn from before it is no recontact)
            entry["f"].append("re")
        outcome = obs.get("outcome") or {}
        if outcome.get("escalated_to_agent") or outcome.get("contained") is False:
            self._flag(entry, "esc", "escalated")
        if outcome.get("task_completed"):
            self._flag(entry, "done", "task_completed")
        if outcome.get("user_feedback") in ("up", "down"):
            self._count(entry, "feedback", outcome["user_feedback"])

    def _signal(self, entry: dict[str, Any], obs: dict[str, Any]) -> None:
        upgrade(entry)
        event = digest(obs["event_id"])
        if holds(entry["ed"], event):
            self.metrics.duplicates.labels("signals").inc()
            return
        if entry["sig"] >= MAX_SIGNALS:
            self.counts.drop("too_many_signals")
            return
        entry["ed"] += event
        entry["sig"] += 1
        kind = obs["signal"]
        if kind in ("thumbs_up", "thumbs_down"):
            self._count(entry, "feedback", "up" if kind == "thumbs_up" else "down")
        elif kind == "agent_handoff":
            self._flag(entry, "esc", "escalated")
        elif kind == "add_to_cart":
            self._flag(entry, "cart", "converted", "add_to_cart")
        elif kind == "purchase":
            self._flag(entry, "buy", "converted", "purchase")
            order = digest(obs["order_id"])
            if not holds(entry["od"], order):
                entry["od"] += order
                self._count(entry, "order")
        elif kind == "recontact":
            if "re" not in entry["f"]:
                entry["f"].append("re")
        elif kind == "handle_time":
            self._count(entry, "handle_time", obs["handle_time_seconds"])

    def _flag(self, entry: dict[str, Any], flag: str, name: str, value: Any = None) -> None:
        if flag not in entry["f"]:
            entry["f"].append(flag)
            self._count(entry, name, value)

    def _count(self, entry: dict[str, Any], name: str, value: Any = None) -> None:
        """Report one fact under the conversation's segment, or hold it until the first turn gives one (at
        most one a signal counted, and the first purchase's conversion: bounded by MAX_SIGNALS)."""
        if entry["seg"] is None:
            entry["pend"].append([name, value])
        else:
            self.counts.count(entry["seg"], name, value)

    # -- event time: close, settle, evict ------------------------------------------------------------

    def _advance(self, aggregator: Aggregator, partition: int | None, ts: float) -> None:
        wm = max(self._watermark.get(partition, ts), ts)
        if wm != self._watermark.get(partition):
            self._watermark[partition] = wm
            aggregator.put_record(f"{WATERMARK}{SEP}{partition}", {"p": partition, "wm": wm}, partition)
        if wm - self._checked.get(partition, float("-inf")) >= self._step:
            self._checked[partition] = wm
            self.expire(aggregator, partition)
        elif self._size > self.max_conversations:
            self.expire(aggregator, partition)
        self.metrics.conversations_tracked.set(self._size)

    def expire(self, aggregator: Aggregator, partition: int | None) -> None:
        """Close idle conversations, settle those whose recontact window passed, then enforce the cap."""
        wm = self._watermark.get(partition, float("-inf"))
        opened, closed = self._open_index(partition), self._closed_index(partition)
        idle_horizon, stale = wm - self.idle_seconds, False
        for k in list(opened.older_than(idle_horizon)):
            entry = aggregator.record(k)
            if entry is None or entry["end"] is not None:
                stale = True  # deleted or closed by another worker while it owned the partition
            elif entry["last"] < idle_horizon:
                self._close(aggregator, k, entry)
        settle_horizon = wm - self.recontact_window_seconds
        for k in list(closed.older_than(settle_horizon)):
            entry = aggregator.record(k)
            if entry is None or entry["end"] is None:
                stale = True
            elif entry["end"] < settle_horizon:
                self._settle(aggregator, k, entry)
        if stale:
            self._rebuild(aggregator, partition)
            opened, closed = self._open_index(partition), self._closed_index(partition)
        if self._size > self.max_conversations:
            wanted = self._size - self.max_conversations + self.max_conversations // 10
            for index in (closed, opened):
                for k in list(index.oldest_first()):
                    if wanted <= 0:
                        break
                    entry = aggregator.record(k)
                    if entry is None:
                        continue
                    # dropped undecided: counted as contained or resolved, an early decision overstated
                    # both (every evicted conversation "had no recontact")
                    if entry["end"] is None:
                        opened.remove(k, entry["last"])
                    else:
                        closed.remove(k, entry["end"])
                    self._forget(aggregator, k, entry)
                    self.counts.evicted()
                    wanted -= 1

    def _close(self, aggregator: Aggregator, k: str, entry: dict[str, Any]) -> None:
        self._open_index(entry["p"]).remove(k, entry["last"])
        if entry["seg"] is None:  # signals only: not a conversation convowatch saw
            self.counts.drop("no_turns", entry["sig"])
            self._forget(aggregator, k, entry)
            return
        self._count(entry, "closed")
        if "esc" not in entry["f"]:
            self._count(entry, "contained")
        entry["end"] = entry["last"] + self.idle_seconds  # closed then: the recontact window starts there
        self._closed_index(entry["p"]).move(k, None, entry["end"])
        aggregator.put_record(k, entry, entry["p"])

    def _settle(self, aggregator: Aggregator, k: str, entry: dict[str, Any]) -> None:
        self._closed_index(entry["p"]).remove(k, entry["end"])
        self._count(entry, "settled")
        if "re" not in entry["f"]:
            self._count(entry, "resolved")
        self._forget(aggregator, k, entry)

    def _forget(self, aggregator: Aggregator, k: str, entry: dict[str, Any]) -> None:
        aggregator.delete(k, entry["p"])
        self._size -= 1

    # -- the derived indexes ---------------------------------------------------------------------------

    def _open_index(self, partition: int | None) -> ExpiryIndex:
        index = self._open.get(partition)
        if index is None:
            index = self._open[partition] = ExpiryIndex(width=self.idle_seconds / 16)
        return index

    def _closed_index(self, partition: int | None) -> ExpiryIndex:
        index = self._closed.get(partition)
        if index is None:
            index = self._closed[partition] = ExpiryIndex(width=self.recontact_window_seconds / 64)
        return index

    def _index(self, k: str, entry: dict[str, Any]) -> None:
        if entry["end"] is None:
            self._open_index(entry["p"]).move(k, None, entry["last"])
        else:
            self._closed_index(entry["p"]).move(k, None, entry["end"])

    def _indexed(self, k: str, entry: dict[str, Any]) -> bool:
        if entry["end"] is None:
            return self._open_index(entry["p"]).holds(k, entry["last"])
        return self._closed_index(entry["p"]).holds(k, entry["end"])

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Index the conversations the store holds now, of every partition, in one pass, and export
        ``convowatch_conversations_tracked``. Those of partitions now owned elsewhere are gone (they would
        count against the cap, and evict real conversations early); until 2026-11-26 those of partitions kept
        or gained were indexed only at their partition's next observation, and the gauge stayed as it was: a
        quiet worker that took every partition over showed none. One scan of the store, where each owned
        partition's first observation scanned it before: 0.2 s for 100,000 stored conversations (half of them
        owned) with the garbage collector off, 0.4 to 1.6 s with it on (2026-11-26, 2 cores)."""
        self._open.clear()
        self._closed.clear()
        self._watermark.clear()
        self._checked.clear()
        for k, entry in aggregator.records(CONVERSATION):
            self._index(k, entry)
        for partition in {*self._open, *self._closed}:  # indexed: not scanned for at its next observation
            self._open_index(partition), self._closed_index(partition)
            stored = aggregator.record(key(WATERMARK, str(partition)))
            if stored is not None:
                self._watermark[partition] = stored["wm"]
        self._size = sum(len(i) for i in self._open.values()) + sum(len(i) for i in self._closed.values())
        self.metrics.conversations_tracked.set(self._size)

    def _rebuild(self, aggregator: Aggregator, partition: int | None) -> None:
        """Index the stored conversations of ``partition`` (after a start, or a partition moved here)."""
        self._open.pop(partition, None)
        self._closed.pop(partition, None)
        self._open_index(partition), self._closed_index(partition)
        for k, entry in aggregator.records(CONVERSATION):
            if entry["p"] == partition:
                self._index(k, entry)
        stored = aggregator.record(key(WATERMARK, str(partition)))
        if stored is not None:
            self._watermark[partition] = max(self._watermark.get(partition, stored["wm"]), stored["wm"])
        self._size = sum(len(i) for i in self._open.values()) + sum(len(i) for i in self._closed.values())

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """Totals of this process (all segments), for ``report.json``."""
        return {"outcomes": {"tracked": self._size, **dict(sorted(self.counts.totals.items()))}}
