"""Volume and latency anomalies of one segment's turns: two-sided CUSUMs on a learned baseline.

river's ``PageHinkley`` and ``ADWIN`` compute the same kind of statistic, but their state can only be
persisted by pickling, and unpickling what is read back from a changelog topic would let whoever can write
that topic run code. This detector keeps JSON-native state instead (see ``detectors/base.py``).
"""

from __future__ import annotations

import math
from typing import Any, Self

from detectors.base import Detector

#: Least spread of log latency assumed: 5%
LATENCY_SD_FLOOR = 0.05


class _Cusum:
    """Standardised two-sided CUSUM over a baseline learned in ``warmup`` samples, then followed (each
    sample with weight ``follow``) while neither side is half-way to an alarm (state: a plain dict)."""

    @staticmethod
    def fresh() -> dict[str, Any]:
        return {"n": 0, "mean": 0.0, "m2": 0.0, "up": 0.0, "down": 0.0, "alarm": None, "since": None}

    @staticmethod
    def update(
        s: dict[str, Any],
        x: float,
        ts: float,
        warmup: int,
        follow: float,
        k: float,
        h: float,
        sd_floor: float,
    ) -> list[tuple[str, float | None]]:
        """Add ``x``; returns the events it causes, each with the start of the alarm it concerns:
        ``("resolved", since)`` when the alarmed side's statistic is back to 0, then ``("up"|"down", ts)``
        when a side crosses ``h`` with no alarm open (a surge that turns into a collapse ends one alarm and
        starts the other). ``sd_floor``: the least baseline spread assumed (a warm-up of identical values
        has none, and the next different value would be 10^8 deviations off)."""
        if s["n"] < warmup:  # Welford: the baseline's mean and spread
            s["n"] += 1
            delta = x - s["mean"]
            s["mean"] += delta / s["n"]
            s["m2"] += delta * (x - s["mean"])
            return []
        var = s.get("var")  # the followed variance (absent in state written before 2026-11-25)
        if var is None:
            var = s["m2"] / max(s["n"] - 1, 1)
        sd = max(math.sqrt(var), sd_floor)
        z = (x - s["mean"]) / sd
        # capped at 2h: the statistic comes back to 0 soon after the shift ends, so the alarm resolves
        s["up"] = min(max(0.0, s["up"] + z - k), 2 * h)
        s["down"] = min(max(0.0, s["down"] - z - k), 2 * h)
        events: list[tuple[str, float | None]] = []
        if s["alarm"] is not None and s[s["alarm"]] == 0.0:
            events.append(("resolved", s["since"]))
            s["alarm"] = None
        if s["alarm"] is None and (s["up"] > h or s["down"] > h):
            s["alarm"] = "up" if s["up"] > h else "down"
            s["since"] = ts
            events.append((str(s["alarm"]), ts))
        if s["alarm"] is None and max(s["up"], s["down"]) < h / 2:
            # the baseline follows slow changes (a daily cycle), never an alarm or a shift on its way to one
            delta = x - s["mean"]
            s["mean"] += follow * delta
            s["var"] = (1.0 - follow) * (var + follow * delta * delta)
        return events


class TrafficWatch(Detector):
    """Turns per ``bucket_seconds`` (volume) and ``latency_ms`` of one segment, each against its baseline.

    Volume: the log of each closed minute's count (empty minutes count as 0) feeds a two-sided CUSUM with
    reference ``k`` and threshold ``volume_threshold`` in baseline standard deviations, after
    ``volume_warmup`` minutes. Latency: the log of each turn's latency feeds the same statistic with
    ``latency_threshold`` (higher: one sample per turn, not per minute), after ``latency_warmup`` turns;
    only rises alarm. After an update, ``volume_event`` / ``latency_event`` say ``"up"``, ``"down"`` or
    ``"resolved"`` when something started or ended (else None). A minute closes once a turn
    ``late_buckets`` minutes after it arrives (on Kafka a journey's turns come from every input partition,
    and one lagging partition must not make its minute look empty); later turns only count for latency.
    After the warm-ups the baselines follow slow changes while no alarm is open, exponentially over
    ``volume_memory`` minutes and ``latency_memory_seconds`` of event time (whatever the turns per minute),
    and not while either side of a CUSUM is half-way to an alarm: a journey's daily cycle is not an anomaly
    (with a baseline frozen after the warm-up, a +-30% daily swing raised a drop every night and a surge
    every day), a change within minutes is, and so is a slowdown that builds up over a quarter of an hour.

    Time without turns is no traffic to learn from. During the volume warm-up, a gap of more empty minutes
    than the watch has watched, and than a third of the warm-up, starts the warm-up again at the turn after
    it (a turn dated 45 minutes early, read first, made a warm-up of empty minutes: the journey's real
    traffic was a surge that never resolved, and its real drop was never raised); the third doubles with
    each restart, so a journey of a few turns an hour still warms up. After the warm-up, a silence counts
    for at most half the memory: ``volume_memory // 2`` empty minutes, enough to raise a drop at its start
    (hours of them became a quiet journey's baseline), and ``latency_memory_seconds / 2`` of event time
    (the first latency after hours weighed as the whole baseline, whose spread fell to nothing, and ordinary
    latencies after it raised a rise that never resolved).

    >>> import random
    >>> rng = random.Random(2)
    >>> watch = TrafficWatch()
    >>> events = []
    >>> for minute in range(180):
    ...     turns = rng.randint(45, 55) if minute < 120 else rng.randint(5, 10)  # traffic collapses
    ...     for i in range(turns):
    ...         latency = rng.lognormvariate(6.5, 0.3) * (3.0 if 60 <= minute < 90 else 1.0)
    ...         watch = watch.update(minute * 60 + i * 60 / turns, latency)
    ...         if watch.volume_event or watch.latency_event:
    ...             events.append((minute, watch.volume_event, watch.latency_event))
    >>> [e for e in events if e[2]][:2]
    [(60, None, 'up'), (90, None, 'resolved')]
    >>> [e for e in events if e[1]][:1]
    [(123, 'down', None)]
    """

    def __init__(
        self,
        bucket_seconds: float = 60.0,
        volume_warmup: int = 30,
        volume_threshold: float = 10.0,
        latency_warmup: int = 500,
        latency_threshold: float = 20.0,
        k: float = 1.0,
        late_buckets: int = 2,
        volume_memory: int = 30,
        latency_memory_seconds: float = 3600.0,
    ) -> None:
        if not bucket_seconds > 0:
            raise ValueError("bucket_seconds must be positive")
        if volume_warmup < 2 or latency_warmup < 2:
            raise ValueError("warm-ups need at least 2 samples")
        if volume_memory < 2:
            raise ValueError("volume_memory needs at least 2 buckets")
        if not 0 < latency_memory_seconds < math.inf:
            raise ValueError(f"latency_memory_seconds must be positive, got {latency_memory_seconds}")
        if isinstance(late_buckets, bool) or not isinstance(late_buckets, int) or not 0 <= late_buckets <= 60:
            raise ValueError(f"late_buckets must be an integer in [0, 60], got {late_buckets!r}")
        self.bucket_seconds = bucket_seconds
        self.volume_warmup = volume_warmup
        self.volume_threshold = volume_threshold
        self.latency_warmup = latency_warmup
        self.latency_threshold = latency_threshold
        self.k = k
        self.late_buckets = late_buckets
        self.volume_memory = volume_memory
        self.latency_memory_seconds = latency_memory_seconds
        self._reset()

    def _reset(self) -> None:
        self._bucket: int | None = None  # the newest bucket
        self._open: list[int] = []  # turns of the open buckets, the oldest first, the newest last
        self._last_closed = 0  # turns in the bucket that closed last
        self._volume = _Cusum.fresh()
        self._latency = _Cusum.fresh()
        self._volume_events: list[list[Any]] = []  # [event, since, turns, direction] of this update
        self._latency_event: str | None = None
        self._latency_event_since: float | None = None  # the start of the alarm the latency event concerns
        self._late = 0

    def update(self, ts: float, latency_ms: float | None = None) -> Self:
        self._volume_events = []
        self._latency_event = self._latency_event_since = None
        bucket = math.floor(ts / self.bucket_seconds)
        if self._bucket is None:
            self._bucket, self._open = bucket, [0]
        elif self._warm_up_again(bucket):
            restarts = self._volume.get("restarts", 0) + 1
            self._bucket, self._open, self._volume = bucket, [0], _Cusum.fresh() | {"restarts": restarts}
        if bucket > self._bucket:
            # the newest late_buckets + 1 buckets stay open for turns of lagging partitions; the older ones
            # close, with the first empty minutes of a silence (at least late_buckets of them: the open
            # buckets before this turn's are empty then)
            silence = max(self.volume_memory // 2, self.late_buckets)
            pending = self._open + [0] * (min(bucket - self._bucket - 1, silence) + 1)
            keep = self.late_buckets + 1
            oldest = self._bucket - len(self._open) + 1  # the first open bucket, the first to close
            closed, self._open = pending[:-keep], pending[-keep:]
            for i, count in enumerate(closed):
                direction = self._volume["alarm"]
                # a count's own noise: the log of a Poisson count of mean m varies by about 1/sqrt(m)
                floor = 1.0 / math.sqrt(max(math.expm1(self._volume["mean"]), 1.0))
                # an alarm starts at the start of its bucket (several buckets closing at once must not
                # give their alarms one start, their escalations one id), never after this turn
                events = _Cusum.update(
                    self._volume,
                    math.log1p(count),
                    min((oldest + i) * self.bucket_seconds, ts),
                    self.volume_warmup,
                    1.0 / self.volume_memory,
                    self.k,
                    self.volume_threshold,
                    floor,
                )
                # several buckets may close at once, and one may end an alarm and start another
                # each with the direction of the alarm it concerns (the one that ended, for "resolved")
                self._volume_events.extend(
                    [event, since, count, direction if event == "resolved" else event]
                    for event, since in events
                )
            self._bucket = bucket
            if closed:
                self._last_closed = closed[-1]
        at = bucket - self._bucket + len(self._open) - 1
        if at >= 0:
            self._open[at] += 1
        else:
            self._late += 1
        if latency_ms is not None and latency_ms > 0:
            # a weight by event time since the last latency: the same memory at 10 or 10,000 turns a minute
            latency = self._latency
            since_before = latency["since"]
            last = latency.get("t", ts)
            elapsed = min(ts - last, self.latency_memory_seconds / 2)  # a silence: at most half the memory
            latency["t"] = max(ts, last)
            follow = -math.expm1(-elapsed / self.latency_memory_seconds) if elapsed > 0 else 0.0
            events = _Cusum.update(
                latency,
                math.log(latency_ms),
                ts,
                self.latency_warmup,
                follow,
                self.k,
                self.latency_threshold,
                LATENCY_SD_FLOOR,
            )
            if events and events[-1][0] == "down":  # faster answers are not an incident
                events.pop()
                # no alarm, and the last one's start back (a sample that ended a rise and went far below
                # the baseline resolved the rise: its start names the escalation that resolves)
                latency["alarm"], latency["down"], latency["since"] = None, 0.0, since_before
                if events:
                    latency["since"] = events[-1][1]
            if events:
                self._latency_event, self._latency_event_since = events[-1]
        return self

    def _warm_up_again(self, bucket: int) -> bool:
        """Whether ``bucket``, after the newest, starts the volume warm-up again: still warming up, and more
        empty minutes before it than the watch has watched and than a third of the warm-up, doubled at each
        restart (``restarts``: absent in state written before 2026-11-26, and in a watch never restarted)."""
        assert self._bucket is not None
        volume = self._volume
        watched = volume["n"] + len(self._open)
        longer = max(watched, self.volume_warmup // 3 * 2 ** volume.get("restarts", 0))
        return volume["n"] < self.volume_warmup and bucket - self._bucket - 1 > longer

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        # state written before volume_events (one event per update, transient): read without it; and before
        # late buckets (one open bucket's count)
        state = data.get("state")
        if isinstance(state, dict) and "_volume_event" in state:
            state = {k: v for k, v in state.items() if k != "_volume_event"} | {"_volume_events": []}
            data = {**data, "state": state}
        if isinstance(state, dict) and "_count" in state:
            state = {k: v for k, v in state.items() if k != "_count"} | {"_open": [state["_count"]]}
            data = {**data, "state": state}
        return super().from_dict(data)

    @property
    def volume_event(self) -> str | None:
        """The last volume event of this update (see :attr:`volume_events`)."""
        return self._volume_events[-1][0] if self._volume_events else None

    @property
    def volume_events(self) -> list[tuple[str, float | None, int, str]]:
        """Every volume event of this update, in order: the event, the start and direction (``"up"`` or
        ``"down"``) of the alarm it concerns (the one that ended, for ``"resolved"``), and the turns of the
        bucket whose close caused it. A gap in traffic closes several buckets in one update."""
        return [(event, since, count, direction) for event, since, count, direction in self._volume_events]

    @property
    def latency_event(self) -> str | None:
        return self._latency_event

    @property
    def latency_event_since(self) -> float | None:
        """The start of the alarm :attr:`latency_event` concerns (the one that ended, for ``"resolved"``)."""
        return self._latency_event_since

    @property
    def volume_baseline(self) -> float:
        """Usual turns per bucket (geometric mean of the baseline)."""
        return math.expm1(self._volume["mean"])

    @property
    def volume_last(self) -> int:
        """Turns in the bucket that closed last."""
        return self._last_closed

    @property
    def latency_baseline_ms(self) -> float:
        return math.exp(self._latency["mean"]) if self._latency["n"] else math.nan

    @property
    def volume_since(self) -> float | None:
        """Event time the current (or last) volume alarm started."""
        since = self._volume["since"]
        return None if since is None else float(since)

    @property
    def last_seen(self) -> float | None:
        """The start of the newest bucket a turn fell in (None before any): when the segment was last seen,
        to a bucket, for its owner to tell an idle watch."""
        return None if self._bucket is None else self._bucket * self.bucket_seconds

    @property
    def volume_alarm(self) -> str | None:
        """The open volume alarm's direction (``"up"`` or ``"down"``), or None."""
        alarm = self._volume["alarm"]
        return None if alarm is None else str(alarm)

    @property
    def latency_alarm(self) -> str | None:
        """``"up"`` while a latency rise is open, else None."""
        alarm = self._latency["alarm"]
        return None if alarm is None else str(alarm)

    @property
    def latency_since(self) -> float | None:
        since = self._latency["since"]
        return None if since is None else float(since)

    @property
    def late(self) -> int:
        return self._late
