"""Counting business outcomes (streams/views/outcomes.py) under a conversation's segment: the metric children
(every series of a segment from its first conversation on, so ratios read 0) and the process's totals, for
``report.json``."""

from __future__ import annotations

from typing import Any

from streams.metrics import Metrics
from streams.views.label_cache import LabelCache

SEGMENT = ("journey", "model_version", "channel")
#: Facts counted by a counter of their own: the Metrics attribute of each.
COUNTERS = {
    "started": "conversations",
    "escalated": "conversations_escalated",
    "task_completed": "conversations_task_completed",
    "order": "orders",
    "closed": "conversations_closed",
    "contained": "conversations_contained",
    "settled": "conversations_settled",
    "resolved": "conversations_resolved",
}
#: Why turns and signals are left out (``convowatch_conversation_events_dropped_total{reason}``).
DROP_REASONS = ("late", "no_turns", "too_many_signals")


class OutcomeCounts:
    """Facts of conversations, reported under their segments; :attr:`totals` over all segments."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.totals: dict[str, float] = {}
        # metric label values and children, cached (``.labels()`` costs more than the increment); the
        # children by bounded label values, so bounded too
        self._seg_labels = LabelCache(
            lambda raw: tuple(metrics.label(label, v) for label, v in zip(SEGMENT, raw, strict=True))
        )
        self._started: set[tuple[str, ...]] = set()
        self._children: dict[tuple[str, str | None, tuple[str, ...]], Any] = {}
        for reason in DROP_REASONS:
            metrics.conversation_events_dropped.labels(reason)

    def count(self, seg: list[str | None], name: str, value: Any = None) -> None:
        """Report one fact (``value``: a step, a feedback or a handle time) under the segment ``seg``."""
        labels = self._labels(seg)
        if name == "started" and labels not in self._started:
            # every series of the segment from its first conversation: ratios read 0
            self._started.add(labels)
            m = self.metrics
            for counter in self._counters():
                counter.labels(*labels)
            for step in ("add_to_cart", "purchase"):
                m.conversations_converted.labels(step, *labels)
            for feedback in ("up", "down"):
                m.user_feedback.labels(feedback, *labels)
            m.handle_time.labels(*labels)
        at = (name, value if name in ("converted", "feedback") else None, labels)
        child = self._children.get(at)
        if child is None:
            child = self._children[at] = self._child(name, value, labels)
        if child is not False:
            if name == "handle_time":
                child.observe(value)
            else:
                child.inc()
        total = f"{name}_{value}" if name in ("converted", "feedback") else name
        self.totals[total] = self.totals.get(total, 0) + 1
        if name == "handle_time":
            self.totals["handle_time_seconds"] = self.totals.get("handle_time_seconds", 0) + value

    def drop(self, reason: str, n: int = 1) -> None:
        """``n`` turns or signals left out, for ``reason`` (one of :data:`DROP_REASONS`)."""
        self.metrics.conversation_events_dropped.labels(reason).inc(n)
        self.totals[f"dropped_{reason}"] = self.totals.get(f"dropped_{reason}", 0) + n

    def evicted(self) -> None:
        """A conversation dropped undecided at the cap."""
        self.metrics.conversation_evictions.inc()
        self.totals["evicted"] = self.totals.get("evicted", 0) + 1

    def _labels(self, seg: list[str | None]) -> tuple[str, ...]:
        """The segment's label values (guarded), cached by the raw values (a guard maps a value the same
        way from its first call on)."""
        labels: tuple[str, ...] = self._seg_labels[tuple(seg)]
        return labels

    def _child(self, name: str, value: Any, labels: tuple[str, ...]) -> Any:
        """The metric child counting ``name`` (``value``: a step or feedback) under ``labels``; False for
        a fact that is only totalled."""
        m = self.metrics
        if name in COUNTERS:
            return getattr(m, COUNTERS[name]).labels(*labels)
        if name == "converted":
            return m.conversations_converted.labels(value, *labels)
        if name == "feedback":
            return m.user_feedback.labels(value, *labels)
        if name == "handle_time":
            return m.handle_time.labels(*labels)
        return False

    def _counters(self) -> list[Any]:
        return [getattr(self.metrics, name) for name in COUNTERS.values()]
