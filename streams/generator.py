"""A seeded, realistic traffic generator: chat turns, judge verdicts, late human labels and business
signals (handoffs, handle times, thumbs, carts, orders, recontacts) at the end of each conversation.

Everything is synthetic (no real personal data) and deterministic for a seed. Events come out in
non-decreasing event-time order; verdicts, labels and signals that happen after their turn are held in a
heap and emitted at their own, later, event time. Signals draw from their own random stream, so the other
streams are the same with or without them (``signals=False``).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import Stream
from streams.embedded import Record
from streams.traffic_events import TurnSimulator, conversation_signals
from streams.traffic_model import BASE_FAIL, JOURNEYS, LOCALES, Incident, ScoreShift, pick

DEFAULT_START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class TrafficGenerator:
    """Synthetic traffic for two journeys, a model rollout (shopper-v41 → shopper-v42) and one judge.

    ``rate`` is turns per second of event time. The share of shopper conversations on ``shopper-v42``
    grows linearly from 0 at ``rollout_start_s`` to 90% after ``rollout_ramp_s`` more seconds; both
    default to fractions of the duration given to :meth:`records` (20% and 40%).
    """

    def __init__(
        self,
        seed: int = 7,
        rate: float = 200.0,
        start: datetime = DEFAULT_START,
        label_share: float = 0.1,
        incident: Incident | None = None,
        *,
        rollout_start_s: float | None = None,
        rollout_ramp_s: float | None = None,
        score_shift: ScoreShift | None = None,
        signals: bool = True,
        overlap_share: float = 0.1,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError("rate must be a positive number")
        if not 0.0 <= label_share <= 1.0:
            raise ValueError("label_share must be within [0, 1]")
        if not 0.0 <= overlap_share <= 1.0:
            raise ValueError("overlap_share must be within [0, 1]")
        self.seed = seed
        self.rate = rate
        self.start = start.astimezone(UTC)
        self.label_share = label_share
        self.incident = incident
        self.rollout_start_s = rollout_start_s
        self.rollout_ramp_s = rollout_ramp_s
        self.score_shift = score_shift
        self.signals = signals
        self.overlap_share = overlap_share

    def records(
        self, duration_s: float, *, drain: bool = False
    ) -> Iterator[tuple[float, str, dict[str, Any]]]:
        """(event time in Unix seconds, stream name, JSON-ready event) for ``duration_s`` event-seconds of
        traffic, in non-decreasing event time. Verdicts and labels due after the end are dropped, unless
        ``drain`` (then they follow, at their own times)."""
        rng = random.Random(self.seed)
        signal_rng = random.Random(f"{self.seed}/signals")  # its own stream: the others do not change
        turns = TurnSimulator(
            self.seed, self.label_share, self.overlap_share, self.incident, self.score_shift
        )
        rollout = (
            self.rollout_start_s if self.rollout_start_s is not None else 0.2 * duration_s,
            max(self.rollout_ramp_s if self.rollout_ramp_s is not None else 0.4 * duration_s, 1e-9),
        )
        start_ms = round(self.start.timestamp() * 1000)
        end_ms = start_ms + round(duration_s * 1000)
        heap: list[tuple[int, int, str, dict[str, Any]]] = []
        seq = 0
        conversations: list[dict[str, Any]] = []
        n_turns = n_convs = 0
        t = float(start_ms)
        while True:
            t += rng.expovariate(self.rate) * 1000
            now = int(t)
            if now >= end_ms:
                break
            # continue an open conversation, or start a new one
            if conversations and rng.random() < 0.6:
                conv = conversations[rng.randrange(len(conversations))]
            else:
                n_convs += 1
                conv = self._conversation(rng, rollout, n_convs, (now - start_ms) / 1000)
                conversations.append(conv)
                if len(conversations) > 64:
                    conversations.pop(0)
            conv["left"] -= 1
            if conv["left"] <= 0:
                conversations.remove(conv)
            n_turns += 1
            events = turns.events(rng, conv, n_turns, now, (now - start_ms) / 1000)
            if conv["left"] <= 0 and self.signals:
                events += conversation_signals(signal_rng, conv, now)
            for ms, stream, event in events:
                heapq.heappush(heap, (ms, seq, stream, event))
                seq += 1
            while heap and heap[0][0] <= now:
                ms, _, stream, event = heapq.heappop(heap)
                yield ms / 1000, stream, event
        while heap and (drain or heap[0][0] < end_ms):
            ms, _, stream, event = heapq.heappop(heap)
            yield ms / 1000, stream, event

    def _conversation(
        self, rng: random.Random, rollout: tuple[float, float], number: int, elapsed_s: float
    ) -> dict[str, Any]:
        journey = pick(rng, JOURNEYS)
        if journey == "shopper":
            begin, ramp = rollout
            v42_share = 0.9 * min(max((elapsed_s - begin) / ramp, 0.0), 1.0)
            model, channel = ("shopper-v42" if rng.random() < v42_share else "shopper-v41"), "chat"
        else:
            model, channel = "driver-v7", ("voice" if rng.random() < 0.3 else "chat")
        return {
            "id": f"conv-{self.seed}-{number:06d}",
            "journey": journey,
            "model": model,
            "channel": channel,
            "locale": rng.choice(LOCALES),
            "left": rng.randint(1, 6),
            "first_ms": None,
            "escalated": False,
            "failed": False,
            "completed": False,
            "shopping": False,
        }

    def golden(self, duration_s: float) -> dict[str, dict[str, str]]:
        """A golden set (``CONVOWATCH_GOLDEN``) for :meth:`records` of ``duration_s``: every turn a label
        marks ``is_gold``, the judge's quality labels as the truth (the generator's annotators are the
        judge plus noise)."""
        truth: dict[str, dict[str, str]] = {}
        golden: dict[str, dict[str, str]] = {}
        for _, stream, event in self.records(duration_s, drain=True):
            if stream == "judge_verdicts":
                verdicts = event["verdicts"]
                truth[event["turn_id"]] = {
                    v["dimension"]: v["label"] for v in verdicts if v["dimension"] in BASE_FAIL
                }
            elif stream == "human_labels" and event["is_gold"] and event["turn_id"] in truth:
                golden[event["turn_id"]] = truth[event["turn_id"]]
        return golden


def to_records(items: Iterable[tuple[float, str, dict[str, Any]]]) -> Iterator[Record]:
    """Generator output as :data:`streams.embedded.Record` tuples (source ``generator``, running offsets)."""
    for offset, (ts, stream, event) in enumerate(items):
        yield (ts, offset, Stream(stream), orjson.dumps(event), "generator", offset)
