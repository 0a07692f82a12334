"""How :class:`~detectors.defect_rate_spike.DefectRateSpike` designs its charts (its docstring: Charts,
Uncertain baseline): the per-stream run length of a false-alarm budget, the bank of rate ratios and its
correction, the log grid of design rates, and the lattice chart with its exact threshold per grid step.
"""

from __future__ import annotations

import functools
import math

from detectors.arl import lattice, threshold_for_arl

#: Design rates live on a log grid this fine (0.2% steps); a rate is rounded *up* to it (conservative).
#: Each step up costs ~1% of delay at a 1.5x rise, so the grid is fine; a design is cached per step.
_GRID_STEP = 0.002
#: Highest design rate: a "defect spike" above a 50% baseline is out of scope.
_MAX_RATE = 0.5
#: Multiplier ``c`` of the baseline-uncertainty inflation (see ``DefectRateSpike``): 1, the Gaussian
#: argument. The inflation is ``O(1/k)`` in the baseline's defect count ``k``, so it fades as the
#: baseline ages and the bank correction below is left to cover the bank.
_UNCERTAINTY_MARGIN = 1.0
#: Exponent of the bank correction: each of ``m`` charts targets ``arl0 * m**_BANK_EXPONENT``. 1 would be
#: Bonferroni; the charts' alarms are correlated, so less is enough. With a *known* baseline, 4 charts
#: need a factor 2.6 (exponent 0.7); 0.8 (factor 3.0) keeps the MEASURED rate of a learned baseline at
#: the target over 200k-event streams (``bench/detection.py``: 1 per 1.22e6; 0.7 measured 1 per 0.93e6).
_BANK_EXPONENT = 0.8
#: Highest design-rate grid index.
_Q_MAX = math.floor(math.log(_MAX_RATE) / _GRID_STEP)


def arl0_for_budget(false_alarms_per_day: float, events_per_day_per_stream: float, streams: int) -> float:
    """Per-stream in-control ARL (events per false alarm) that meets a fleet-wide false-alarm budget.

    With ``streams`` independent streams each seeing ``events_per_day_per_stream`` events a day, a
    per-stream ARL of ``A`` events gives ``streams * events_per_day_per_stream / A`` false alarms a day.

    >>> arl0_for_budget(false_alarms_per_day=0.5, events_per_day_per_stream=20_000, streams=25)
    1000000.0
    """
    if not false_alarms_per_day > 0.0 or math.isinf(false_alarms_per_day):
        raise ValueError(f"false_alarms_per_day must be positive and finite, got {false_alarms_per_day}")
    if not events_per_day_per_stream > 0.0 or math.isinf(events_per_day_per_stream):
        raise ValueError(f"events_per_day_per_stream must be positive, got {events_per_day_per_stream}")
    if streams < 1:
        raise ValueError(f"streams must be >= 1, got {streams}")
    return streams * events_per_day_per_stream / false_alarms_per_day


@functools.lru_cache(maxsize=8192)
def _chart(q: int, ratio: float, arl: float) -> tuple[int, int, int, float]:
    """Lattice chart ``(up, down, threshold, unit)`` for design rate ``exp(q * _GRID_STEP)`` and ``ratio``.

    The chart is exactly the finite Markov chain of :mod:`detectors.arl`, so its zero-state ARL at the
    design rate is exactly ``>= arl``. ``down`` is 1 (one unit per ok event) unless the rate is so high
    that ``up/down`` would miss the LLR ratio by more than 5%.
    """
    p0 = math.exp(q * _GRID_STEP)
    p1 = min(ratio * p0, 0.5 + 0.5 * p0)
    up, down, unit = lattice(p0, p1, 16, tolerance=0.05)
    return up, down, threshold_for_arl(up, down, p0, arl), unit


def check_arl0(arl0: float) -> None:
    """Raise ValueError unless ``arl0`` (in-control events per false alarm) is in ``(1, 1e12)``."""
    if not 1.0 < arl0 < 1e12:
        raise ValueError(f"arl0 (in-control events per false alarm) must be in (1, 1e12), got {arl0}")


def bank_ratios(min_ratio: float, max_ratio: float, n_charts: int) -> list[float]:
    """Rate ratios of a bank of ``n_charts`` charts, spaced geometrically from ``min_ratio`` to ``max_ratio``.

    >>> [round(r, 3) for r in bank_ratios(1.5, 5.0, 4)]
    [1.5, 2.241, 3.347, 5.0]
    """
    if n_charts == 1:
        return [float(min_ratio)]
    step = math.log(max_ratio / min_ratio) / (n_charts - 1)
    return [min_ratio * math.exp(j * step) for j in range(n_charts)]


def rate_gain(ratio: float) -> float:
    """``g = (r-1)/(r*ln(r)-r+1)``: the sensitivity of the Wald exponent of a chart of ratio ``r`` to the
    rate."""
    return (ratio - 1.0) / (ratio * math.log(ratio) - ratio + 1.0)


def chart_arl(arl0: float, n_charts: int) -> float:
    """The zero-state ARL each chart of a bank of ``n_charts`` is designed for, so that the bank meets
    ``arl0`` (the bank correction, ``_BANK_EXPONENT``)."""
    return float(arl0 * n_charts**_BANK_EXPONENT)


def inflated_design(log_p: float, k: float, gain: float, thr: int, unit: float) -> int:
    """Grid index of the design rate of a chart for a baseline ``exp(log_p)`` estimated from ``k`` defects,
    inflated for its uncertainty: ``d = c * g * H / (2k)`` (``g`` the chart's :func:`rate_gain`, ``H`` its
    threshold ``thr`` in nats, ``thr * unit``), rounded up to the grid, at most ``_MAX_RATE``."""
    delta = _UNCERTAINTY_MARGIN * gain * thr * unit / (2.0 * k)
    return min(math.ceil((log_p + delta) / _GRID_STEP), _Q_MAX)
