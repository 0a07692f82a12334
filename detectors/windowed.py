"""Event-time sliding windows over any detector whose state can be merged (``merge(other)`` adds counts).

Events are routed to the bucket of their *own* timestamp, ``floor(ts / bucket_seconds) * bucket_seconds``.
The watermark is the largest event time seen (or passed to :meth:`EventTimeWindows.advance`). The window is
the ``window_seconds / bucket_seconds`` most recent buckets, the newest holding the watermark, so it spans
``[oldest_start, newest_start + bucket_seconds)``: between ``window_seconds - bucket_seconds`` and
``window_seconds`` of event time before the watermark. A late event still updates its own bucket while that
bucket is inside the window; older events are dropped and counted in ``too_late``. Buckets that leave the
window are deleted, so memory is bounded by the number of buckets per window.

Each bucket's state is the inner detector's JSON-native state (``to_dict()["state"]``), keyed by the bucket
start as a decimal string, so the whole ring round-trips through JSON like every other detector.
"""

from __future__ import annotations

import copy
import functools
import importlib
import math
from typing import Any

from detectors.base import Detector


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def resolve_detector(name: str) -> type[Detector]:
    """A mergeable detector class from its class name (``"AgreementStats"``) or dotted path."""
    if "." in name:
        module, _, attr = name.rpartition(".")
        cls = getattr(importlib.import_module(module), attr, None)
    else:
        importlib.import_module("detectors")  # loads every exported detector
        matches = {c for c in _subclasses(Detector) if c.__name__ == name}
        if len(matches) > 1:
            raise ValueError(f"detector name {name!r} is ambiguous; use its dotted path")
        cls = matches.pop() if matches else None
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise ValueError(f"{name!r} is not a detector class")
    if not callable(getattr(cls, "merge", None)):
        raise ValueError(f"detector {name!r} has no merge(other) method, so its windows cannot be combined")
    return cls


class EventTimeWindows(Detector):
    """A ring of per-bucket ``detector`` states; :meth:`window` merges the buckets of the current window.

    ``detector`` names the inner class (``"AgreementStats"``, ``"PredictionPoweredRate"``, ... or a dotted
    path) and ``params`` its constructor arguments. ``update(ts_seconds, *args)`` forwards ``*args`` to
    the inner ``update`` of the bucket holding ``ts_seconds``.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> windows = EventTimeWindows("AgreementStats", window_seconds=3600, bucket_seconds=300)
    >>> for i in range(2000):
    ...     ts = 10 * i + rng.uniform(-120, 0)  # up to two minutes late
    ...     human = "fail" if rng.random() < 0.1 else "pass"
    ...     judge = human if rng.random() < 0.9 else "pass"
    ...     windows = windows.update(ts, judge, human)
    >>> round(windows.watermark, 1), windows.bucket_starts[0], windows.too_late
    (19957.9, 16500, 0)
    >>> hour = windows.window()
    >>> hour.n, round(hour.cohen_kappa, 3)
    (342, 0.946)
    >>> windows.update(60.0, "pass", "pass").too_late  # older than the window: dropped
    1
    """

    def __init__(
        self,
        detector: str = "AgreementStats",
        params: dict[str, Any] | None = None,
        window_seconds: int = 3600,
        bucket_seconds: int = 300,
    ) -> None:
        for name, value in (("window_seconds", window_seconds), ("bucket_seconds", bucket_seconds)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer number of seconds, got {value!r}")
        if window_seconds % bucket_seconds:
            raise ValueError(
                f"window_seconds ({window_seconds}) must be a multiple of bucket_seconds ({bucket_seconds})"
            )
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"params must be a dict of constructor arguments, got {params!r}")
        self.detector = detector
        self.params = params
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self._fresh()  # fails early on a bad class name or bad params
        self._reset()

    def _reset(self) -> None:
        # bucket start (decimal string) -> the inner detector's private state
        self._buckets: dict[str, dict[str, Any]] = {}
        self._watermark: float | None = None
        self._too_late = 0
        self._n = 0

    # Not a property and not private state: it is derived from a parameter, and is pickled by reference.
    @functools.cached_property
    def detector_class(self) -> type[Detector]:
        return resolve_detector(self.detector)

    def _fresh(self) -> Detector:
        return self.detector_class(**(self.params or {}))

    def _bucket_start(self, ts: float) -> int:
        return int(ts // self.bucket_seconds) * self.bucket_seconds

    def _oldest_start(self) -> int | None:
        if self._watermark is None:
            return None
        return self._bucket_start(self._watermark) - self.window_seconds + self.bucket_seconds

    def _check_ts(self, ts: float) -> float:
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise ValueError(f"ts_seconds must be a finite number, got {ts!r}")
        return float(ts)

    def advance(self, ts_seconds: float) -> EventTimeWindows:
        """Move the watermark to ``ts_seconds`` (if later) without an event, expiring old buckets."""
        ts = self._check_ts(ts_seconds)
        if self._watermark is None or ts > self._watermark:
            self._watermark = ts
            oldest = self._oldest_start()
            assert oldest is not None
            for key in [k for k in self._buckets if int(k) < oldest]:
                del self._buckets[key]
        return self

    def update(self, ts_seconds: float, *args: Any) -> EventTimeWindows:
        ts = self._check_ts(ts_seconds)
        start = self._bucket_start(ts)
        watermark = ts if self._watermark is None else max(self._watermark, ts)
        if start < self._bucket_start(watermark) - self.window_seconds + self.bucket_seconds:
            self._too_late += 1  # older than the window: ts < watermark, so nothing else moves
            return self
        key = str(start)
        # Run the inner detector on the stored state in place (no copy per event). Detectors validate their
        # arguments before changing state, so a rejected event leaves the ring, and the watermark, untouched.
        inner: Any = self._fresh()
        inner.__dict__.update(self._buckets.get(key, {}))
        inner.update(*args)
        self.advance(ts)
        self._buckets[key] = {k: v for k, v in vars(inner).items() if k.startswith("_")}
        self._n += 1
        return self

    def remove(self, ts_seconds: float, *args: Any) -> EventTimeWindows:
        """Undo an ``update(ts_seconds, *args)`` with the inner detector's ``remove(*args)`` while its bucket
        is in the window (one that left it, or an event too late for it, holds nothing to undo); the
        watermark, :attr:`n` and :attr:`too_late` stay. The inner ``remove`` raises if the bucket does not
        hold it, and changes nothing then."""
        start = self._bucket_start(self._check_ts(ts_seconds))
        oldest = self._oldest_start()
        state = self._buckets.get(str(start))
        if state is None or oldest is None or start < oldest:
            return self
        inner: Any = self._fresh()
        inner.__dict__.update(state)  # in place, as update does
        inner.remove(*args)
        self._buckets[str(start)] = {k: v for k, v in vars(inner).items() if k.startswith("_")}
        return self

    def _restore(self, state: dict[str, Any]) -> Detector:
        inner = self._fresh()
        inner.__dict__.update(copy.deepcopy(state))
        return inner

    def bucket(self, start: int) -> Detector | None:
        """A copy of the detector of the bucket starting at ``start`` (``None`` if empty or expired)."""
        state = self._buckets.get(str(start))
        return None if state is None else self._restore(state)

    def bucket_state(self, start: int) -> dict[str, Any] | None:
        """The private state of the bucket starting at ``start`` itself, not a copy (``None`` if empty or
        expired): to read, never to change, where :meth:`bucket`'s copy would cost too much."""
        return self._buckets.get(str(start))

    def window(self) -> Detector:
        """A new inner detector holding the merged state of every bucket in the current window."""
        merged = self._fresh()
        for start in self.bucket_starts:
            merged.merge(self._restore(self._buckets[str(start)]))  # type: ignore[attr-defined]
        return merged

    @property
    def watermark(self) -> float | None:
        """The largest event time seen, in seconds (``None`` before the first event)."""
        return self._watermark

    @property
    def window_start(self) -> int | None:
        """Start of the oldest bucket of the current window (inclusive)."""
        return self._oldest_start()

    @property
    def window_end(self) -> int | None:
        """End of the newest bucket of the current window (exclusive)."""
        if self._watermark is None:
            return None
        return self._bucket_start(self._watermark) + self.bucket_seconds

    @property
    def bucket_starts(self) -> list[int]:
        """Starts of the non-empty buckets in the window, oldest first."""
        return sorted(int(k) for k in self._buckets)

    @property
    def too_late(self) -> int:
        """Events dropped because their bucket had already left the window."""
        return self._too_late

    @property
    def n(self) -> int:
        """Events accepted into a bucket (including ones whose bucket has since expired)."""
        return self._n
