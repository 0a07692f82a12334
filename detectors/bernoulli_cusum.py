"""Page's CUSUM for an increase of a Bernoulli rate from a known ``p0`` to a known ``p1``."""

from __future__ import annotations

import math

from detectors.base import Detector


class BernoulliCUSUM(Detector):
    """The optimal detector (Page 1954; Lorden 1971, Moustakides 1986) when both rates are known.

    Each event adds its log-likelihood ratio, ``x·ln(p1/p0) + (1-x)·ln((1-p1)/(1-p0))``, to a
    statistic floored at 0; an alarm is raised when the statistic reaches ``threshold`` (nats).
    ``x`` is 1 (truthy) for a defective event and 0 otherwise. After an alarm the next update starts
    fresh from 0, as river's detectors do, so alarms on an in-control stream form a renewal process
    whose mean spacing is the zero-state ARL computed by :func:`detectors.arl.llr_chart_arl`
    (:func:`detectors.arl.llr_threshold_for_arl` gives the threshold for a target ARL).

    ``onset`` is the index (0-based count of updates) of the first event of the current excursion
    above 0: the maximum-likelihood change point once the chart alarms.

    Examples
    --------
    A change from 2% to 6% defective after 5,000 events; the threshold 9.47 gives one false alarm
    per 10^6 in-control events:

    >>> import random
    >>> rng = random.Random(7)
    >>> cusum = BernoulliCUSUM(p0=0.02, p1=0.06, threshold=9.47)
    >>> for i in range(10_000):
    ...     cusum = cusum.update(rng.random() < (0.02 if i < 5_000 else 0.06))
    ...     if cusum.drift_detected:
    ...         print(f"alarm at {i}, onset {cusum.onset}")
    ...         break
    alarm at 5217, onset 5008
    """

    def __init__(self, p0: float, p1: float, threshold: float) -> None:
        if not 0.0 < p0 < p1 < 1.0:
            raise ValueError(f"need 0 < p0 < p1 < 1 (an increase), got p0={p0}, p1={p1}")
        if not threshold > 0.0 or math.isinf(threshold):
            raise ValueError(f"threshold must be a positive finite number of nats, got {threshold}")
        self.p0 = p0
        self.p1 = p1
        self.threshold = threshold
        self._up = math.log(p1 / p0)
        self._down = math.log((1.0 - p1) / (1.0 - p0))  # negative
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._s = 0.0
        self._onset = -1  # -1: the statistic is at 0 (JSON-native stand-in for None)
        self._drift = False

    def update(self, x: float) -> BernoulliCUSUM:
        if self._drift:
            self._s = 0.0
            self._onset = -1
            self._drift = False
        s = self._s + (self._up if x else self._down)
        if s <= 0.0:
            s = 0.0
            self._onset = -1
        elif self._onset < 0:
            self._onset = self._n
        self._s = s
        self._n += 1
        if s >= self.threshold:
            self._drift = True
        return self

    @property
    def n(self) -> int:
        """Number of updates so far."""
        return self._n

    @property
    def drift_detected(self) -> bool:
        """True when the last update raised an alarm."""
        return self._drift

    @property
    def statistic(self) -> float:
        """The CUSUM statistic (nats); the alarm fires when it reaches ``threshold``."""
        return self._s

    @property
    def onset(self) -> int | None:
        """Index where the current excursion began (the change-point estimate), None at 0."""
        return None if self._onset < 0 else self._onset
