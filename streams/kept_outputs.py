"""What join entries keep of their outputs until the broker has them (``keep_outputs``, the Kafka transport),
and the source positions that let a replay publish them again unchanged (README, "Delivery guarantee").

An entry keeps, under ``out``, what each input record made it publish in the current batch: [source,
offset, [[topic, key, value], ...]]. The transport writes the batch's state before its outputs, so a crash in
between leaves entries whose outputs were never published; the replay re-reads their records, which change
nothing, and :meth:`KeptOutputs.kept` gives the kept outputs to publish again, with the same ``src``.
Outputs are never recomputed on a replay, so an observation that needs two records of a turn keeps the
source position it was first given, whatever order the replay reads the three topics in.
:meth:`KeptOutputs.published` drops the kept outputs once the broker has them, and advances each source's
"published through" offset: written to the changelog too, it lets a replay skip the kept outputs of records
it knows were published (:meth:`KeptOutputs.published_marks`).

An entry evicted keeps its outputs too, and the join writes its final state before its tombstone, which the
transport sends once the batch's outputs are acknowledged: a crash in between recovers the entry as the
batch left it. What an eviction publishes (the defects and pairs of an entry without its turn) comes from
no input record: it is given a position of its own, the next of its partition's evictions
(``(evictions):<partition>``), which the transport writes with the batch's state
(:meth:`KeptOutputs.eviction_marks`), so that a restarted worker numbers on from there. After a restart,
what recovered entries kept of their eviction is published again first, in the order of its positions,
before any new eviction's (which an aggregate would otherwise have applied first, and then taken these for
a replay): the aggregates recognise those they had. Evicted again, such an entry publishes nothing new.

A record of the turn may come later in the batch that evicted it (more than the TTL late, or after the size
cap evicted it) and make its entry anew: the new entry's write takes the key's place in the changelog, and
would take the evicted entry's final state with it. That state is written instead under a key of its own
(:func:`set_aside_key`, which no turn id can be) in the same changelog partition, and deleted with the
batch's tombstones. Such a key is in the changelog only between a batch's state and its tombstones, and a
worker that recovers one (a crash in between) deletes it from the state at once
(:meth:`KeptOutputs.rebalanced`): it is never an entry, so nothing else (the count of pending turns, the
expiry index, the size cap, a turn's records) sees it. What it kept of its eviction is published again with
the other recovered entries', and its tombstone waits for the first batch that publishes it
(:meth:`KeptOutputs.flush`). The new entry keeps, as ``anew``, the offsets read of its partition's sources
when it was made: a record at or before them (read again after a crash or a rebalance) went to the evicted
entry, and must not join the new one, where it would pair again; it publishes again what the final state
set aside kept of it, if recovered (:meth:`KeptOutputs.taken_before`).
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.emit import Emit, Entry
from streams.join_observations import number_observations
from streams.join_outputs import TurnOutputs
from streams.state import WriteBehind

#: The source of an eviction's outputs, before ``:<partition>``: no input topic has this name (Kafka's topic
#: names take letters, digits, ".", "_" and "-").
EVICTIONS = "(evictions)"
#: Most bytes of a batch's outputs one entry keeps before the transport publishes them (and the entry drops
#: them) mid-batch: many records of one turn in a batch (a honeypot's labels, a backlog) kept each one's
#: outputs in its entry until the batch's end, past what a changelog record holds (1.1 MB for 40 annotators
#: failing 8 dimensions), and the table kept that entry in memory only.
KEPT_BYTES_TO_PUBLISH = 200_000
#: The start of the key an evicted entry's final state is set aside under (:func:`set_aside_key`): a turn id
#: cannot begin with whitespace (``schemas.common.Identifier``).
SET_ASIDE = "\t(evicted)"


def set_aside_key(turn_id: str, n: int) -> str:
    """The key of the ``n``-th final state of ``turn_id`` set aside in one batch (evicted, made anew, evicted
    again...)."""
    return f"{SET_ASIDE}{n}\t{turn_id}"


class KeptOutputs:
    """The outputs join entries keep, and the positions of the records and evictions that made them."""

    def __init__(self, outputs: TurnOutputs) -> None:
        self.outputs = outputs
        #: per source (input topic/partition): the newest offset read since the last rebalance
        self._read_through: dict[str, int] = {}
        #: per source: the offset through which every record's outputs are acknowledged (kept outputs of
        #: records up to it are never published again), and those not yet written to the transport's table
        self._published_through: dict[str, int] = {}
        self._marks_due: dict[str, int] = {}
        #: per eviction source (one per partition): the last position given to an eviction's outputs, and
        #: those not yet written to the transport's table
        self._evicted_through: dict[str, int] = {}
        self._eviction_marks_due: dict[str, int] = {}
        #: turns whose entries keep outputs published, or published again, in the current batch
        self._carrying: set[str] = set()
        #: per turn with several records in the current batch: about how many bytes its kept outputs take
        self._kept_bytes: dict[str, int] = {}
        #: an entry keeps more than :data:`KEPT_BYTES_TO_PUBLISH` of this batch's outputs: the transport
        #: publishes what the batch made so far before going on (:attr:`TurnJoiner.must_publish`)
        self.heavy = False
        #: recovered final states set aside (:func:`set_aside_key`), by key with their partition: deleted from
        #: the state, their tombstones held back until a batch has published what they kept of their eviction
        #: (:meth:`flush`); and by turn, what they kept of records, for those records read again
        #: (:meth:`taken_before`), until the next rebalance
        self._set_aside_due: dict[str, int | None] = {}
        self._set_aside_kept: dict[str, list[Entry]] = {}

    def published_before(self, source: tuple[str, int | None]) -> bool:
        """Whether the record at ``source`` is at or before its source's recovered "published through"
        offset: its state and its outputs reached the broker before the restart that reads it again. The
        join skips it: it would change nothing, unless its entry was evicted since, and then it would come
        back without the marks of what it published, and publish it again at other positions."""
        return source[1] is not None and source[1] <= self._published_through.get(source[0], -1)

    def read(self, source: tuple[str, int | None]) -> None:
        """The record at ``source`` went through."""
        if source[1] is not None and source[1] > self._read_through.get(source[0], -1):
            self._read_through[source[0]] = source[1]

    def keep(self, turn_id: str, entry: Entry, source: tuple[str, int | None], emits: list[Emit]) -> None:
        """Keep what the record (or eviction) at ``source`` made this entry publish, compactly: a defect's
        turn context is the entry's own (restored from it when published again; it may hold chat text), and
        a category topic's copy of a defect refers to the defect before it (``None``)."""
        if source[1] is None:  # nothing can replay a record without a position
            return
        outputs: list[list[Any]] = []
        previous: dict[str, Any] | None = None
        for emit in emits:
            value: Any = emit.value
            if value is previous:
                value = None
            else:
                previous = value
                if emit.topic == "defects" and value.get("turn") is not None:
                    value = value | {"turn": True}
            outputs.append([emit.topic, emit.key, value])
        out = entry.setdefault("out", [])
        out.append([source[0], source[1], outputs])
        self._carrying.add(turn_id)
        if len(out) > 1:  # several records of the turn kept: each one's outputs stay until they are published
            size = self._kept_bytes.get(turn_id)
            size = (len(orjson.dumps(out[:-1])) if size is None else size) + len(orjson.dumps(outputs))
            self._kept_bytes[turn_id] = size
            if size > KEPT_BYTES_TO_PUBLISH:
                self.heavy = True

    def kept(self, turn_id: str, entry: Entry, source: tuple[str, int | None]) -> list[Emit]:
        """What the record at ``source`` made this entry publish before: a replay publishes it again.

        Except an escalation revision older than the entry's current one: the newer one was published, or
        is kept for the record that made it and published when that record is read again. Published again
        after it, the older one would end the escalation's topic on stale content."""
        emits: list[Emit] = []
        for kept_source, offset, outputs in entry["out"]:
            if offset == source[1] and kept_source == source[0]:
                emits.extend(self._restored(entry, outputs))
        if emits:
            self._carrying.add(turn_id)
        return emits

    def _restored(self, entry: Entry, outputs: list[list[Any]]) -> list[Emit]:
        """The kept ``outputs`` as published (see :meth:`keep`), escalations older than the entry's aside."""
        current = entry["esc"]["rev"] if entry["esc"] else 0
        emits: list[Emit] = []
        previous: dict[str, Any] = {}
        for topic, key, value in outputs:
            if value is None:
                value = previous
            elif value.get("turn") is True:
                value = value | {"turn": self.outputs.turn_context(entry["turn"])}
            previous = value
            if topic != "escalations" or value["revision"] >= current:
                emits.append(Emit(topic, key, value))
        return emits

    def evicted(self, turn_id: str, entry: Entry, emits: list[Emit]) -> list[Emit]:
        """The entry is evicted, publishing ``emits`` (an entry without its turn: its defects and pairs):
        them, numbered at its partition's next eviction position, and kept."""
        partition = entry.get("p")
        if not emits or partition is None:
            return number_observations(emits, ("", None))
        source = f"{EVICTIONS}:{partition}"
        position = self._evicted_through.get(source, 0) + 1
        self._evicted_through[source] = self._eviction_marks_due[source] = position
        number_observations(emits, (source, position))
        self.keep(turn_id, entry, (source, position), emits)
        return emits

    def set_aside(self, state: WriteBehind, turn_id: str, partition: int | None) -> dict[str, int] | None:
        """``turn_id``'s entry is made anew (by a record of ``partition``). If the batch evicted it: the
        offsets read so far of the partition's sources, for the new entry to keep as ``anew``
        (:meth:`taken_before`); and if the evicted entry keeps outputs, its final state (written before its
        tombstone) goes under a key of its own, which the new entry's write does not replace, and is deleted
        likewise."""
        if turn_id not in state.deleted and turn_id not in state.retired:
            return None  # not evicted in this batch
        retired = state.retired.get(turn_id)
        if retired is not None and "out" in retired[0]:
            n = 0  # evicted and made anew more than once in the batch; or a recovered one's deletion pending
            while (key := set_aside_key(turn_id, n)) in state.retired or key in state.deleted:
                n += 1
            state.set_aside(turn_id, key)
        suffix = f":{partition}"
        return {source: offset for source, offset in self._read_through.items() if source.endswith(suffix)}

    def taken_before(self, turn_id: str, entry: Entry, source: tuple[str, int | None]) -> list[Emit] | None:
        """``None`` if the record at ``source`` is for ``entry``; else the record is one an earlier entry of
        the turn took before the batch that evicted it made ``entry`` anew (at or before its ``anew``
        offsets: read again after a crash or a rebalance), which the record must not join, and what that
        entry kept of it (a final state set aside and recovered) to publish again."""
        before = entry.get("anew")
        if before is None or source[1] is None or source[1] > before.get(source[0], -1):
            return None
        self.read(source)
        return [
            emit
            for aside in self._set_aside_kept.get(turn_id, ())
            for emit in self.kept(turn_id, aside, source)
        ]

    def flush(self, state: WriteBehind, *, due_again: bool) -> int:
        """Write the batch's state (:meth:`WriteBehind.flush`). The recovered final states set aside, deleted
        at :meth:`rebalanced`, are deleted with it once a batch has published what they kept of their eviction
        (``due_again`` false: the join handled a record since); until then their deletions wait: a tombstone
        written with a batch whose records were all refused would leave nothing to publish it after a
        crash."""
        due = self._set_aside_due
        if not due_again:
            due.clear()
            return state.flush()
        for key in due:
            state.undelete(key)
        written = state.flush()
        for key, partition in due.items():
            state.delete(key, partition)
        return written

    def published(self, state: WriteBehind) -> None:
        """The current batch's outputs are acknowledged: entries it touched drop the outputs they keep of
        records read since the last rebalance (published now, or before it if their offsets are below
        those read: a committed record is never read again)."""
        read_through = self._read_through
        for turn_id in self._carrying:
            entry = state.get(turn_id)  # as this batch sees it: live if touched since the flush
            if entry is None or "out" not in entry:
                continue
            left = [item for item in entry["out"] if item[1] > read_through.get(item[0], -1)]
            if left:
                entry["out"] = left
            else:
                del entry["out"]
            state.replace(turn_id, entry)
        self._carrying.clear()
        self._kept_bytes.clear()
        self.heavy = False
        published = self._published_through
        for source, offset in read_through.items():
            if offset > published.get(source, -1):
                published[source] = self._marks_due[source] = offset

    def published_marks(self) -> dict[str, int]:
        """The sources whose "published through" offset advanced since the last call, with that offset. The
        transport writes them to a changelogged table (with the next batch's state) and gives them back to
        :meth:`rebalanced` after a restart: a replay then publishes again only the kept outputs of records
        after them, at most the last batch's, instead of everything read since the last commit."""
        marks, self._marks_due = self._marks_due, {}
        return marks

    def eviction_marks(self) -> dict[str, int]:
        """The eviction sources whose last position advanced since the last call, with that position. The
        transport writes them to the same table as the published marks, before the batch's outputs, and gives
        them back to :meth:`rebalanced`: a restarted worker gives its evictions' outputs positions after
        every one already published, which the aggregates would take for a replay otherwise."""
        marks, self._eviction_marks_due = self._eviction_marks_due, {}
        return marks

    def rebalanced(self, state: WriteBehind, marks: dict[str, int]) -> list[Emit]:
        """Partitions were reassigned and the state recovered: reading starts again at committed offsets.
        ``marks``: the recovered marks of :meth:`published_marks` and :meth:`eviction_marks` (of the
        partitions owned now). What recovered entries kept of their eviction, to publish before anything
        else (an entry recovered after a crash before its tombstone: published then, or not yet if the
        crash came before the broker had it). Final states set aside (:func:`set_aside_key`) are deleted from
        ``state`` now, their tombstones held back until that is published (:meth:`flush`)."""
        for key in self._set_aside_due:  # their tombstones not written yet: found again in the store below
            state.undelete(key)
        self._set_aside_due.clear()
        self._set_aside_kept.clear()
        self._read_through.clear()
        self._marks_due.clear()
        self._eviction_marks_due.clear()
        evicted = self._evicted_through = {s: n for s, n in marks.items() if s.startswith(EVICTIONS)}
        published = self._published_through = {s: n for s, n in marks.items() if s not in evicted}
        # recovered entries keep the outputs of records published before the crash until written again: drop
        # them now (in memory, as published() does), rather than when their record is read again. Outputs
        # an eviction kept stay, for the entry's next eviction; their positions are given to no other (a
        # crash while the batch's state was written may have left them without their eviction mark).
        again: list[tuple[str, int, list[Emit]]] = []
        for key, entry in state.items(raw=True):
            if key.startswith(SET_ASIDE):
                self._recovered_aside(key, entry, published, again)
                continue
            if isinstance(entry, bytes):  # JSON: decode only entries that can keep outputs (a quote inside a
                if b'"out":' not in entry:  # JSON string is escaped, so this misses no "out" key)
                    continue
                entry = orjson.loads(entry)
            out = entry.get("out")
            if not out:
                continue
            left = []
            for item in out:
                if item[0].startswith(EVICTIONS):
                    evicted[item[0]] = max(evicted.get(item[0], 0), item[1])
                    again.append((item[0], item[1], self._restored(entry, item[2])))
                    left.append(item)
                elif item[1] > published.get(item[0], -1):
                    left.append(item)
            if len(left) < len(out):
                if left:
                    entry["out"] = left
                else:
                    del entry["out"]
                state.replace(key, entry)
        # a kept position past the recovered mark (the entry's state reached the broker, its mark did not):
        # written with the next batch, or a later restart would give that position again
        for source, position in evicted.items():
            if position > marks.get(source, 0):
                self._eviction_marks_due[source] = position
        for key, partition in self._set_aside_due.items():
            state.delete(key, partition)
        again.sort(key=lambda item: (item[0], item[1]))
        return [emit for _, _, emits in again for emit in emits]

    def _recovered_aside(
        self,
        key: str,
        raw: Entry | bytes,
        published: dict[str, int],
        again: list[tuple[str, int, list[Emit]]],
    ) -> None:
        """A final state set aside, recovered (see :meth:`rebalanced`): what it kept of its eviction to
        publish again, its positions given to no other; what it kept of records not published, for them; its
        deletion due."""
        entry: Entry = orjson.loads(raw) if isinstance(raw, bytes) else raw
        self._set_aside_due[key] = entry.get("p")
        kept_of_records = []
        for item in entry.get("out", ()):
            if item[0].startswith(EVICTIONS):
                self._evicted_through[item[0]] = max(self._evicted_through.get(item[0], 0), item[1])
                again.append((item[0], item[1], self._restored(entry, item[2])))
            elif item[1] > published.get(item[0], -1):
                kept_of_records.append(item)
        if kept_of_records:
            turn_id = key.split("\t", 2)[2]
            self._set_aside_kept.setdefault(turn_id, []).append(entry | {"out": kept_of_records})
