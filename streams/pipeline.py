"""The transport-agnostic pipeline: bytes in, records out. Both transports drive this one object."""

from __future__ import annotations

import base64
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from schemas import ConversationSignal, InvalidRecord, Stream, parse_record
from schemas.parsing import REASONS
from streams.aggregate import Aggregator
from streams.config import Settings
from streams.emit import Emit
from streams.golden import load_golden
from streams.join import TurnJoiner
from streams.join_caps import RefusedRecord
from streams.metrics import Metrics
from streams.partitioning import PlacementCheck
from streams.state import StateStore
from streams.taxonomy import Taxonomy, load_taxonomy
from streams.views import default_views
from streams.views.outcomes import signal_observation

log = logging.getLogger("convowatch.pipeline")

#: The ``stream`` of a dead-lettered record of ``convowatch.internal.review.keep`` (not an input stream).
REVIEW_KEEP = "review_keep"


class Pipeline:
    """Parse → join → observe → aggregate. ``ingest`` never raises on a bad record: it returns a dead letter.

    On Kafka the ``observations`` that :meth:`ingest` emits go through a topic keyed by their shard key to
    :meth:`aggregate`; embedded, :meth:`process` calls :meth:`aggregate` directly. With ``batched=True``
    state is written only by :meth:`flush`; ``keep_outputs`` makes the join keep each batch's outputs in its
    state until they are published (the Kafka transport: :class:`~streams.join.TurnJoiner`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        metrics: Metrics | None = None,
        taxonomy: Taxonomy | None = None,
        pending_store: StateStore | None = None,
        aggregate_store: StateStore | None = None,
        batched: bool = False,
        keep_outputs: bool = False,
    ) -> None:
        self.settings = settings or Settings()
        self.metrics = metrics or Metrics(label_max_values=self.settings.label_max_values)
        self.taxonomy = taxonomy or load_taxonomy(self.settings.taxonomy)
        self.joiner = TurnJoiner(
            self.taxonomy,
            self.metrics,
            pending_store,
            ttl_seconds=self.settings.join_ttl_seconds,
            max_entries=self.settings.join_max_entries,
            evict_every=self.settings.evict_every,
            autoflush=not batched,
            text_redaction=self.settings.text_redaction,
            text_hash_key=self.settings.text_hash_bytes(),
            category_topics=self.settings.defect_category_topics,
            keep_outputs=keep_outputs,
            # labels on golden turns are scored as the join reads them, with or without their turn
            golden=load_golden(self.settings.golden),
        )
        self.aggregator = Aggregator(
            self.metrics,
            aggregate_store,
            autoflush=not batched,
            views=default_views(self.settings, self.metrics, self.taxonomy),
        )
        self.counts = {stream.value: 0 for stream in Stream} | {"deadletter": 0}
        m = self.metrics  # label children cached: .labels() costs more than the increment
        m.zero_known_children(
            [s.value for s in Stream], [*REASONS, "internal_error"], ["defects", "escalations", "deadletter"]
        )
        self._stream_metrics = {
            s: (
                m.records_in.labels(s.value),
                m.records_valid.labels(s.value),
                m.records_miskeyed.labels(s.value),
                m.records_clock_ahead.labels(s.value),
            )
            for s in Stream
        }
        #: records keyed by their turn id but on another partition than Java's partitioner gives their key
        self.placement = PlacementCheck(self.metrics)
        #: the newest event time per stream, exported once a stream has had a valid record: a worker that
        #: reads none (the aggregate role, a join worker without partitions) must not show a time of 0
        self._newest: dict[Stream, list[Any]] = {}  # [event time, gauge child]
        self._max_future = self.settings.max_future_seconds
        self._skew = min(self.settings.clock_skew_seconds, self._max_future)

    def ingest(
        self,
        stream: Stream,
        raw: bytes,
        *,
        source_topic: str,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | Literal[False] | None = False,
        partitions: int | None = None,
    ) -> list[Emit]:
        """One raw record of ``stream``: its outputs, or one dead letter saying why it was rejected (reason
        ``internal_error`` when processing it failed: a bug must not stop a transport or lose the record).
        ``key``: the record's Kafka key, counted in ``convowatch_records_miskeyed_total`` when it is not the
        event's turn id (signals: conversation id); False when the record has none to check (files).
        ``partitions``: the number of partitions of ``source_topic``, if known: a record of the joined streams
        keyed by its turn id is counted in ``convowatch_records_misrouted_total`` when ``partition`` is not
        the one Java's partitioner gives its key (:mod:`streams.partitioning`). Either is processed."""
        try:
            return self._ingest(stream, raw, source_topic, partition, offset, key, partitions)
        except Exception as exc:
            log.exception("internal error on %s[%s]@%s", source_topic, partition, offset)
            rejected = InvalidRecord("internal_error", f"{type(exc).__name__}: {exc}")
            return self._dead_letter(stream, raw, rejected, source_topic, partition, offset)

    def _ingest(
        self,
        stream: Stream,
        raw: bytes,
        source_topic: str,
        partition: int | None,
        offset: int | None,
        key: bytes | Literal[False] | None,
        partitions: int | None,
    ) -> list[Emit]:
        self._stream_metrics[stream][0].inc()
        try:
            event = parse_record(stream, raw, max_bytes=self.settings.max_record_bytes)
            ts = event.ts.timestamp()
            now = time.time()
            ahead = bool(self._max_future) and ts > now + self._skew
            if ahead:
                if ts > now + self._max_future:
                    raise InvalidRecord(
                        "future_timestamp",
                        f"event time {event.ts.isoformat()} is {ts - now:.0f} s ahead of this worker's clock "
                        f"(limit {self._max_future:.0f} s)",
                    )
                # its producer's clock is ahead: taken as its own time, it would close traffic minutes and
                # expire windows before the records of the minutes in between came in
                ts = now + self._skew
                event = event.model_copy(update={"ts": datetime.fromtimestamp(ts, UTC)})
            source = f"{source_topic}:{partition}" if partition is not None else source_topic
            if isinstance(event, ConversationSignal):  # keyed by conversation, not turn: nothing to join
                emits = [signal_observation(event, (source, offset))]
            else:  # the join may refuse it too: a turn with too many raters
                emits = self.joiner.handle(event, partition, (source, offset))
        except InvalidRecord as exc:
            dead = self._dead_letter(stream, raw, exc, source_topic, partition, offset)
            # refused by the join's caps: the gold observations of its labels on a golden turn go out too
            return dead + exc.emits if isinstance(exc, RefusedRecord) else dead
        self._stream_metrics[stream][1].inc()  # valid: counted once it went through
        if ahead:
            self._stream_metrics[stream][3].inc()
        if key is not False:
            expected = event.conversation_id if isinstance(event, ConversationSignal) else event.turn_id
            if key is None or key.decode("utf-8", "replace") != expected:
                self._stream_metrics[stream][2].inc()
            elif partitions and partition is not None and not isinstance(event, ConversationSignal):
                # a signal is observed alone: where it sits does not matter
                self.placement.check(stream, key, source_topic, partition, partitions)
        self.counts[stream.value] += 1
        newest = self._newest.get(stream)
        if newest is None:
            newest = self._newest[stream] = [-math.inf, self.metrics.last_event_time.labels(stream.value)]
        # the newest, not the last (late records come in between), and never ahead of the clock: a record a
        # little in the future must not hide a silence from the staleness alerts
        if (shown := min(ts, now)) > newest[0]:
            newest[0] = shown
            newest[1].set(shown)
        return emits

    def keep_for_review(
        self, raw: bytes, *, source_topic: str, partition: int | None = None, offset: int | None = None
    ) -> list[Emit]:
        """A record of ``convowatch.internal.review.keep`` (the Kafka transport's join reads them with its
        inputs): the join keeps the turn past its size cap. One that is not such a record is dead-lettered
        (stream ``review_keep``), as an input would be."""
        try:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidRecord("invalid_json", str(exc)) from None
            turn_id = value.get("turn_id") if isinstance(value, dict) else None
            if not isinstance(turn_id, str) or not turn_id:
                raise InvalidRecord("validation_error", "a review keep needs a non-empty string turn_id")
        except InvalidRecord as exc:
            return self._dead_letter(REVIEW_KEEP, raw, exc, source_topic, partition, offset)
        self.joiner.keep_for_review(turn_id)
        return []

    def aggregate_in_process(self, observation: dict[str, Any], partition: int | None = None) -> list[Emit]:
        """Embedded: what the aggregation of ``observation`` emits, but the review keeps, which go to the
        join in process (on Kafka, through ``convowatch.internal.review.keep``)."""
        published = []
        for emit in self.aggregate(observation, partition):
            if emit.topic == "review_keep":
                self.joiner.keep_for_review(emit.key)
            else:
                published.append(emit)
        return published

    def _dead_letter(
        self,
        stream: Stream | str,
        raw: bytes,
        rejected: InvalidRecord,
        source_topic: str,
        partition: int | None,
        offset: int | None,
    ) -> list[Emit]:
        """The record's dead letter, counted."""
        self.metrics.records_deadlettered.labels(str(stream), rejected.reason).inc()
        self.counts["deadletter"] += 1
        return [dead_letter(stream, raw, rejected.reason, rejected.detail, source_topic, partition, offset)]

    def aggregate(self, observation: dict[str, Any], partition: int | None = None) -> list[Emit]:
        return self.aggregator.apply(observation, partition)

    def process(
        self, stream: Stream, raw: bytes, *, source_topic: str, offset: int | None = None
    ) -> list[Emit]:
        """Embedded transport: ingest, aggregate observations in-process, return what to publish."""
        published = []
        for emit in self.ingest(stream, raw, source_topic=source_topic, offset=offset):
            if emit.topic == "observations":
                published.extend(self.aggregate_in_process(emit.value))
            else:
                published.append(emit)
        return published

    def flush(self) -> None:
        """Write the state touched since the last flush."""
        self.joiner.flush()
        self.aggregator.flush()

    def finish(self) -> list[Emit]:
        """End of input (embedded): evict everything, publishing defects of turns that never arrived."""
        self.flush()
        self.joiner.watermark = float("inf")
        published = []
        for emit in self.joiner.evict():
            if emit.topic == "observations":
                published.extend(self.aggregate_in_process(emit.value))
            else:
                published.append(emit)
        self.flush()
        self.aggregator.export_pending()  # the tail the gauges' throttles left (no timer runs embedded)
        return published

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"events": dict(self.counts)}
        for view in self.aggregator.views:
            section = getattr(view, "report", None)
            if section is not None:
                report.update(section(self.aggregator))
        return report


#: Longest ``detail`` a dead letter keeps: a validation error quotes the offending keys, and a record's keys
#: can be as large as the record (a dead letter over the producer's limit would stop the worker).
MAX_DETAIL_CHARS = 2_000


def bounded_detail(detail: str) -> str:
    """``detail`` cut to :data:`MAX_DETAIL_CHARS`, saying how much was cut."""
    if len(detail) <= MAX_DETAIL_CHARS:
        return detail
    return f"{detail[:MAX_DETAIL_CHARS]}... [{len(detail) - MAX_DETAIL_CHARS} more characters]"


def dead_letter(
    stream: Stream | str,
    raw: bytes,
    reason: str,
    detail: str,
    source_topic: str,
    partition: int | None,
    offset: int | None,
) -> Emit:
    value = {
        "schema_version": 1,
        "reason": reason,
        "detail": bounded_detail(detail),
        "stream": str(stream),
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),  # as every output writes times
        "original_base64": base64.b64encode(raw).decode("ascii"),
        "original_size": len(raw),
    }
    return Emit("deadletter", f"{source_topic}/{partition}/{offset}", value)
