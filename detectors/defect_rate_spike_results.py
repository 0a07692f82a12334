"""The read-only results of :class:`~detectors.defect_rate_spike.DefectRateSpike`: what it reports of the
state its updates keep (its docstring: Baseline, Alarm and resolution)."""

from __future__ import annotations

import math

from detectors.spike_design import _GRID_STEP, _MAX_RATE


class DefectRateSpikeResults:
    """Mixin of :class:`~detectors.defect_rate_spike.DefectRateSpike`: its results, as read-only properties
    of the parameters and the state (created in its ``_reset``) declared here."""

    warmup: int
    memory: int
    min_rate: float
    _decay: float
    _n: int
    _k: int
    _ew: float
    _base_n: float
    _base_k: float
    _fold_at: int
    _pend_k: int
    _last: int
    _v: list[int]
    _vmax: int
    _q: list[int]
    _down: list[int]
    _thr: list[int]
    _alarm: bool
    _drift: bool
    _resolved: bool
    _n_alarms: int
    _alarm_onset: int
    _alarm_onset_k: int
    _ring: list[list[int | str]]

    @property
    def n(self) -> int:
        """Number of updates so far."""
        return self._n

    @property
    def monitoring(self) -> bool:
        """False during the warm-up, while only the baseline is learned, and while :attr:`saturated`."""
        return self._n >= self.warmup and not self.saturated

    @property
    def saturated(self) -> bool:
        """True while the learned rate (before the cap) is 50% or more: charts are designed up to a 50%
        baseline, and a steady rate above it read as a rise over 50%, alarming and resolving again and
        again. Meanwhile every event is learned and none alarms; monitoring resumes once the rate is below."""
        return self._base_k + 0.5 >= _MAX_RATE * (self._base_n + 1.0)

    @property
    def drift_detected(self) -> bool:
        """True when the last update raised an alarm."""
        return self._drift

    @property
    def in_alarm(self) -> bool:
        """True from an alarm until the rate is shown back at the baseline."""
        return self._alarm

    @property
    def resolved(self) -> bool:
        """True when the last update ended an alarm (the rate is back at the baseline)."""
        return self._resolved

    @property
    def n_alarms(self) -> int:
        return self._n_alarms

    @property
    def baseline(self) -> float:
        """Baseline defect rate learned from confirmed in-control events (never 0)."""
        k, n = self._base_k, self._base_n
        if self._n > self.warmup and not self._alarm and self._n - self._last - 1 >= self._vmax:
            # all charts are at 0 now: the events since the last fold are confirmed too (folded lazily)
            k += self._pend_k
            n += self._n - self._fold_at
            if n > self.memory:
                k *= self.memory / n
                n = float(self.memory)
        return min(max((k + 0.5) / (n + 1.0), self.min_rate), _MAX_RATE)

    @property
    def current_rate(self) -> float:
        """Defect rate of the recent events (exponential average over about 1,000), nan before any."""
        if not self._n:
            return math.nan
        return self._ew * (1.0 - self._decay) / (1.0 - self._decay**self._n)

    @property
    def onset(self) -> int | None:
        """Estimated index of the first event of the spike, while in alarm and on the update that resolves
        it (a resolution reports the episode it ends)."""
        return self._alarm_onset if self._alarm or self._resolved else None

    @property
    def spike_rate(self) -> float:
        """Defect rate since ``onset`` while in alarm (on the resolving update: over the whole episode),
        else nan."""
        if not (self._alarm or self._resolved):
            return math.nan
        return (self._k - self._alarm_onset_k) / (self._n - self._alarm_onset)

    @property
    def evidence(self) -> list[int | str]:
        """Refs of the latest (at most ``max_evidence``) defective events since ``onset``, while in alarm and
        on the update that resolves it."""
        if not (self._alarm or self._resolved):
            return []
        return [ref for index, ref in self._ring if isinstance(index, int) and index >= self._alarm_onset]

    @property
    def statistic(self) -> float:
        """Closeness to an alarm: the largest chart statistic over its threshold (alarm at 1)."""
        if self._alarm or self._n <= self.warmup or not self._thr[0]:
            return 0.0
        ok_run = self._n - self._last - 1
        return max(max(0, v - d * ok_run) / t for v, d, t in zip(self._v, self._down, self._thr, strict=True))

    @property
    def design_rates(self) -> list[float]:
        """The rate each chart treats as in control (baseline inflated for its uncertainty)."""
        return [math.exp(q * _GRID_STEP) if q else math.nan for q in self._q]
