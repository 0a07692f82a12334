"""Agreement of two raters overall, per segment value and over sliding event-time windows, as one aggregate.

Each judge/human pair is counted once overall, once under the value each segment (journey, intent, ...)
takes on its turn, and once in each event-time window by the *turn's* time, so a late label lands in the
window of its turn. Segment values per segment are bounded by ``max_values``: later new values share
``other``; a missing value counts as ``unknown``. Labels are bounded by the overall tracker's
``max_categories``: segment and window trackers count each pair in the cell the overall table does, so
they share its scale (later new labels as ``other``), and only the overall one counts ``folded_labels``.
Each segment value keeps the newest turn time of its pairs, so that its owner can drop the trackers of values
gone idle (a retired model version) with :meth:`AgreementBreakdown.drop_idle`, and the room goes to the next
new value. Its owner may stamp it with the newest time rater ``a`` was heard rating, pairs or not
(:meth:`AgreementBreakdown.hear`: a judge's verdicts, most of which no human labels), so that the time is kept
with the figures it keeps alive.
"""

from __future__ import annotations

from typing import Any, Self

from detectors.agreement_stats import AgreementStats, check_confidence_level
from detectors.base import Detector
from detectors.windowed import EventTimeWindows

DEFAULT_SEGMENTS = ("journey", "intent", "model_version", "channel", "modality")
DEFAULT_WINDOWS = {"1h": [3600, 300], "24h": [86400, 3600]}
OTHER = "other"
UNKNOWN = "unknown"


class AgreementBreakdown(Detector):
    """:class:`AgreementStats` overall, per ``segments`` value, and per window of ``windows``.

    ``windows`` maps a window name to ``[window_seconds, bucket_seconds]``. ``update(ts, segment, a, b)``
    adds one pair of labels (``a``: e.g. the judge, ``b``: the human) for a turn at event time ``ts``
    (Unix seconds) whose segment is ``segment`` (a dict; ``None`` when unknown).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(8)
    >>> breakdown = AgreementBreakdown(segments=["journey"], windows={"1h": [3600, 300]})
    >>> for i in range(3000):
    ...     journey = rng.choice(["shopper", "driver_support"])
    ...     human = "fail" if rng.random() < 0.2 else "pass"
    ...     accurate = rng.random() < (0.95 if journey == "shopper" else 0.75)
    ...     judge = human if accurate else rng.choice(["pass", "fail"])
    ...     breakdown = breakdown.update(6.0 * i, {"journey": journey}, judge, human)
    >>> round(breakdown.overall().cohen_kappa, 3)
    0.782
    >>> {v: round(s.cohen_kappa, 3) for v, s in breakdown.segment("journey").items()}
    {'driver_support': 0.649, 'shopper': 0.928}
    >>> hour = breakdown.window("1h")
    >>> hour.n, round(hour.percent_agreement, 3)
    (600, 0.915)
    >>> breakdown.window_bounds("1h")  # the 12 five-minute buckets up to the newest turn
    (14400, 18000)

    Model versions that turn over, one a day (room for two and ``other``): idle ones give theirs to new ones.

    >>> day = 86400.0
    >>> by_version = AgreementBreakdown(segments=["model_version"], windows={}, max_values=3)
    >>> for n in range(1, 5):
    ...     dropped = by_version.drop_idle(now=n * day, idle_seconds=1.5 * day)
    ...     by_version = by_version.update(n * day, {"model_version": f"v{n}"}, "pass", "pass")
    >>> list(by_version.segment("model_version")), dropped
    (['v3', 'v4'], [('model_version', 'v2')])
    """

    def __init__(
        self,
        segments: list[str] | None = None,
        windows: dict[str, list[int]] | None = None,
        max_values: int = 50,
        confidence_level: float = 0.95,
    ) -> None:
        segments = list(DEFAULT_SEGMENTS) if segments is None else list(segments)
        windows = {k: list(v) for k, v in (DEFAULT_WINDOWS if windows is None else windows).items()}
        if not all(isinstance(s, str) for s in segments) or len(set(segments)) != len(segments):
            raise ValueError(f"segments must be distinct names, got {segments!r}")
        for name, spec in windows.items():
            if not isinstance(name, str) or len(spec) != 2:
                raise ValueError(
                    f"windows must map a name to [window_seconds, bucket_seconds], got {windows!r}"
                )
        if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
            raise ValueError(f"max_values must be a positive integer, got {max_values!r}")
        check_confidence_level(confidence_level)
        self.segments = segments
        self.windows = windows
        self.max_values = max_values
        self.confidence_level = confidence_level
        self._reset()  # EventTimeWindows checks each window's sizes

    def _reset(self) -> None:
        self._overall = self._stats()
        self._segments: dict[str, dict[str, AgreementStats]] = {name: {} for name in self.segments}
        # segment -> value -> the newest turn time of its pairs
        self._last_seen: dict[str, dict[str, float]] = {name: {} for name in self.segments}
        self._heard: float | None = None  # the newest time stamped by hear()
        self._windows = {
            name: EventTimeWindows(
                "AgreementStats",
                {"confidence_level": self.confidence_level},
                window_seconds=spec[0],
                bucket_seconds=spec[1],
            )
            for name, spec in self.windows.items()
        }

    def _stats(self) -> AgreementStats:
        return AgreementStats(confidence_level=self.confidence_level)

    def update(self, ts: float, segment: dict[str, Any] | None, a: str, b: str) -> Self:
        if not isinstance(a, str) or not isinstance(b, str):
            raise ValueError(f"labels must be strings, got {a!r}, {b!r}")
        # one label scale for every tracker: a flood of new labels then grows no segment or window tracker
        a_cell, b_cell = self._overall.counted_as(a, b)
        for windows in self._windows.values():  # validates ts before anything changes
            windows.update(ts, a_cell, b_cell)
        self._overall.update(a, b)
        last_seen = self._last_seen
        for name, values in self._segments.items():
            value = segment.get(name) if segment else None
            value = UNKNOWN if value is None or value == "" else str(value)
            stats = values.get(value)
            if stats is None:
                if len(values) >= self.max_values - (OTHER not in values):
                    value = OTHER
                    stats = values.get(value)
                if stats is None:
                    stats = values[value] = self._stats()
            stats.update(a_cell, b_cell)
            seen = last_seen[name]
            newest = seen.get(value)
            if newest is None or ts > newest:
                seen[value] = float(ts)
        return self

    def drop_idle(self, now: float, idle_seconds: float) -> list[tuple[str, str]]:
        """Drop the trackers of the segment values whose newest pair's turn is more than ``idle_seconds``
        before ``now``, so that later new values take their room; the dropped ``(segment, value)`` pairs,
        sorted. A value with no time (state from before 2026-11-26) is stamped ``now``: idle from then on."""
        cutoff, dropped = now - idle_seconds, []
        for name, values in self._segments.items():
            seen = self._last_seen[name]
            for value in values.keys() - seen.keys():
                seen[value] = float(now)
            for value in sorted(value for value, newest in seen.items() if newest < cutoff):
                del values[value], seen[value]
                dropped.append((name, value))
        return sorted(dropped)

    def hear(self, ts: float) -> Self:
        """Stamp that rater ``a`` was heard rating at event time ``ts`` (a verdict of the judge, labelled by
        a human or not); the stamp only moves forward.

        >>> breakdown = AgreementBreakdown(segments=["journey"], windows={})
        >>> breakdown.heard is None, breakdown.hear(9.0).hear(4.0).heard
        (True, 9.0)
        """
        if self._heard is None or ts > self._heard:
            self._heard = float(ts)
        return self

    @property
    def heard(self) -> float | None:
        """The newest time stamped by :meth:`hear`; None if never stamped (or state from before
        2026-11-26)."""
        return self._heard

    def add_segment(self, name: str) -> Self:
        """Count pairs per value of segment ``name`` too, from the next pair on (an aggregate kept since
        before the segment existed); nothing if it is counted already.

        >>> breakdown = AgreementBreakdown(segments=["journey"], windows={}).update(0.0, None, "pass", "pass")
        >>> breakdown = breakdown.add_segment("judge_version").update(1.0, {"judge_version": "v2"}, "a", "b")
        >>> breakdown.segments
        ['journey', 'judge_version']
        >>> {v: s.n for v, s in breakdown.segment("judge_version").items()}, breakdown.n
        ({'v2': 1}, 2)
        """
        if name not in self._segments:
            self.segments.append(name)
            self._segments[name] = {}
            self._last_seen[name] = {}
        return self

    def overall(self) -> AgreementStats:
        """All pairs (the live tracker: read only)."""
        return self._overall

    @property
    def n(self) -> int:
        return self._overall.n

    @property
    def last_seen(self) -> float | None:
        """The newest turn time of the pairs its segment values hold (every pair counts under a value of
        each segment); None with no value (none kept since the last :meth:`drop_idle`) or none timed (state
        from before 2026-11-26).

        >>> breakdown = AgreementBreakdown(segments=["journey"], windows={})
        >>> breakdown = breakdown.update(7.0, {"journey": "a"}, "pass", "pass")
        >>> breakdown.update(5.0, None, "fail", "pass").last_seen
        7.0
        """
        return max((ts for seen in self._last_seen.values() for ts in seen.values()), default=None)

    @property
    def timed(self) -> bool:
        """Whether every segment value held has its newest turn time (not state from before 2026-11-26)."""
        return all(self._segments[name].keys() <= seen.keys() for name, seen in self._last_seen.items())

    def segment(self, name: str) -> dict[str, AgreementStats]:
        """``{value: tracker}`` of segment ``name``, sorted by value (live trackers: read only)."""
        return dict(sorted(self._segments[name].items()))

    def segment_value(self, name: str, value: str | None) -> AgreementStats | None:
        """The tracker of one segment value (``None`` for no value yet)."""
        key = UNKNOWN if value is None or value == "" else value
        return self._segments[name].get(key)

    def window(self, name: str) -> AgreementStats:
        """A new tracker holding the pairs of window ``name`` as of the newest turn seen."""
        return self._windows[name].window()  # type: ignore[return-value]

    def window_bounds(self, name: str) -> tuple[int | None, int | None]:
        """``(start, end)`` of window ``name`` in Unix seconds (end exclusive); ``None`` before any pair."""
        windows = self._windows[name]
        return (windows.window_start, windows.window_end)

    def too_late(self, name: str) -> int:
        """Pairs whose turn was already older than window ``name`` when they arrived."""
        return self._windows[name].too_late

    def to_dict(self) -> dict[str, Any]:
        return self._dict_with(
            {
                "_overall": self._overall.to_dict()["state"],
                "_segments": {
                    name: {v: s.to_dict()["state"] for v, s in values.items()}
                    for name, values in self._segments.items()
                },
                "_windows": {name: w.to_dict()["state"] for name, w in self._windows.items()},
                "_last_seen": {name: dict(seen) for name, seen in self._last_seen.items()},
                "_heard": self._heard,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        fields = ("_overall", "_segments", "_windows", "_last_seen", "_heard")
        breakdown, state = cls._new_from(data, fields)
        stats_params = breakdown._overall._get_params()

        def stats(s: dict[str, Any]) -> AgreementStats:
            return AgreementStats.from_dict({"type": "AgreementStats", "params": stats_params, "state": s})

        breakdown._overall = stats(state["_overall"])
        breakdown._segments = {
            name: {v: stats(s) for v, s in values.items()} for name, values in state["_segments"].items()
        }
        last_seen = state.get("_last_seen") or {}  # state from before 2026-11-26 has none
        breakdown._last_seen = {name: dict(last_seen.get(name) or {}) for name in breakdown._segments}
        breakdown._heard = state.get("_heard")  # absent in state written until 2026-11-26
        for name, windows in breakdown._windows.items():
            breakdown._windows[name] = EventTimeWindows.from_dict(
                {
                    "type": "EventTimeWindows",
                    "params": windows._get_params(),
                    "state": state["_windows"][name],
                }
            )
        return breakdown
