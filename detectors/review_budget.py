"""The budget controller of :class:`~detectors.review_sampler.ReviewSampler` (its module doc, the scale
``c``): a decayed window of the recent judged turns (a histogram of their log-priorities, the high-risk count,
the elapsed event time and the ``pi`` given out), and the scale at which their expected requests meet the
budget, less what the window already spent above it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from detectors.base import Detector

BINS = 32
#: A gap between judged turns longer than the time the budget allows this many requests in is a silence, and
#: counts for that time only: after it the window carries at most that much unspent budget. Gaps that long
#: are rare in traffic the budget has to sample (above it: at the budget, traffic reads under 1% higher);
#: traffic far below it, every gap capped, reads as a fifth of it, still below (every turn requested).
SILENCE_REQUESTS = 5


@functools.lru_cache(maxsize=64)
def _bin_scale(max_priority: float) -> tuple[float, tuple[float, ...]]:
    """``ln`` of the top of the priority range and the priority at each bin's centre (the bins only
    depend on the weights, so the ``exp`` per bin is paid once per parameter set, not per solve)."""
    log_top = math.log(max_priority + 1e-9)
    return log_top, tuple(math.exp((b + 0.5) / BINS * log_top) for b in range(BINS))


class _ReviewBudget(Detector):
    """The window and the solve of the scale ``c``; :class:`~detectors.review_sampler.ReviewSampler` holds
    the parameters, calls :meth:`_start_window` in its ``_reset`` and adds each turn to the window."""

    budget_per_hour: float
    min_probability: float
    disagreement_weight: float
    uncertainty_weight: float
    segment_weight: float
    half_life_seconds: float
    recompute_every: int
    _clock: float | None
    _counts: dict[str, int]
    _scale: float

    def _start_window(self) -> None:
        """The decayed window of traffic and spend, empty: at the start, and after a silence that follows the
        first turn (:meth:`_decay`). Not the segments' recent traffic: each decays by its own event time."""
        self._elapsed = 0.0  # decayed event time (seconds)
        self._hist = [0.0] * BINS  # decayed counts of turns by log-priority bin
        self._forced = 0.0  # decayed count of high-risk turns (always requested)
        self._spent = 0.0  # decayed sum of the pi given out: what the window's requests already cost
        # turns in a row more than a half-life behind the clock, and the newest one's ts
        self._behind: list[Any] = [0, None]
        self._since_solve = 0

    @property
    def _max_priority(self) -> float:
        return 1.0 + self.disagreement_weight + self.uncertainty_weight + self.segment_weight

    def _bin(self, priority: float) -> int:
        return min(BINS - 1, int(BINS * math.log(priority) / _bin_scale(self._max_priority)[0]))

    def _decay(self, ts: float) -> None:
        if self._clock is None:
            self._clock = ts
            return
        if ts < self._clock - self.half_life_seconds:
            # far behind the clock: after ``recompute_every`` such turns in a row, the clock was the outlier
            # (one turn dated hours ahead froze it, and every later turn fell to its floor until event time
            # caught up): it goes back to the newest of them
            count, newest = self._behind
            self._behind = [count + 1, ts if newest is None else max(newest, ts)]
            if self._behind[0] >= self.recompute_every:
                self._clock, self._behind = self._behind[1], [0, None]
            return
        self._behind = [0, None]
        if ts <= self._clock:
            return  # a late turn counts at full weight: a small, conservative error
        gap, silence = ts - self._clock, SILENCE_REQUESTS * 3600.0 / self.budget_per_hour
        if gap > silence and self._counts["turns"] == 1:
            # the first turn, then a silence: it says nothing of the traffic after (a turn dated in the past)
            self._start_window()
            self._clock = ts
            return
        f = 0.5 ** (min(gap, silence) / self.half_life_seconds)
        rate = math.log(2.0) / self.half_life_seconds
        self._elapsed = self._elapsed * f + (1.0 - f) / rate
        self._hist = [h * f for h in self._hist]
        self._forced *= f
        self._spent *= f
        self._clock = ts

    def _window_seconds(self) -> float:
        # At least a second: the first turns' window would be 0. A longer floor would not be cautious: it
        # spreads the few turns seen so far over time they did not fill, which understates the traffic and
        # over-spends the budget (a 60 s floor requested every one of the first ``recompute_every`` turns).
        return max(self._elapsed, 1.0)

    def _expected_requests(self, scale: float, bins: list[tuple[float, float]] | None = None) -> float:
        """Expected requests over the decayed window at ``scale`` (segment floors aside); ``bins`` are the
        (count, priority) pairs of the non-empty histogram bins (computed once per solve)."""
        if bins is None:
            bins = self._nonempty_bins()
        floor = self.min_probability
        # sum(count * min(1.0, max(floor, scale * p))) term by term in the same order, without the calls
        # (the solve runs this ~40 times): min and max written out keep the same operands
        total = 0.0
        for count, p in bins:
            pi = scale * p
            if not pi > floor:
                pi = floor
            total += count * (pi if pi < 1.0 else 1.0)
        return self._forced + total

    def _nonempty_bins(self) -> list[tuple[float, float]]:
        centres = _bin_scale(self._max_priority)[1]
        return [(count, centres[b]) for b, count in enumerate(self._hist) if count]

    def _solve(self) -> None:
        target = self.budget_per_hour * self._window_seconds() / 3600.0
        # closed loop: what the window's requests already cost above its budget is taken off the aim. The
        # open-loop solve spent 1.6-2.8 times the budget in the hour after a lull or a surge: the decayed
        # window still held the idle time while the traffic estimate caught up.
        aim = max(target - max(self._spent - target, 0.0), 1e-3 * target)
        bins = self._nonempty_bins()
        low, high = math.log(1e-9), math.log(1.0)
        if self._expected_requests(1.0, bins) <= aim:
            self._scale = 1.0
            return
        for _ in range(40):
            mid = 0.5 * (low + high)
            if self._expected_requests(math.exp(mid), bins) > aim:
                high = mid
            else:
                low = mid
        self._scale = math.exp(low)
