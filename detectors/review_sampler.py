"""Which judged turns to send to human review, within a budget, with known inclusion probabilities.

Poisson sampling: each judged turn ``i`` is requested with its own probability ``pi_i``, decided by a
uniform draw that is a hash of ``(seed, turn_id)`` (so a replayed turn gets the same decision) and::

    pi_i = 1                                  for a high-risk turn (risk topics, a safety or bias fail)
    pi_i = min(1, max(floor_i, c * s_i))      otherwise, with the priority
    s_i  = 1 + disagreement_weight * disagreement + uncertainty_weight * (1 - |2 confidence - 1|)
             + segment_weight / sqrt(1 + R_segment)

High-risk turns are always reviewed (and count against the budget). Then turns where the live model's
signals disagree with the judge (a guardrail flag on a turn the judge passes on safety, a thumbs-down on a
turn it passes), turns where the judge is unsure (confidence near 0.5), and segments with few recent review
requests ``R_segment`` (their estimates are the least certain) come first. ``floor_i`` is at least
``min_probability`` and, per segment, enough for ``segment_floor_per_hour`` requests an hour at the
segment's recent traffic. Every turn has ``pi_i >= min_probability > 0``. The first ``max_segments``
segments have their recent traffic apart, later ones share ``other``'s; a segment without a turn for
``segment_idle_seconds`` of the clock's event time (a retired journey) is forgotten, and the next new one
takes its place: looked for when the clock enters a new thirtieth of ``segment_idle_seconds`` (a day), from
its start. Its decayed counts were 0 by then (0.5 to the 2,880th power at the default 15-minute half-life):
it comes back as a new segment would. Until 2026-11-26 the first 100 held their places for good, and every
later journey shared ``other``'s traffic, its coverage term and floor.

The scale ``c`` is the budget controller: every ``recompute_every`` turns it is set so that the expected
requests per hour, ``sum pi`` over an exponentially decayed histogram of recent priorities and count of
high-risk turns (half-life ``half_life_seconds`` of event time) divided by the decayed elapsed time, equals
``budget_per_hour``, less what the decayed ``sum pi`` actually given out already spent above it (a closed
loop: after a lull or a surge the traffic estimate lags, and the open loop over-spent meanwhile). A silence
is not traffic: counted whole, it was budget to spend on the first turns after it (one turn dated a day
before the traffic, read first, had the first 10 minutes request 40 turns not high-risk instead of 2; every
night's lull had the morning overspend). A gap between judged turns longer than the time in which the budget
allows ``SILENCE_REQUESTS`` requests is a silence, and counts for that time only: the window holds what it
held before; a silence after the sampler's first turn starts the window afresh instead, as a new sampler's
(one turn says nothing of the traffic after it). A turn dated far ahead does not freeze the clock:
``recompute_every`` turns in a row more than a half-life behind it bring it back. Segment floors come on top
(they are meant to be small). If high-risk turns alone exceed the budget, every other turn falls to its
floor and ``expected_requests_per_hour`` shows the excess.

A turn decided again, because a later verdict makes it high-risk (``decided_before``), is requested with
``pi = 1`` but is not another turn: its decayed weight moves from the histogram to the high-risk count, and
it is a new request (counted, and spent) only if it was not requested before. The sampler remembers its
last ``MAX_REMEMBERED`` requests of turns not high-risk (by a 48-bit digest of the turn id: the state stays
small whatever the ids' length); a turn requested before those is taken as not requested, a new spend.
Later verdicts come seconds or minutes after the first: at the default budget of 60 an hour, that memory
reaches about two hours back.

Because ``pi_i`` depends only on the past and the turn's own features, weighting a human label by
``1 / pi_i`` (``PredictionPoweredRate.add_label(f, y, weight=1 / pi)``) keeps the calibrated rate unbiased
(Horvitz-Thompson); ``bench/review_sampling.py`` measures the bias and the interval width against uniform
sampling at the same budget. The default half-life (15 min) lets the budget follow a traffic surge within
the hour; a longer one is steadier but over-spends for longer after a surge.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Self

from detectors.review_budget import SILENCE_REQUESTS as SILENCE_REQUESTS  # named in the module doc
from detectors.review_budget import _ReviewBudget

OTHER = "other"
#: Segments not seen for ``segment_idle_seconds`` are looked for this many times per that time.
SWEEPS_PER_IDLE = 30
#: How many of the last requests of turns not high-risk are remembered: one a later verdict makes high-risk is
#: requested again, not a second spend (later verdicts come seconds or minutes after). By count, not by event
#: time: a turn dated far ahead would have made every request look old.
MAX_REMEMBERED = 128


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def uniform_draw(seed: int, turn_id: str) -> float:
    """A uniform number in [0, 1) fixed by ``seed`` and ``turn_id`` (the sampler's only randomness)."""
    digest = hashlib.blake2b(f"{seed}:{turn_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class ReviewSampler(_ReviewBudget):
    """Budgeted, prioritised Poisson sampling of judged turns for human review (see the module doc).

    ``update(turn_id, ts, segment, high_risk, confidence, disagreement)`` decides one judged turn; then
    ``requested``, ``inclusion_probability`` (``pi``), ``weight`` (``1 / pi``), ``priority`` and
    ``reason`` describe the decision.

    >>> import random
    >>> rng = random.Random(1)
    >>> sampler = ReviewSampler(budget_per_hour=60, seed=7)
    >>> requested = risky = 0
    >>> for i in range(18_000):                                    # 5 hours at one judged turn a second
    ...     high_risk = rng.random() < 0.002
    ...     sampler = sampler.update(f"t{i}", ts=float(i), segment=rng.choice("ab"), high_risk=high_risk,
    ...                              confidence=rng.random())
    ...     requested += sampler.requested
    ...     risky += sampler.requested and high_risk
    >>> requested, risky, round(sampler.scale, 5), round(sampler.expected_requests_per_hour, 1)
    (305, 35, 0.0037, 59.9)

    Journeys that turn over, one a day, with room for three: an idle one gives its place to the next, where
    a sampler that never forgets one has every journey after the third share ``other``.

    >>> day = 86400.0
    >>> kept = ReviewSampler(max_segments=3, segment_idle_seconds=2 * day)
    >>> forever = ReviewSampler(max_segments=3, segment_idle_seconds=1e12)
    >>> for n in range(6):
    ...     kept = kept.update(f"t{n}", ts=n * day, segment=f"campaign-{n}")
    ...     forever = forever.update(f"t{n}", ts=n * day, segment=f"campaign-{n}")
    >>> kept.segments, forever.segments[-2:]
    (['campaign-3', 'campaign-4', 'campaign-5'], ['campaign-2', 'other'])
    """

    def __init__(
        self,
        budget_per_hour: float = 60.0,
        min_probability: float = 0.001,
        segment_floor_per_hour: float = 0.0,
        disagreement_weight: float = 5.0,
        uncertainty_weight: float = 5.0,
        segment_weight: float = 1.0,
        half_life_seconds: float = 900.0,
        recompute_every: int = 20,
        max_segments: int = 100,
        seed: int = 0,
        segment_idle_seconds: float = 30 * 86400.0,
    ) -> None:
        _check_positive("budget_per_hour", budget_per_hour)
        if isinstance(min_probability, bool) or not isinstance(min_probability, int | float):
            raise ValueError(f"min_probability must be a number in (0, 1], got {min_probability!r}")
        if not 0.0 < min_probability <= 1.0:
            raise ValueError(f"min_probability must be a number in (0, 1], got {min_probability!r}")
        _check_positive("segment_floor_per_hour", segment_floor_per_hour, allow_zero=True)
        for name, weight in (
            ("disagreement_weight", disagreement_weight),
            ("uncertainty_weight", uncertainty_weight),
            ("segment_weight", segment_weight),
        ):
            _check_positive(name, weight, allow_zero=True)
        _check_positive("half_life_seconds", half_life_seconds)
        _check_positive("segment_idle_seconds", segment_idle_seconds)
        for name, count in (("recompute_every", recompute_every), ("max_segments", max_segments)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {count!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.budget_per_hour = budget_per_hour
        self.min_probability = min_probability
        self.segment_floor_per_hour = segment_floor_per_hour
        self.disagreement_weight = disagreement_weight
        self.uncertainty_weight = uncertainty_weight
        self.segment_weight = segment_weight
        self.half_life_seconds = half_life_seconds
        self.recompute_every = recompute_every
        self.max_segments = max_segments
        self.seed = seed
        self.segment_idle_seconds = segment_idle_seconds
        self._reset()

    def _reset(self) -> None:
        self._clock: float | None = None  # newest event time seen
        self._start_window()
        # segment -> [decayed turns, decayed requests, ts], each decayed by its own event time
        self._segments: dict[str, list[float]] = {}
        self._scale = 1.0
        self._counts = {"turns": 0, "requested": 0}
        self._last: dict[str, Any] = {}
        # digests of the turn ids of the last requests of turns not high-risk, oldest first (MAX_REMEMBERED)
        self._requested_recently: list[str] = []

    # -- the decision ---------------------------------------------------------------------------------

    def _segment(self, name: str, ts: float) -> list[float]:
        if name not in self._segments and len(self._segments) >= self.max_segments:
            name = OTHER
        seg = self._segments.setdefault(name, [0.0, 0.0, ts])
        if ts > seg[2]:
            f = 0.5 ** ((ts - seg[2]) / self.half_life_seconds)
            seg[0], seg[1], seg[2] = seg[0] * f, seg[1] * f, ts
        return seg

    def _forget_idle_segments(self, before: float | None) -> None:
        """When the clock, ``before`` this turn, entered a new period of ``segment_idle_seconds /
        SWEEPS_PER_IDLE``: forget the segments not seen since ``segment_idle_seconds`` before its start."""
        clock, every = self._clock, self.segment_idle_seconds / SWEEPS_PER_IDLE
        assert clock is not None
        if before is not None and clock // every == before // every:
            return
        since = math.floor(clock / every) * every - self.segment_idle_seconds
        for name in [name for name, seg in self._segments.items() if seg[2] < since]:
            del self._segments[name]

    def _priority(
        self, seg: list[float], confidence: float | None, disagreement: bool
    ) -> tuple[float, float, float]:
        """(priority, unsure, need) of a turn of segment ``seg``."""
        unsure = 0.0 if confidence is None else 1.0 - abs(2.0 * min(max(confidence, 0.0), 1.0) - 1.0)
        need = 1.0 / math.sqrt(1.0 + seg[1])
        disagree = self.disagreement_weight * bool(disagreement)
        uncertain = self.uncertainty_weight * unsure
        few = self.segment_weight * need
        return 1.0 + (disagree + uncertain + few), unsure, need  # the sum of the parts, in their order

    def update(
        self,
        turn_id: str,
        ts: float,
        segment: str = "",
        high_risk: bool = False,
        confidence: float | None = None,
        disagreement: bool = False,
        decided_before: bool = False,
    ) -> Self:
        """Decide one judged turn; ``decided_before``: the turn was decided already, not high-risk, and a
        later verdict makes it ``high_risk`` (:meth:`_decided_again`)."""
        ts = float(ts)
        if decided_before:
            if not high_risk:
                raise ValueError("decided_before: a turn is decided again only when it becomes high_risk")
            if self._clock is not None:  # else this sampler never saw the turn (state lost): a new one
                return self._decided_again(turn_id, ts, segment, confidence, disagreement)
        before = self._clock
        self._decay(ts)
        self._forget_idle_segments(before)
        seg = self._segment(segment, ts)
        priority, unsure, need = self._priority(seg, confidence, disagreement)
        if high_risk:
            self._forced += 1.0
        else:
            self._hist[self._bin(priority)] += 1.0
        if self._since_solve % self.recompute_every == 0:
            self._solve()
        self._since_solve += 1
        floor = self.min_probability
        if self.segment_floor_per_hour:
            segment_per_hour = seg[0] * 3600.0 / self._window_seconds()
            if segment_per_hour > 0:
                floor = max(floor, min(1.0, self.segment_floor_per_hour / segment_per_hour))
        seg[0] += 1.0
        pi = 1.0 if high_risk else min(1.0, max(floor, self._scale * priority))
        self._spent += pi
        requested = uniform_draw(self.seed, turn_id) < pi
        reason = None
        if requested:
            seg[1] += 1.0
            reason = self._reason(
                high_risk,
                floor > self.min_probability and floor > self._scale * priority,
                bool(disagreement),
                unsure,
                need,
            )
        self._counts["turns"] += 1
        self._counts["requested"] += int(requested)
        self._last = {"requested": requested, "pi": pi, "priority": priority, "reason": reason}
        if requested and not high_risk:
            recent = self._requested_recently  # for _decided_again
            recent.append(_digest(turn_id))
            if len(recent) > MAX_REMEMBERED:
                del recent[0]
        return self

    def _decided_again(
        self, turn_id: str, ts: float, segment: str, confidence: float | None, disagreement: bool
    ) -> Self:
        """A turn decided before, not high-risk, that a later verdict makes high-risk: requested (pi 1), but
        not one more turn: its weight (decayed since ``ts``) moves from the histogram, spread over it (its
        bin is not kept), to the high-risk count; the clock and the segment's traffic stay. A new spend only
        if not requested before: in expectation the turn's probabilities then add up to 1, its own now."""
        assert self._clock is not None
        weight = 0.5 ** (max(self._clock - ts, 0.0) / self.half_life_seconds)
        total = sum(self._hist)
        moved = min(weight, total)
        if moved > 0:
            keep = 1.0 - moved / total
            self._hist = [h * keep for h in self._hist]
            self._forced += moved
        seg = self._segment(segment, ts)
        priority = self._priority(seg, confidence, disagreement)[0]
        digest = _digest(turn_id)
        before = digest in self._requested_recently
        if before:
            self._requested_recently.remove(digest)
        else:
            self._spent += 1.0
            seg[1] += 1.0
            self._counts["requested"] += 1
        self._last = {"requested": True, "pi": 1.0, "priority": priority, "reason": "high_risk"}
        self._last["again"] = before
        return self

    def _reason(self, high_risk: bool, floored: bool, disagreement: bool, unsure: float, need: float) -> str:
        """Why a turn was requested: high risk, the segment floor, else the priority term nearest its own
        maximum if at least half of it (each term compared with its weight: the segment term never exceeds
        its weight of 1, so against a fixed 1.0 it could never be the reason), else ``random``."""
        if high_risk:
            return "high_risk"
        if floored:
            return "segment"
        shares = {
            "disagreement": float(disagreement) if self.disagreement_weight else 0.0,
            "uncertain": unsure if self.uncertainty_weight else 0.0,
            "segment": need if self.segment_weight else 0.0,
        }
        top = max(shares, key=lambda k: shares[k])
        return top if shares[top] > 0.5 else "random"

    # -- results ------------------------------------------------------------------------------------

    @property
    def requested(self) -> bool:
        """Whether the last turn is sent to human review."""
        return bool(self._last.get("requested", False))

    @property
    def requested_before(self) -> bool:
        """Whether the last turn, decided again (``decided_before``), had been requested already: its
        request replaces that one, and is no new spend."""
        return bool(self._last.get("again", False))

    @property
    def inclusion_probability(self) -> float:
        """``pi`` of the last turn (``nan`` before any): weight its human label by ``1 / pi``."""
        return float(self._last.get("pi", math.nan))

    @property
    def weight(self) -> float:
        return 1.0 / self.inclusion_probability if self._last else math.nan

    @property
    def priority(self) -> float:
        return float(self._last.get("priority", math.nan))

    @property
    def reason(self) -> str | None:
        """Why the last turn was requested (its largest priority term, or ``random``); None if not."""
        reason = self._last.get("reason")
        return str(reason) if reason is not None else None

    @property
    def scale(self) -> float:
        """The budget controller's current ``c``."""
        return self._scale

    @property
    def turns_per_hour(self) -> float:
        """Recent judged turns per hour (decayed)."""
        return (sum(self._hist) + self._forced) * 3600.0 / self._window_seconds()

    @property
    def expected_requests_per_hour(self) -> float:
        """Requests per hour the current scale gives at the recent traffic (segment floors aside)."""
        return self._expected_requests(self._scale) * 3600.0 / self._window_seconds()

    @property
    def segments(self) -> list[str]:
        """The segments whose recent traffic is kept apart, sorted (``other``: those past the room)."""
        return sorted(self._segments)

    @property
    def n_turns(self) -> int:
        return int(self._counts["turns"])

    @property
    def n_requested(self) -> int:
        return int(self._counts["requested"])


def _digest(turn_id: str) -> str:
    """A 48-bit digest of ``turn_id`` (12 hex digits): what the sampler remembers of a request."""
    return hashlib.blake2b(turn_id.encode(), digest_size=6).hexdigest()
