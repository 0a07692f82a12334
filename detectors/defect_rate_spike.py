"""Rises of a Bernoulli defect rate, of unknown size, over a learned baseline at a stated false-alarm rate."""

from __future__ import annotations

import math
from collections.abc import Sequence

from detectors.base import Detector
from detectors.defect_rate_spike_results import DefectRateSpikeResults
from detectors.event_times import EventTimes
from detectors.spike_design import (
    _GRID_STEP,
    _MAX_RATE,
    _chart,
    arl0_for_budget,
    bank_ratios,
    chart_arl,
    check_arl0,
    inflated_design,
    rate_gain,
)

__all__ = ["RECENT_TIMES", "DefectRateSpike", "arl0_for_budget", "note_recent"]

#: An alarm or resolution cuts off the updates older than the earliest event time of the latest this many
#: (see "Event time"): a producer whose clock runs ahead, even one of half the turns, sets the cut-off ahead
#: only if all of them are its (one time in 65,536 for half).
RECENT_TIMES = 16


def note_recent(recent: list[float], ts: float) -> list[float]:
    """Append event time ``ts`` to ``recent``, keeping the latest :data:`RECENT_TIMES`; ``recent``."""
    recent.append(float(ts))
    if len(recent) > RECENT_TIMES:
        del recent[0]
    return recent


class DefectRateSpike(DefectRateSpikeResults, EventTimes, Detector):
    """Online alarm on a rise of a defect rate (``x`` truthy = defective) over the stream's own baseline.

    **Baseline.** The first ``warmup`` events only estimate the rate. Afterwards the baseline keeps
    learning, but only from events *confirmed in control*: those up to the last moment all charts were
    at 0. Events of an excursion that ends in an alarm, and events while in alarm, are never learned,
    so a sustained spike is not absorbed. The estimate is ``(k + 0.5) / (n + 1)`` (never 0), floored at
    ``min_rate``; counts older than about ``memory`` events fade out, so a slow drift is followed.

    **Charts.** A bank of ``n_charts`` Bernoulli CUSUMs tuned for rate ratios spaced geometrically from
    ``min_ratio`` to ``max_ratio`` covers an unknown shift size (a tuned rate is capped halfway to 1).
    Each runs on the integer lattice of Reynolds & Stoumbos (down 1 unit per ok event, up
    ``round(ln(p1/p0)/ln((1-p0)/(1-p1)))`` units per defect; a finer lattice at baselines of ~10% and
    more), so its in-control ARL is computed *exactly* by the Markov chain of :mod:`detectors.arl`. Its
    threshold is the smallest with zero-state ARL ``>= arl0 * n_charts**0.8`` (the bank correction: the
    charts' alarms overlap, so less than Bonferroni's ``n_charts`` is needed; calibrated by simulation).

    **Uncertain baseline.** An estimate from ``k`` defects is off by about ``1/sqrt(k)`` relative, and
    a chart's log-ARL falls steeply when the true rate is above its design rate. Each chart is
    therefore designed at ``baseline * exp(d)``, ``d = c * g * H / (2k)``, with ``H`` its threshold in
    nats and ``g = (r-1)/(r*ln(r)-r+1)`` the sensitivity of its Wald exponent to the rate (``r`` its
    ratio). With ``c = 1`` this restores, to first order, the hazard ``exp(-H)`` averaged over
    ``ln(true/estimate) ~ N(0, 1/k)``. The inflation fades as defects accumulate (at a 2% baseline:
    ~1% of the rate after 100k events for the 1.5x chart, ~6% of its delay; ~60% right after the warm-up).
    Design rates are rounded *up* to a 0.2% log grid, so designs are cached and stay conservative.
    The price is paid on small rises seen early: a 1.5x rise within ~10k events of the warm-up (~200
    baseline defects) is found late, or not at all, and is then slowly learned as the new normal. A
    baseline of 50% or more is out of scope: the detector is then :attr:`saturated` and raises nothing.

    **Alarm and resolution.** ``drift_detected`` is true on the alarming update; ``in_alarm`` stays true
    until the rate is shown back at the baseline: a CUSUM of ``ln P(x | p0) - ln P(x | min_ratio * p0)``
    reaches ``resolve_llr`` nats, ``p0`` the alarming chart's design rate (the baseline inflated for its
    uncertainty, so a low estimate cannot leave the alarm open for ever); ``resolved`` is true on that
    update, and monitoring then restarts with all charts at 0. ``onset`` is the alarming chart's last
    zero (the change-point MLE), ``spike_rate`` the rate since then, ``evidence`` the refs of the last
    ``max_evidence`` defects since ``onset`` (``update(x, ref)``; the event index when ``ref`` is None);
    all three describe the episode on its resolving update too. With ``ts`` (``update(x, ref, ts)``, event
    time), :attr:`last_seen` is the newest one: for its owner to tell an idle detector; :attr:`created` is
    the first update's, for its owner to tell this detector's alarms from those of one it dropped before
    (:attr:`n_alarms` starts at 0 again).

    **Event time.** An update older than the one that last raised or resolved an alarm (than the earliest
    of the latest :data:`RECENT_TIMES`, if earlier: a producer whose clock runs ahead does not move it)
    changes nothing but :attr:`last_seen`: turns from before an alarm cannot show that it is over, nor turns
    from before a resolution start a new episode. Read in event order, nothing is older. A backlog is not: a
    consumer catching up reads each partition in chunks, each of which may span the whole incident, and an
    incident read that way fired and resolved 9 times (`tests/streams/test_spikes_backlog.py`); once since
    2026-11-26. A detector given the ``recent`` times of its owner (:class:`CategorySpikes`, one list for
    all its categories) keeps none of its own.

    **Cost.** About 0.1-0.5 µs per update once designs are cached (``bench/detection.py``). A design
    not yet cached (a new 0.2% step of a baseline) is computed once per process, inside one update:
    ~0.1 ms per chart at a 2% baseline, ~1 ms at the 0.1% floor (one pass of the ARL recursion).

    Examples
    --------
    A segment at 2% defective rises to 6% at event 20,000 and returns to 2% at 23,000:

    >>> import random
    >>> rng = random.Random(6)
    >>> spike = DefectRateSpike(arl0=1e6)
    >>> for i in range(30_000):
    ...     rate = 0.06 if 20_000 <= i < 23_000 else 0.02
    ...     spike = spike.update(rng.random() < rate, ref=f"turn-{i}")
    ...     if spike.drift_detected:
    ...         print(f"alarm at {i}: onset {spike.onset}, rate {spike.spike_rate:.3f}, "
    ...               f"baseline {spike.baseline:.4f}, evidence {spike.evidence[-2:]}")
    ...     if spike.resolved:
    ...         print(f"resolved at {i}: the episode from {spike.onset} at {spike.spike_rate:.3f}")
    alarm at 20364: onset 20012, rate 0.065, baseline 0.0204, evidence ['turn-20344', 'turn-20364']
    resolved at 23791: the episode from 20012 at 0.048
    """

    def __init__(
        self,
        arl0: float = 1e6,
        min_ratio: float = 1.5,
        max_ratio: float = 5.0,
        n_charts: int = 4,
        warmup: int = 2000,
        memory: int = 200_000,
        max_evidence: int = 20,
        resolve_llr: float = math.log(100.0),
        min_rate: float = 1e-3,
    ) -> None:
        check_arl0(arl0)
        if not 1.0 < min_ratio <= max_ratio < 1e3:
            raise ValueError(f"need 1 < min_ratio <= max_ratio < 1000, got {min_ratio}, {max_ratio}")
        if not 1 <= n_charts <= 16 or (n_charts > 1 and min_ratio == max_ratio):
            raise ValueError(f"n_charts must be in 1..16 (1 when min_ratio == max_ratio), got {n_charts}")
        if warmup < 10:
            raise ValueError(f"warmup must be >= 10 events, got {warmup}")
        if memory < warmup:
            raise ValueError(f"memory ({memory}) must be >= warmup ({warmup})")
        if max_evidence < 0:
            raise ValueError(f"max_evidence must be >= 0, got {max_evidence}")
        if not 0.0 < resolve_llr < 100.0:
            raise ValueError(f"resolve_llr must be in (0, 100) nats, got {resolve_llr}")
        if not 1e-6 <= min_rate < _MAX_RATE:
            raise ValueError(f"min_rate must be in [1e-6, {_MAX_RATE}), got {min_rate}")
        self.arl0 = arl0
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio
        self.n_charts = n_charts
        self.warmup = warmup
        self.memory = memory
        self.max_evidence = max_evidence
        self.resolve_llr = resolve_llr
        self.min_rate = min_rate
        self._ratios = bank_ratios(min_ratio, max_ratio, n_charts)
        self._gains = [rate_gain(r) for r in self._ratios]
        self._chart_arl = chart_arl(arl0, n_charts)
        self._decay = 1.0 - 1.0 / 1000.0  # current_rate: exponential average over ~1,000 events
        self._reset()

    def _reset(self) -> None:
        m = self.n_charts
        self._n = 0  # events seen; the index of the next event
        self._k = 0  # defects seen
        self._ew = 0.0  # exponentially weighted defect count (current_rate)
        self._base_n = 0.0  # confirmed in-control events (faded by memory)
        self._base_k = 0.0  # defects among them
        self._fold_at = self.warmup  # first event not yet confirmed
        self._pend_k = 0  # defects among the unconfirmed events
        # charts: value just after the last defect; value now is max(0, v - down * ok events since then)
        self._last = -1  # index of the last defect seen while monitoring
        self._v = [0] * m
        self._vmax = 0  # ok events after the last defect until every chart is at 0
        self._onsets = [0] * m  # first event of each chart's excursion
        self._onset_k = [0] * m  # defects seen before it
        self._q = [0] * m  # design-rate grid index of each chart (0 = not designed yet)
        self._up = [0] * m
        self._down = [1] * m
        self._thr = [0] * m
        self._unit = [0.0] * m
        # alarm
        self._alarm = False
        self._drift = False
        self._resolved = False
        self._n_alarms = 0
        self._alarm_onset = -1
        self._alarm_onset_k = 0
        self._r = 0.0  # resolution CUSUM (nats)
        self._r_defect = 0.0
        self._r_ok = 0.0
        self._ring: list[list[int | str]] = []  # [index, ref] of the latest defects
        self._last_seen: float | None = None  # the newest event time an update brought
        self._created: float | None = None  # the first update's event time (not in state until 2026-11-26)
        self._cutoff: float | None = None  # event time of the update that last raised or resolved an alarm
        self._recent: list[float] = []  # event times of the latest RECENT_TIMES updates, unless given them

    # -- updating ---------------------------------------------------------------------------------

    def update(
        self,
        x: float,
        ref: int | str | None = None,
        ts: float | None = None,
        recent: Sequence[float] | None = None,
    ) -> DefectRateSpike:
        """Add one event: ``x`` truthy when defective; ``ref`` (int or str) identifies it in ``evidence``;
        ``ts`` its event time, if any; ``recent`` the event times of its owner's latest events (this one's
        included), if it keeps them: see :meth:`_cut`."""
        n = self._n
        self._drift = False
        self._resolved = False
        if ts is not None:
            self._saw(ts)
            if self._cutoff is not None and ts < self._cutoff:
                return self  # older than the last alarm or resolution: see "Event time"
            if recent is None:  # kept here only if the owner keeps none
                recent = note_recent(self._recent, ts)
        self._n = n + 1
        self._ew *= self._decay
        if not x:
            if n < self.warmup:
                self._base_n += 1.0
                if n + 1 == self.warmup:
                    self._design()
            elif self._alarm:
                self._r += self._r_ok
                if self._r >= self.resolve_llr:
                    self._resolve(n)
                    self._cut(ts, recent)
            return self  # monitoring: the charts step down lazily (see _defect)

        self._ew += 1.0
        self._k += 1
        if ref is None:
            ref = n
        elif not isinstance(ref, int | str):
            raise TypeError(f"ref must be an int or a str (JSON-native), got {type(ref).__name__}")
        ring = self._ring
        ring.append([n, ref])
        if len(ring) > self.max_evidence:
            del ring[0]
        if n < self.warmup:
            self._base_n += 1.0
            self._base_k += 1.0
            if n + 1 == self.warmup:
                self._design()
        elif self._alarm:
            r = self._r + self._r_defect
            self._r = r if r > 0.0 else 0.0
        else:
            self._defect(n)
            if self._drift:
                self._cut(ts, recent)
        return self

    def _cut(self, ts: float | None, recent: Sequence[float] | None) -> None:
        """On an alarm or resolution at event time ``ts``: older updates change nothing from now on. The
        earliest of the ``recent`` event times if earlier: a turn whose clock runs hours ahead that raised
        the alarm held the detector's view for those hours, and with a producer of half a slice's turns
        ahead, so did the turn before it one time in two."""
        if ts is not None:
            self._cutoff = min(float(ts), min(recent)) if recent else float(ts)

    def _defect(self, n: int) -> None:
        if self.saturated:  # no chart for a baseline this high: every event is learned, none can alarm
            self._vmax = 0
        ok_run = n - self._last - 1  # ok events since the previous defect: every chart fell that much
        v, up, down = self._v, self._up, self._down
        if ok_run >= self._vmax:
            # all charts are at 0: everything before this event is confirmed in control
            self._base_n += n - self._fold_at
            self._base_k += self._pend_k
            self._pend_k = 0
            self._fold_at = n
            if self._base_n > self.memory:
                self._base_k *= self.memory / self._base_n
                self._base_n = float(self.memory)
            self._design()
            self._v = v = list(up)
            self._onsets = [n] * self.n_charts
            self._onset_k = [self._k - 1] * self.n_charts
        else:
            for j in range(self.n_charts):
                s = v[j] - down[j] * ok_run
                if s > 0:
                    v[j] = s + up[j]
                else:
                    v[j] = up[j]
                    self._onsets[j] = n
                    self._onset_k[j] = self._k - 1
        self._pend_k += 1
        self._last = n
        self._vmax = max(-(-vj // dj) for vj, dj in zip(v, down, strict=True))
        thr = self._thr
        best, best_score = -1, 1.0
        for j in range(self.n_charts):
            if v[j] >= thr[j] and v[j] / thr[j] >= best_score:
                best, best_score = j, v[j] / thr[j]
        if best >= 0:
            self._raise_alarm(n, best)

    def _design(self) -> None:
        """(Re)design each chart for the current baseline estimate, inflated for its uncertainty."""
        k = self._base_k + 0.5
        log_p = math.log(min(max(k / (self._base_n + 1.0), self.min_rate), _MAX_RATE))
        for j, ratio in enumerate(self._ratios):
            if self._q[j] == 0:  # first design: threshold of the uninflated chart
                _, _, thr, unit = _chart(math.ceil(log_p / _GRID_STEP), ratio, self._chart_arl)
            else:
                thr, unit = self._thr[j], self._unit[j]
            q = inflated_design(log_p, k, self._gains[j], thr, unit)
            if q != self._q[j]:
                self._q[j] = q
                self._up[j], self._down[j], self._thr[j], self._unit[j] = _chart(q, ratio, self._chart_arl)

    def retune(self, arl0: float) -> DefectRateSpike:
        """Follow a changed false-alarm budget from now on: in-control run length ``arl0``. The baseline,
        the charts' statistics and an open alarm are kept; each designed chart gets the threshold of the new
        run length at its current design rate; the same ``arl0`` changes nothing. (A detector restored from
        state keeps the ``arl0`` it was made with otherwise, whatever the budget says now.)

        >>> spike = DefectRateSpike(arl0=1e6, warmup=100)
        >>> for i in range(100):
        ...     _ = spike.update(i % 25 == 0)
        >>> before = list(spike._thr)
        >>> _ = spike.retune(1e8)
        >>> spike.arl0, all(b < a for a, b in zip(spike._thr, before, strict=True))
        (100000000.0, True)
        """
        if arl0 == self.arl0:
            return self
        check_arl0(arl0)
        self.arl0 = arl0
        self._chart_arl = chart_arl(arl0, self.n_charts)
        for j, ratio in enumerate(self._ratios):
            if self._q[j] != 0:  # designed
                self._up[j], self._down[j], self._thr[j], self._unit[j] = _chart(
                    self._q[j], ratio, self._chart_arl
                )
        return self

    def close(self) -> DefectRateSpike:
        """End an open alarm without an event (the stream stopped), as a resolving update would: ``resolved``
        turns True, monitoring restarts with every chart at 0 and the baseline learned, so the same rise seen
        again is a new alarm; ``onset``, ``spike_rate`` and ``evidence`` describe the episode closed. Nothing
        changes without an open alarm.

        >>> spike = DefectRateSpike(warmup=100)
        >>> i = 0
        >>> while not spike.in_alarm:
        ...     spike, i = spike.update(i < 100 and i % 50 == 0 or i >= 100), i + 1
        >>> spike.close().resolved, spike.in_alarm, spike.n_alarms, spike.close().resolved
        (True, False, 1, False)
        """
        self._drift = False
        self._resolved = self._alarm
        if self._alarm:
            self._resolve(self._n - 1)
        return self

    def _raise_alarm(self, n: int, chart: int) -> None:
        self._alarm = True
        self._drift = True
        self._n_alarms += 1
        self._alarm_onset = self._onsets[chart]
        self._alarm_onset_k = self._onset_k[chart]
        self._pend_k = 0  # the excursion is never learned as baseline
        # "back to normal" is tested against the alarming chart's design baseline: the estimate inflated for
        # its uncertainty, as the alarm was. Against the estimate itself, one that came out low (a young
        # detector's) put the normal rate above the test's midpoint: the alarm never resolved, and the
        # segment could never alarm again (40 of 384 spikes just after the warm-up, at a 0.5% baseline).
        p0 = max(self.baseline, math.exp(self._q[chart] * _GRID_STEP))
        p1 = min(self.min_ratio * p0, 0.5 + 0.5 * p0)
        self._r = 0.0
        self._r_defect = math.log(p0 / p1)
        self._r_ok = math.log((1.0 - p0) / (1.0 - p1))

    def _resolve(self, n: int) -> None:
        self._alarm = False
        self._resolved = True
        self._r = 0.0
        self._last = n
        self._fold_at = n + 1
        self._pend_k = 0
        self._v = [0] * self.n_charts
        self._vmax = 0
