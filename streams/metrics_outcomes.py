"""Metrics of business outcomes per conversation (streams/views/outcomes.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.series_budget import OUTCOME_SEGMENTS, CappedCounter, CappedHistogram


class OutcomeMetrics:
    """Part of :class:`streams.metrics.Metrics`."""

    def _build_outcome_metrics(self, r: CollectorRegistry) -> None:
        # -- business outcomes per conversation (streams/views/outcomes.py: semantics in its docstring) --
        seg = ["journey", "model_version", "channel"]

        def conversations(name: str, doc: str, extra: tuple[str, ...] = ()) -> CappedCounter:
            # the same budget for every family of a segment: their series start together (the segment's
            # first conversation), so they admit the same segments and their ratios stay whole
            return CappedCounter(
                name,
                doc,
                [*extra, *seg],
                registry=r,
                combinations=OUTCOME_SEGMENTS,
                per_combination=extra,
                kept_on_fold=["journey"],  # ConvowatchJourneySilent and the outcome ratios sum by journey
            )

        self.conversations = conversations(
            "convowatch_conversations_total", "Conversations started (first turn seen)."
        )
        self.conversations_escalated = conversations(
            "convowatch_conversations_escalated_total",
            "Conversations handed to a human agent (turn outcome or signal).",
        )
        self.conversations_task_completed = conversations(
            "convowatch_conversations_task_completed_total",
            "Conversations with a turn whose outcome completed the task.",
        )
        self.conversations_converted = conversations(
            "convowatch_conversations_converted_total",
            "Conversations with an add_to_cart or purchase signal (step), counted once per step.",
            ("step",),
        )
        self.user_feedback = conversations(
            "convowatch_user_feedback_total",
            "Feedback (turn outcomes and thumbs signals), up or down.",
            ("feedback",),
        )
        self.orders = conversations(
            "convowatch_orders_total", "Distinct orders (purchase signals) per conversation."
        )
        self.conversations_closed = conversations(
            "convowatch_conversations_closed_total",
            "Conversations closed: idle for CONVOWATCH_CONVERSATION_IDLE_SECONDS.",
        )
        self.conversations_contained = conversations(
            "convowatch_conversations_contained_total",
            "Conversations closed without a handoff to a human agent.",
        )
        self.conversations_settled = conversations(
            "convowatch_conversations_settled_total",
            "Closed conversations whose recontact window (CONVOWATCH_RECONTACT_WINDOW_SECONDS) has passed.",
        )
        self.conversations_resolved = conversations(
            "convowatch_conversations_resolved_first_contact_total",
            "Settled conversations without a recontact.",
        )
        self.handle_time = CappedHistogram(
            "convowatch_handle_time_seconds",
            "Handling time of a contact, from handle_time signals (one observation per signal).",
            seg,
            buckets=(30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600, 7200),
            registry=r,
            combinations=OUTCOME_SEGMENTS,
            kept_on_fold=["journey"],
        )
        self.conversations_tracked = Gauge(
            "convowatch_conversations_tracked",
            "Conversations held in state for business outcomes.",
            registry=r,
        )
        self.conversation_evictions = Counter(
            "convowatch_conversation_evictions_total",
            "Conversations dropped undecided (in no outcome ratio) because CONVOWATCH_CONVERSATIONS_MAX was "
            "reached.",
            registry=r,
        )
        self.conversation_events_dropped = Counter(
            "convowatch_conversation_events_dropped_total",
            "Turns and signals left out of business outcomes: late (their conversation had settled), "
            "no_turns (signals of a conversation without chat turns) or too_many_signals (past a "
            "conversation's first 512 distinct signals).",
            ["reason"],
            registry=r,
        )
