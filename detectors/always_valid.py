"""What the always-valid two-arm tests of model versions share.

The normal-mixture formulas (:func:`mixture_log_lr`, :func:`confidence_half_width`; the method is
described in :mod:`detectors.msprt`), the running p-value, confidence sequence and decision of a test
(:class:`_AlwaysValidTest`), and which versions are live together, with one test per live pair
(:class:`LiveVersionPairs`). The tests: :mod:`detectors.msprt` (one Bernoulli stream) and
:mod:`detectors.calibrated_comparison` (human-calibrated rates per dimension).
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import Any, Self

from detectors.base import Detector

NAN = math.nan
ARMS = ("control", "treatment")
DECISIONS = ("continue", "worse", "better")


def _check_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low < value < high:
        raise ValueError(f"{name} must be a number in ({low}, {high}), got {value!r}")
    return float(value)


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def mixture_log_lr(d: float, s2: float, tau2: float, theta0: float = 0.0) -> float:
    """``ln Lambda(theta0)`` of the normal-mixture SPRT for a mean difference ``d`` of variance ``s2``."""
    return 0.5 * math.log(s2 / (s2 + tau2)) + tau2 * (d - theta0) ** 2 / (2.0 * s2 * (s2 + tau2))


def confidence_half_width(s2: float, tau2: float, alpha: float) -> float:
    """Half-width ``h`` of the time-``n`` interval ``{theta0 : Lambda(theta0) < 1 / alpha}``."""
    return math.sqrt(
        2.0 * s2 * (s2 + tau2) / tau2 * (math.log(1.0 / alpha) + 0.5 * math.log((s2 + tau2) / s2))
    )


def stratum_sums(open_: Sequence[float], closed: Sequence[float]) -> tuple[float, float, float, float]:
    """Time strata (``detectors.msprt``): ``(sum w d, sum w, sum w^2 / n_c, sum w^2 / n_t)`` of the closed
    strata's sums ``closed`` with the open stratum's counts ``open_`` = ``[n_c, sum_c, n_t, sum_t]`` added,
    ``w = n_c n_t / (n_c + n_t)`` and ``d = sum_t / n_t - sum_c / n_c`` each stratum's difference. A stratum
    where an arm is empty adds nothing."""
    weighted, weight, over_c, over_t = closed
    n_c, x_c, n_t, x_t = open_
    if n_c and n_t:
        w = n_c * n_t / (n_c + n_t)
        weighted, weight = weighted + w * (x_t / n_t - x_c / n_c), weight + w
        over_c, over_t = over_c + w * w / n_c, over_t + w * w / n_t
    return weighted, weight, over_c, over_t


def _check_stratum_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"stratum_seconds must be a number, got {value!r}")
    if not 0 <= value < math.inf:
        raise ValueError(f"stratum_seconds must be >= 0 and finite, got {value!r}")
    return value


def stratum_of(ts: float, stratum_seconds: float) -> int | None:
    """The time stratum of event time ``ts``: its ``stratum_seconds`` slot, or None (one stratum) for 0."""
    return int(ts // stratum_seconds) if stratum_seconds else None


class _AlwaysValidTest(Detector):
    """What the always-valid two-arm tests share: the running p-value, the confidence sequence for the lift
    and the final decision, with their read-only views, and the checks of their common parameters.
    Subclasses keep the arm counts and the lift estimate, and call :meth:`_advance` on every update once
    both arms are large enough to test."""

    def __init__(self, alpha: float, tau2: float, min_samples: int) -> None:
        _check_fraction("alpha", alpha)
        _check_fraction("tau2", tau2, 0.0, math.inf)
        _check_count("min_samples", min_samples, 1)
        self.alpha = alpha
        self.tau2 = tau2
        self.min_samples = min_samples

    def _reset_test(self) -> None:
        self._p_value = 1.0
        self._interval = [-1.0, 1.0]  # the lift is a difference of two rates
        self._decision = "continue"
        self._decided_now = False
        self._decided_at = [0, 0]  # arm counts (control, treatment) when decided

    def _reset_strata(self) -> None:
        """Time strata (``detectors.msprt``): the open stratum's key and counts ``[n_c, sum_c, n_t, sum_t]``,
        and the closed strata's sums ``[sum w d, sum w, sum w^2 / n_c, sum w^2 / n_t]``."""
        self._stratum: int | None = None
        self._open: list[float] = [0, 0, 0, 0]
        self._closed = [0.0, 0.0, 0.0, 0.0]

    def _enter_stratum(self, stratum: int | None) -> None:
        """Close the open stratum (its terms of :func:`stratum_sums` added to the closed sums) and open
        ``stratum``, unless both are numbered and it is the earlier: a late observation counts in the open
        stratum. Called when ``stratum`` is not the open one."""
        current = self._stratum
        if stratum is not None and current is not None and stratum < current:
            return
        self._closed = list(stratum_sums(self._open, self._closed))
        self._stratum = stratum
        self._open = [0, 0, 0, 0]

    def _advance(self, d: float, s2: float, p: float, worse: bool) -> bool:
        """Test the lift estimate ``d`` of variance ``s2``, ``p`` the p-value of ``lift = 0`` now; true when
        this reached the decision (``worse`` or ``better``): the caller then sets ``_decided_at``."""
        self._decided_now = False
        self._p_value = min(self._p_value, p)
        h = confidence_half_width(s2, self.tau2, self.alpha)
        low, high = max(self._interval[0], d - h), min(self._interval[1], d + h)
        if low <= high:  # an empty intersection (rare, plug-in variance) keeps the last interval
            self._interval = [low, high]
        if self._decision == "continue" and self._p_value <= self.alpha:
            self._decision = "worse" if worse else "better"
            self._decided_now = True
        return self._decided_now

    @property
    def p_value(self) -> float:
        """Always-valid p-value of ``lift = 0``: non-increasing, 1 until the minimum counts are reached."""
        return self._p_value

    @property
    def interval(self) -> tuple[float, float]:
        """Always-valid ``1 - alpha`` confidence sequence for the lift (running intersection)."""
        return (self._interval[0], self._interval[1])

    @property
    def decision(self) -> str:
        """``continue``, ``worse`` or ``better`` (for the treatment); final once not ``continue``."""
        return self._decision

    @property
    def decided_now(self) -> bool:
        """True on the update that reached the decision."""
        return self._decided_now

    @property
    def decided_at(self) -> tuple[int, int] | None:
        """Arm counts ``(control, treatment)`` when the decision was reached (class doc), or None."""
        return None if self._decision == "continue" else (self._decided_at[0], self._decided_at[1])


class LiveVersionPairs(Detector, metaclass=ABCMeta):
    """Which model versions serve one stream at the same time, and one test per ordered live pair.

    A version is *live* while it was seen within ``horizon_seconds`` of the newest event time. Each pair of
    live versions gets a test from :meth:`_new_test`: control = the version first seen earlier, treatment =
    the newer one. A pair live again after it ended (a canary paused longer than the horizon) gets a fresh
    test, its next :meth:`episode`: the old one's decision is final, and would never fire again. A
    comparison dropped by its owner and made again counts episodes from 1 again: :attr:`created` (its first
    turn's event time) tells the two apart. At most
    ``max_versions`` versions are tracked (the least recently seen is forgotten
    with its tests). Subclasses feed the tests (:class:`VersionComparison`: one Bernoulli stream;
    ``detectors.calibrated_comparison``: human-calibrated rates per dimension).
    """

    def __init__(self, horizon_seconds: float = 3600.0, max_versions: int = 8) -> None:
        _check_fraction("horizon_seconds", horizon_seconds, 0.0, math.inf)
        _check_count("max_versions", max_versions, 2)
        self.horizon_seconds = horizon_seconds
        self.max_versions = max_versions

    def _reset(self) -> None:
        self._seen: dict[str, list[float]] = {}  # version -> [first ts, last ts]
        self._tests: dict[str, dict[str, Any]] = {}  # control -> treatment -> test
        self._live: list[list[str]] = []  # pairs live together at the last update
        self._events: list[list[str]] = []
        self._watermark = -math.inf
        self._episodes: dict[str, int] = {}  # "control|treatment" -> episodes after the first
        self._created: float | None = None  # the first turn's event time (not in state until 2026-11-26)
        self._closed_at: float | None = None  # the watermark when closed without a turn (close())

    @abstractmethod
    def _new_test(self) -> Any:
        """A fresh test for a newly live pair."""

    @abstractmethod
    def _dump_test(self, test: Any) -> Any:
        """The test's JSON-native state."""

    @abstractmethod
    def _load_test(self, data: Any) -> Any:
        """The test written by :meth:`_dump_test`."""

    def _arrive(self, version: str, ts: float) -> list[tuple[str, str, Any]]:
        """Record a turn of ``version`` at ``ts``: ``(control, treatment, test)`` of every pair it is live in
        now (tests created as needed), after which the caller feeds the tests and calls :meth:`_settle`."""
        self._events = []
        at = float(ts)
        if self._watermark == -math.inf:  # the first turn
            self._created = at
        if at > self._watermark:
            self._watermark = at
        seen = self._seen.get(version)
        if seen is None:
            self._seen[version] = seen = [at, at]
        elif ts > seen[1]:  # the latest time (an int ts is kept as given, as max would)
            seen[1] = ts
        # The first time stays the arrival's, never lowered by a late turn: it orders each pair (control
        # first), and a late turn of the newer version that flipped the order ended the pair's test (a
        # regression read as resolved) and started an empty one the other way round.
        if len(self._seen) > self.max_versions:
            stalest = min(self._seen, key=lambda v: (self._seen[v][1], v))
            self._forget(stalest)
            if stalest == version:  # a late turn of a version not tracked: too old to be live with any
                return []
        if self._closed_at is not None:
            if at <= self._closed_at:  # a late turn of a closed comparison: in no pair
                return []
            self._closed_at = None
        live_since = self._watermark - self.horizon_seconds
        if seen[1] < live_since:  # a late turn of a version no longer live: in no pair (nor a new episode)
            return []
        pairs = []
        tests = self._tests
        for other, (_, last) in self._seen.items():
            if other == version or last < live_since:
                continue
            control, treatment = self._order(version, other)
            by_treatment = tests.get(control)
            if by_treatment is None:
                tests[control] = by_treatment = {}
            test = by_treatment.get(treatment)
            if test is None or [control, treatment] not in self._live:
                if test is not None:  # live again after it ended: a new episode
                    name = f"{control}|{treatment}"
                    self._episodes[name] = self._episodes.get(name, 0) + 1
                test = by_treatment[treatment] = self._new_test()
            pairs.append((control, treatment, test))
        return pairs

    def _settle(self) -> None:
        """After :meth:`_arrive`: pairs no longer live together become ``ended`` events."""
        live = self.live_pairs
        if self._live:
            self._events.extend([*pair, "ended"] for pair in self._live if pair not in live)
        self._live = live

    def close(self) -> Self:
        """End every pair live together without a turn (the stream stopped): each becomes an ``ended`` event
        (:attr:`events`), as turns past the horizon would make it, and no pair is live until a turn newer than
        the newest one comes (:attr:`last_seen` is kept).

        >>> from detectors.msprt import VersionComparison
        >>> pairs = VersionComparison().update("v1", False, ts=1.0).update("v2", False, ts=2.0)
        >>> pairs.live_pairs, pairs.close().events, pairs.live_pairs, pairs.last_seen
        ([['v1', 'v2']], [('v1', 'v2', 'ended')], [], 2.0)
        >>> pairs.update("v2", False, ts=1.5).live_pairs, pairs.update("v2", False, ts=9.0).live_pairs
        ([], [['v1', 'v2']])
        """
        self._events = []
        if self._watermark != -math.inf:
            self._closed_at = self._watermark
        self._settle()  # every pair live at the last update ends: none is live now
        return self

    def _order(self, a: str, b: str) -> tuple[str, str]:
        return (a, b) if (self._seen[a][0], a) <= (self._seen[b][0], b) else (b, a)

    def episode(self, control: str, treatment: str) -> int:
        """The pair's episode: 1 for its first time live together, one more each time it is live again."""
        return 1 + self._episodes.get(f"{control}|{treatment}", 0)

    def _forget(self, version: str) -> None:
        del self._seen[version]
        self._tests.pop(version, None)
        for tests in self._tests.values():
            tests.pop(version, None)

    @property
    def live_pairs(self) -> list[list[str]]:
        """``[control, treatment]`` of every pair of versions live together now."""
        if (
            len(self._seen) < 2 or self._closed_at is not None
        ):  # one version tracked (most streams), or closed
            return []
        live_since = self._watermark - self.horizon_seconds
        live = [v for v, seen in self._seen.items() if seen[1] >= live_since]
        if len(live) < 3:  # most streams run one version at a time, or two (a canary)
            return [list(self._order(live[0], live[1]))] if len(live) == 2 else []
        live.sort()
        return sorted(list(self._order(a, b)) for i, a in enumerate(live) for b in live[i + 1 :])

    @property
    def events(self) -> list[tuple[str, str, str]]:
        return [(c, t, what) for c, t, what in self._events]

    @property
    def eventful(self) -> bool:
        """True when the last update left :attr:`events` (most leave none)."""
        return bool(self._events)

    @property
    def versions(self) -> list[str]:
        return sorted(self._seen)

    @property
    def last_seen(self) -> float | None:
        """The newest event time a turn brought (None before any): for its owner to tell an idle
        comparison."""
        return None if self._watermark == -math.inf else self._watermark

    @property
    def created(self) -> float | None:
        """The event time of the first turn (None before any, or a comparison from state written until
        2026-11-26, which did not record it): for its owner to tell its episodes from those of a comparison
        it dropped before.

        >>> from detectors.msprt import VersionComparison
        >>> VersionComparison().update("v1", False, ts=7.0).update("v2", True, ts=3.0).created
        7.0
        """
        return self._created

    def first_seen(self, version: str) -> float | None:
        """Event time ``version`` was first seen (None if not tracked)."""
        seen = self._seen.get(version)
        return None if seen is None else seen[0]

    def to_dict(self) -> dict[str, Any]:
        return self._dict_with(
            {
                "_seen": {v: list(s) for v, s in self._seen.items()},
                "_tests": {
                    c: {t: self._dump_test(x) for t, x in by.items()} for c, by in self._tests.items()
                },
                "_live": [list(p) for p in self._live],
                "_events": [list(e) for e in self._events],
                # JSON has no infinity: a comparison that saw nothing has no watermark
                "_watermark": None if self._watermark == -math.inf else self._watermark,
                "_episodes": dict(self._episodes),
                "_created": self._created,
                # only once closed: state a comparison never closed writes stays readable by code before
                **({} if self._closed_at is None else {"_closed_at": self._closed_at}),
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        fields = ("_seen", "_tests", "_live", "_events", "_watermark", "_episodes", "_created", "_closed_at")
        comparison, state = cls._new_from(data, fields)
        comparison._seen = {v: list(s) for v, s in state["_seen"].items()}
        comparison._tests = {
            c: {t: comparison._load_test(x) for t, x in by.items()} for c, by in state["_tests"].items()
        }
        comparison._live = [list(p) for p in state["_live"]]
        comparison._events = [list(e) for e in state["_events"]]
        watermark = state["_watermark"]
        comparison._watermark = -math.inf if watermark is None else float(watermark)
        comparison._episodes = dict(state.get("_episodes", {}))  # absent in state written before 2026-11-25
        comparison._created = state.get("_created")  # absent in state written until 2026-11-26
        comparison._closed_at = state.get("_closed_at")  # absent in state written before closing silent ones
        return comparison
