"""One segment's defect-rate spike detectors, one per defect category, updated together."""

from __future__ import annotations

import math
from typing import Any, Self

from detectors.base import Detector
from detectors.defect_rate_spike import DefectRateSpike, note_recent

#: Gaps between arrivals fade out of :attr:`CategorySpikes.typical_gap` over about this much time (a week:
#: weekly and daily rhythms are remembered, a change of traffic is learned within days).
GAP_MEMORY_SECONDS = 7 * 86400.0
#: A gap between arrivals counts at most this much in :attr:`CategorySpikes.typical_gap`: one outage of weeks
#: would otherwise stand for the slice's rhythm for weeks after it.
MAX_GAP_SECONDS = 86400.0
#: The longest gap between arrivals is kept per week of arrivals (from the epoch), this week's and the last:
#: :attr:`CategorySpikes.longest_gap` is the longest of the last 7 to 14 days, which holds the last weekend
#: (or long weekend) whatever the day, and a weekly batch's gap.
LONGEST_GAP_WEEK_SECONDS = 7 * 86400.0
#: A gap counts at most this much in :attr:`CategorySpikes.longest_gap`: the longest rhythm remembered.
MAX_LONGEST_GAP_SECONDS = 7 * 86400.0


class CategorySpikes(Detector):
    """A :class:`DefectRateSpike` per category, created on the category's first observation.

    ``update(judged, failed, ref)`` adds one turn: ``judged`` are the categories the turn was assessed
    on, ``failed`` those it failed (a subset). After an update, ``alarms`` and ``resolutions`` list the
    categories whose detector just fired or just resolved. Parameters go to every ``DefectRateSpike``.
    With ``ts`` (event time), :attr:`last_seen` is the newest one: for its owner to tell idle detectors.
    With ``arrival`` (when the turn came, on its owner's clock, which never goes back), :attr:`last_arrival`
    is the last one, :attr:`typical_gap` the slice's rhythm and :attr:`longest_gap` its longest recent pause:
    for its owner to tell a slice gone silent, whose open alarms :meth:`close` ends.

    >>> import random
    >>> rng = random.Random(5)
    >>> spikes = CategorySpikes(arl0=1e6)
    >>> for i in range(30_000):
    ...     unsafe_rate = 0.08 if i >= 20_000 else 0.02
    ...     failed = [c for c, p in (("unsafe", unsafe_rate), ("irrelevant", 0.03)) if rng.random() < p]
    ...     spikes = spikes.update(["unsafe", "irrelevant"], failed, ref=f"t{i}")
    ...     if spikes.alarms:
    ...         print(i, spikes.alarms, round(spikes.detector("unsafe").spike_rate, 3))
    20182 ['unsafe'] 0.097
    >>> sorted(spikes.in_alarm)
    ['unsafe']
    >>> spikes.close().resolutions, spikes.in_alarm
    (['unsafe'], [])

    Arrivals a minute apart, then an hour's pause: the pause weighs as the time it took.

    >>> spikes = CategorySpikes()
    >>> for arrival in (0.0, 60.0, 120.0, 3720.0):
    ...     spikes = spikes.update(["unsafe"], [], arrival=arrival)
    >>> round(spikes.typical_gap)
    3486

    A weekend's pause (Friday 18:00 to Monday 08:00, 2026-10-30 to 2026-11-02) among hourly arrivals: a day
    in the typical gap, and the longest gap for 7 to 14 days.

    >>> spikes, friday, monday = CategorySpikes(), 1793383200.0, 1793606400.0
    >>> for arrival in [friday - 3600, friday] + [monday + hour * 3600 for hour in range(8 * 24)]:
    ...     spikes = spikes.update(["unsafe"], [], arrival=arrival)
    >>> spikes.longest_gap / 3600, round(spikes.typical_gap / 3600, 1)
    (62.0, 2.4)
    >>> for hour in range(8 * 24, 15 * 24):
    ...     spikes = spikes.update(["unsafe"], [], arrival=monday + hour * 3600)
    >>> spikes.longest_gap / 3600
    1.0
    """

    def __init__(self, arl0: float = 1e6, warmup: int = 2000, max_evidence: int = 20) -> None:
        self.arl0 = arl0
        self.warmup = warmup
        self.max_evidence = max_evidence
        self._reset()

    def _reset(self) -> None:
        self._detectors: dict[str, DefectRateSpike] = {}
        self._alarms: list[str] = []
        self._resolutions: list[str] = []
        self._last_seen: float | None = None
        self._last_arrival: float | None = None
        self._gaps = [0.0, 0.0]  # the sum of the gaps between arrivals and of their squares, faded
        self._longest = [0, 0.0, 0.0]  # a week's number, its longest gap, and the week before's
        self._recent: list[float] = []  # the event times of the latest RECENT_TIMES updates, oldest first

    def update(
        self,
        judged: list[str],
        failed: list[str],
        ref: int | str | None = None,
        ts: float | None = None,
        arrival: float | None = None,
    ) -> Self:
        recent = None
        if ts is not None:
            if self._last_seen is None or ts > self._last_seen:
                self._last_seen = float(ts)
            recent = note_recent(self._recent, ts)
        if arrival is not None:
            self._arrive(arrival)
        self._alarms = []
        self._resolutions = []
        failed_set = set(failed) if failed else ()  # most turns fail nothing
        detectors = self._detectors
        for category in judged:
            detector = detectors.get(category)
            if detector is None:
                detector = DefectRateSpike(arl0=self.arl0, warmup=self.warmup, max_evidence=self.max_evidence)
                detectors[category] = detector
            # ts: its created, for escalation ids; recent: its cut-off after an alarm or resolution
            detector.update(category in failed_set, ref=ref, ts=ts, recent=recent)
            # drift_detected and resolved, read without the property calls (several per turn)
            if detector._drift:
                self._alarms.append(category)
            elif detector._resolved:
                self._resolutions.append(category)
        return self

    def _arrive(self, arrival: float) -> None:
        last = self._last_arrival
        if last is None:
            self._last_arrival = float(arrival)
        elif arrival > last:  # arrivals at the same time make gaps of 0, which weigh nothing
            gap = arrival - last
            fade = math.exp(-gap / GAP_MEMORY_SECONDS)
            counted = min(gap, MAX_GAP_SECONDS)
            self._gaps = [self._gaps[0] * fade + counted, self._gaps[1] * fade + counted * counted]
            self._last_arrival = float(arrival)
            week, longest, before = self._longest
            if (now := math.floor(arrival / LONGEST_GAP_WEEK_SECONDS)) > week:
                longest, before = 0.0, longest if now == week + 1 else 0.0
            self._longest = [now, max(longest, min(gap, MAX_LONGEST_GAP_SECONDS)), before]

    def close(self) -> Self:
        """End every open alarm without a turn (the slice's traffic stopped), as a resolving update would:
        monitoring restarts with all charts at 0 and the baseline learned, so the same rise seen again is a
        new alarm. :attr:`resolutions` lists the categories closed (their detectors describe the episode)."""
        self._alarms = []
        self._resolutions = self.in_alarm
        for category in self._resolutions:
            detector = self._detectors[category]
            detector._resolve(detector.n - 1)  # its own resolution, as on its last update
        return self

    def retune(self, arl0: float) -> Self:
        """Every category's detector, and those to come, at in-control run length ``arl0`` from now on
        (:meth:`DefectRateSpike.retune`): a changed false-alarm budget reaches detectors restored from state.

        >>> spikes = CategorySpikes(arl0=1e6).update(["unsafe"], [])
        >>> spikes.retune(4e6).detector("unsafe").arl0, spikes.arl0
        (4000000.0, 4000000.0)
        """
        if arl0 != self.arl0:  # its detectors have its run length
            self.arl0 = arl0
            for detector in self._detectors.values():
                detector.retune(arl0)
        return self

    @property
    def alarms(self) -> list[str]:
        """Categories whose detector fired on the last update."""
        return list(self._alarms)

    @property
    def resolutions(self) -> list[str]:
        """Categories whose spike was shown over on the last update."""
        return list(self._resolutions)

    @property
    def last_seen(self) -> float | None:
        """The newest event time an update brought (None: none did, or state from before 2026-11-26)."""
        return self._last_seen

    @property
    def last_arrival(self) -> float | None:
        """The ``arrival`` of the last update with one (None: none, or state from before 2026-11-26)."""
        return self._last_arrival

    @property
    def typical_gap(self) -> float | None:
        """The gap between arrivals that a moment of the recent past typically falls in: the mean of the gaps
        weighted by their length (E[g²] / E[g]), over about :data:`GAP_MEMORY_SECONDS`, each gap counted up
        to :data:`MAX_GAP_SECONDS`. Twice the mean gap of arrivals at random; recurring pauses (nights, a
        labelling vendor's daily batches) weigh as the time they take. None before two arrivals at two times.
        """
        total, squares = self._gaps
        return squares / total if total > 0.0 else None

    @property
    def longest_gap(self) -> float | None:
        """The longest gap between arrivals of the last 7 to 14 days before the last arrival (the week of
        :data:`LONGEST_GAP_WEEK_SECONDS` it is in, and the one before), each counted up to
        :data:`MAX_LONGEST_GAP_SECONDS`: a recurring pause longer than the typical gap makes of it (a
        weekend), as the slice last had it. None without a gap in that time (or state from before
        2026-11-26)."""
        _, longest, before = self._longest
        return max(longest, before) or None

    @property
    def in_alarm(self) -> list[str]:
        return [c for c, d in self._detectors.items() if d.in_alarm]

    def detector(self, category: str) -> DefectRateSpike:
        return self._detectors[category]

    def to_dict(self) -> dict[str, Any]:
        return self._dict_with(
            {
                "_detectors": {c: d.to_dict() for c, d in self._detectors.items()},
                "_alarms": list(self._alarms),
                "_resolutions": list(self._resolutions),
                "_last_seen": self._last_seen,
                "_last_arrival": self._last_arrival,
                "_gaps": list(self._gaps),
                "_longest": list(self._longest),
                "_recent": list(self._recent),
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        fields = (
            "_detectors",
            "_alarms",
            "_resolutions",
            "_last_seen",
            "_last_arrival",
            "_gaps",
            "_longest",
            "_recent",
        )
        spikes, state = cls._new_from(data, fields)
        spikes._detectors = {c: DefectRateSpike.from_dict(d) for c, d in state["_detectors"].items()}
        spikes._alarms = list(state["_alarms"])
        spikes._resolutions = list(state["_resolutions"])
        spikes._last_seen = state.get("_last_seen")  # state from before 2026-11-26 has none
        spikes._last_arrival = state.get("_last_arrival")  # nor has state from before closing silent spikes
        spikes._gaps = list(state.get("_gaps", (0.0, 0.0)))
        spikes._longest = list(state.get("_longest", (0, 0.0, 0.0)))  # nor from before weekends (2026-11-26)
        spikes._recent = list(state.get("_recent", ()))  # nor from before cut-offs (2026-11-26)
        return spikes
