"""A shift in the distribution of a stream of reals (location, spread or shape), by repeated KS tests."""

from __future__ import annotations

import functools
import math
from bisect import bisect_left, insort

from detectors.base import Detector
from detectors.event_times import EventTimes

__all__ = ["ScoreDrift", "kolmogorov_q", "ks_critical_value", "ks_p_value", "ks_statistic"]


def ks_statistic(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup |F_a - F_b|`` of two non-empty *sorted* lists.

    Ties (within or across the samples) are handled exactly: both empirical CDFs step past a value at once.

    >>> ks_statistic([0.1, 0.2, 0.3, 0.4], [0.3, 0.4, 0.5, 0.6])
    0.5
    """
    na, nb = len(a), len(b)
    i = j = 0
    widest = 0  # the gap in units of 1 / (na nb): integers, so equal gaps compare equal
    while i < na and j < nb:
        x = a[i] if a[i] <= b[j] else b[j]
        while i < na and a[i] == x:
            i += 1
        while j < nb and b[j] == x:
            j += 1
        gap = abs(i * nb - j * na)
        if gap > widest:
            widest = gap
    return widest / (na * nb)  # once one sample is exhausted the gap only shrinks


def kolmogorov_q(lam: float) -> float:
    """``P(K > lam)`` for Kolmogorov's limiting distribution: ``2 * sum_j (-1)^(j-1) exp(-2 j^2 lam^2)``."""
    if lam < 0.2:  # the series converges slowly there, and Q(0.2) = 1 - 1e-20
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = math.exp(-2.0 * j * j * lam * lam)
        total += term if j % 2 else -term
        if term < 1e-18:
            break
    return min(max(2.0 * total, 0.0), 1.0)


def _root_effective_size(m: int, n: int) -> float:
    return math.sqrt(m * n / (m + n))


def ks_p_value(d: float, m: int, n: int) -> float:
    """Smirnov's limiting p-value ``Q(sqrt(mn / (m + n)) d)`` of a two-sample KS statistic ``d``.

    For samples of tens to thousands of values it is conservative: the exact tail probability is below it
    (70-95% of it at the sizes :class:`ScoreDrift` uses; ``tests/detectors/test_score_drift.py`` checks it
    against the exact lattice-path distribution).

    >>> f"{ks_p_value(0.2, 500, 200):.2e}"
    '2.18e-05'
    """
    return kolmogorov_q(_root_effective_size(m, n) * d)


@functools.lru_cache(maxsize=256)  # every restore from JSON constructs a detector: keep that cheap
def ks_critical_value(alpha: float, m: int, n: int) -> float:
    """The statistic ``d`` with ``ks_p_value(d, m, n) == alpha``; a test rejects above it.

    >>> round(ks_critical_value(0.05, 500, 200), 4)
    0.1136
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    low, high = 0.2, 40.0  # Q(0.2) ~ 1, Q(40) underflows to 0: alpha is in between
    for _ in range(200):
        mid = 0.5 * (low + high)
        if kolmogorov_q(mid) > alpha:
            low = mid
        else:
            high = mid
    return high / _root_effective_size(m, n)


class ScoreDrift(EventTimes, Detector):
    """Alarms when recent values no longer look drawn from the distribution of a reference sample.

    The first ``reference_size`` values form the **reference** (kept sorted). Every later value enters a
    **window** of the latest ``window_size`` values, kept sorted too (``insort`` and a ``bisect`` removal,
    so an update costs O(``window_size``) memory moves); the window never overlaps the reference. Once the
    window is full, and then every ``check_every`` values, a two-sample Kolmogorov-Smirnov test compares the
    window with the reference: the statistic is the largest gap between the two empirical CDFs, so a change
    of location, of spread or of shape at an unchanged mean (say, one mode splitting into two) is found
    alike. A check is a merge of the two sorted samples, O(``reference_size + window_size``), amortised
    over ``check_every`` updates. State is bounded: two sorted samples and a ring buffer.

    **False alarms.** ``alpha`` is the false-alarm budget per ``horizon`` in-control values. The checks
    are repeated on overlapping windows, so each runs at the Bonferroni level
    ``alpha / ceil(horizon / check_every)`` (``check_alpha``): whatever the correlation between checks,
    the probability of any false alarm within ``horizon`` values, and the expected number of false alarms
    per ``horizon`` values, are at most ``alpha``. The level comes from Smirnov's limiting distribution,
    conservative at these sample sizes (see :func:`ks_p_value`); tied values (rounded scores) only make the
    test more conservative.
    The reference is one fixed sample: an unlucky reference makes false alarms of one stream cluster,
    though the rate over streams holds.

    **Episodes.** A check whose statistic exceeds :attr:`threshold` while not in alarm opens an episode:
    ``drift_detected`` is True on that update, and :attr:`in_alarm` stays True while later checks still
    find the window different. The episode ends (``resolved`` True on that update) at the first check
    whose p-value is at least ``resolve_alpha`` (no evidence of a difference even at that lenient level,
    which must be above ``check_alpha``:
    the hysteresis keeps a window near the threshold from flapping). A persistent, accepted change is
    adopted with :meth:`rebase`: the window becomes the start of a new reference.

    With ``ts`` (event time), :attr:`last_seen` is the newest one an update brought: for its owner to tell
    idle detectors; :attr:`created` is the first update's, for its owner to tell this detector's episodes
    from those of one it dropped before (:attr:`n_alarms` starts at 0 again). With ``arrival`` (when the value
    came, on its owner's clock, which never goes back), :attr:`last_arrival` is the latest: for its owner to
    tell a stream that stopped from one that lags in event time.

    Examples
    --------
    Scores around 0.7 whose distribution splits into two modes (0.55 and 0.85, the same mean) at value
    2,000; the change is found about 75 values (a third of a window) later:

    >>> import random
    >>> rng = random.Random(3)
    >>> drift = ScoreDrift(reference_size=500, window_size=200, check_every=25, alpha=0.01)
    >>> for i in range(4_000):
    ...     x = rng.gauss(0.7, 0.05) if i < 2_000 else rng.gauss(rng.choice((0.55, 0.85)), 0.05)
    ...     if drift.update(x).drift_detected:
    ...         print(f"drift at {i}: KS {drift.statistic:.3f} > {drift.threshold:.3f}")
    drift at 2074: KS 0.222 > 0.218
    """

    def __init__(
        self,
        reference_size: int = 500,
        window_size: int = 200,
        check_every: int = 50,
        alpha: float = 0.01,
        horizon: int = 100_000,
        resolve_alpha: float = 0.05,
    ) -> None:
        if reference_size < 10 or window_size < 10:
            raise ValueError(
                f"reference_size and window_size must be >= 10, got {reference_size}, {window_size}"
            )
        if not 1 <= check_every <= window_size:
            raise ValueError(f"check_every must be within 1..window_size ({window_size}), got {check_every}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be within (0, 1), got {alpha}")
        if horizon < check_every:
            raise ValueError(f"horizon must be at least check_every ({check_every}), got {horizon}")
        check_alpha = alpha / math.ceil(horizon / check_every)
        if not check_alpha < resolve_alpha < 1.0:
            raise ValueError(
                f"resolve_alpha must be within (check_alpha, 1) = ({check_alpha:.3g}, 1), got {resolve_alpha}"
            )
        self.reference_size = reference_size
        self.window_size = window_size
        self.check_every = check_every
        self.alpha = alpha
        self.horizon = horizon
        self.resolve_alpha = resolve_alpha
        self._check_alpha = check_alpha
        self._threshold = ks_critical_value(self._check_alpha, reference_size, window_size)
        self._resolve_threshold = ks_critical_value(resolve_alpha, reference_size, window_size)
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._reference: list[float] = []  # sorted
        self._ring: list[float] = []  # the window in arrival order; _head is its oldest value once full
        self._head = 0
        self._window: list[float] = []  # sorted
        self._filled = 0  # values into the window since the reference was (re)built
        self._statistic = 0.0
        self._p_value = 1.0
        self._checks = 0
        self._checked = False
        self._in_alarm = False
        self._detected = False
        self._resolved = False
        self._n_alarms = 0
        self._last_seen: float | None = None
        self._created: float | None = None  # the first update's event time (not in state until 2026-11-26)
        self._last_arrival: float | None = None  # not in state until 2026-11-26 either

    def update(self, x: float, ts: float | None = None, arrival: float | None = None) -> ScoreDrift:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"values must be finite, got {x}")
        if ts is not None:
            self._saw(ts)
        if arrival is not None:
            self.arrive(arrival)
        self._checked = self._detected = self._resolved = False
        self._n += 1
        if len(self._reference) < self.reference_size:
            insort(self._reference, x)
            return self
        if len(self._ring) < self.window_size:
            self._ring.append(x)
        else:
            oldest = self._ring[self._head]
            self._ring[self._head] = x
            self._head = (self._head + 1) % self.window_size
            del self._window[bisect_left(self._window, oldest)]
        insort(self._window, x)
        self._filled += 1
        if self._filled >= self.window_size and (self._filled - self.window_size) % self.check_every == 0:
            self._check()
        return self

    def _check(self) -> None:
        d = ks_statistic(self._reference, self._window)
        self._statistic = d
        self._p_value = ks_p_value(d, self.reference_size, self.window_size)
        self._checks += 1
        self._checked = True
        if not self._in_alarm and d > self._threshold:
            self._in_alarm = self._detected = True
            self._n_alarms += 1
        elif self._in_alarm and d <= self._resolve_threshold:
            self._in_alarm = False
            self._resolved = True

    def rebase(self) -> ScoreDrift:
        """Adopt the current distribution: the window's values start a new reference, which the next values
        complete; checks resume once a new window is full. Ends an open episode (``resolved`` turns True)."""
        recent = self._ring[self._head :] + self._ring[: self._head]  # oldest first
        self._reference = sorted(recent[-self.reference_size :])
        self._ring, self._head, self._window, self._filled = [], 0, [], 0
        self._checked = self._detected = False
        self._resolved = self._in_alarm
        self._in_alarm = False
        self._statistic, self._p_value = 0.0, 1.0
        return self

    def arrive(self, arrival: float) -> ScoreDrift:
        """Take ``arrival`` as :attr:`last_arrival` if it is later (or there is none): what an update with it
        does, and what its owner does for a detector from state without one (until 2026-11-26).

        >>> ScoreDrift().update(0.5, arrival=9.0).arrive(5.0).last_arrival
        9.0
        """
        if self._last_arrival is None or arrival > self._last_arrival:
            self._last_arrival = float(arrival)
        return self

    def close(self) -> ScoreDrift:
        """End an open episode without a value (the stream stopped): ``resolved`` turns True, as on a
        resolving test. The reference and the window are kept, so values still different when they come back
        open the next episode at the next test.

        >>> drift = ScoreDrift(reference_size=10, window_size=10, check_every=5, horizon=100)
        >>> for i in range(20):
        ...     drift = drift.update(0.1 * (i % 10) if i < 10 else 5.0)
        >>> drift.in_alarm, drift.close().in_alarm, drift.resolved, drift.n_alarms
        (True, False, True, 1)
        >>> [drift.update(5.0).drift_detected for _ in range(5)][-1], drift.n_alarms
        (True, 2)
        """
        self._checked = self._detected = False
        self._resolved = self._in_alarm
        self._in_alarm = False
        return self

    @property
    def n(self) -> int:
        """Number of values seen."""
        return self._n

    @property
    def last_arrival(self) -> float | None:
        """The latest ``arrival`` an update brought (None: none did, or state from before 2026-11-26)."""
        return self._last_arrival

    @property
    def reference_ready(self) -> bool:
        """True once the reference sample is complete (checks can start when the window fills)."""
        return len(self._reference) >= self.reference_size

    @property
    def checked(self) -> bool:
        """True when the last update ran a test."""
        return self._checked

    @property
    def checks(self) -> int:
        """Tests run so far."""
        return self._checks

    @property
    def drift_detected(self) -> bool:
        """True when the last update's test opened a drift episode."""
        return self._detected

    @property
    def in_alarm(self) -> bool:
        """True from an alarm until the window no longer differs from the reference (or a rebase)."""
        return self._in_alarm

    @property
    def resolved(self) -> bool:
        """True when the last update's test (or a :meth:`rebase`) ended a drift episode."""
        return self._resolved

    @property
    def n_alarms(self) -> int:
        """Drift episodes so far."""
        return self._n_alarms

    @property
    def statistic(self) -> float:
        """KS statistic of the last test (0 before the first): the largest gap between the two CDFs."""
        return self._statistic

    @property
    def p_value(self) -> float:
        """Asymptotic p-value of the last test (1 before the first)."""
        return self._p_value

    @property
    def threshold(self) -> float:
        """The statistic above which a test alarms (the critical value at ``check_alpha``)."""
        return self._threshold

    @property
    def resolve_threshold(self) -> float:
        """The statistic at or below which an episode ends (the critical value at ``resolve_alpha``)."""
        return self._resolve_threshold

    @property
    def check_alpha(self) -> float:
        """Level of each test: ``alpha / ceil(horizon / check_every)``."""
        return self._check_alpha

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Size, mean and quantiles (p05, p25, p50, p75, p95) of the reference and of the current window."""
        return {"reference": _describe(self._reference), "window": _describe(self._window)}


def _describe(values: list[float]) -> dict[str, float | int]:
    """``values`` is sorted; empty gives only ``n``."""
    n = len(values)
    out: dict[str, float | int] = {"n": n}
    if not n:
        return out
    out["mean"] = math.fsum(values) / n
    for q in (5, 25, 50, 75, 95):
        out[f"p{q:02d}"] = values[min(n - 1, int(q / 100 * n))]
    return out
