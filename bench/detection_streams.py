"""Streams, regimes and statistics of the detection benchmark (``bench/detection.py``).

Common random numbers: every method sees the same events. A stream is addressed by
``(seed, family, index)``; in-control and change streams of one regime use their own families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

P0 = 0.02
SHIFTS = (0.03, 0.04, 0.06, 0.10)
KNOWN_ORACLE_DELAY = {0.03: 2779, 0.04: 930, 0.06: 319, 0.10: 114}  # /work/shared/KNOWN.md
ARL0 = 1e6
WARMUP = 2000


@dataclass(frozen=True)
class Regime:
    """Where the change falls, and which in-control events the false-alarm rate is measured on."""

    name: str
    change: tuple[int, int]  # change index drawn uniformly from this range (inclusive)
    incontrol_family: int
    change_family: int
    incontrol_length: int  # false alarms counted from WARMUP to here
    title: str


STEADY = Regime("steady", (100_000, 115_000), 4, 2, 200_000, "steady state: change after 100-115k events")
COLD = Regime("cold", (5_000, 20_000), 3, 1, 20_000, "cold start: change after 5-20k events")
REGIMES = (STEADY, COLD)


@dataclass(frozen=True)
class Scale:
    incontrol_streams: dict[str, int]  # per regime
    delay_streams: dict[str, int]  # per regime
    horizon: int  # post-change events simulated before a stream counts as undetected
    verify_events: int  # per oracle/lattice check at ARL0 = 1e4
    adwin_tune_fraction: float  # share of the in-control streams the ADWIN bisection runs on
    adwin_steps: int
    ph_deltas: tuple[float, ...]
    resolution: int  # lattice denominator of the exact oracle computation (detectors.arl.lattice)


FULL = Scale(
    {"steady": 800, "cold": 5000},
    {"steady": 2000, "cold": 2000},
    50_000,
    10_000_000,
    0.15,
    5,
    (0.002, 0.003, 0.004, 0.006, 0.008, 0.010, 0.012),
    16,
)
QUICK = Scale(
    {"steady": 40, "cold": 300}, {"steady": 60, "cold": 150}, 30_000, 2_000_000, 0.3, 3, (0.004,), 4
)


def incontrol_stream(seed: int, regime: Regime, s: int) -> np.ndarray:
    return np.random.default_rng([seed, regime.incontrol_family, s]).random(regime.incontrol_length) < P0


def change_index(seed: int, regime: Regime, s: int) -> int:
    lo, hi = regime.change
    return int(np.random.default_rng([seed, regime.change_family, s]).integers(lo, hi + 1))


def change_stream(seed: int, regime: Regime, s: int, p1: float, horizon: int) -> tuple[int, np.ndarray]:
    """(change index, events): rate P0 before the change, p1 from it on, for ``horizon`` events after."""
    rng = np.random.default_rng([seed, regime.change_family, s])
    lo, hi = regime.change
    tau = int(rng.integers(lo, hi + 1))  # drawn first: change_index() repeats it
    u = rng.random(tau + horizon)
    x = u < P0
    x[tau:] = u[tau:] < p1
    return tau, x


# -- statistics --------------------------------------------------------------------------------------


def poisson_ci(count: int) -> tuple[float, float]:
    from scipy.stats import chi2

    lo = 0.0 if count == 0 else chi2.ppf(0.025, 2 * count) / 2
    return lo, chi2.ppf(0.975, 2 * count + 2) / 2


def false_alarm_summary(first: list[int], length: int) -> dict[str, Any]:
    """Events per false alarm from first-alarm indices (-1: none) of in-control streams.

    Exposure of a stream: its events from WARMUP to its first alarm (included) or to ``length``.
    """
    exposure = sum((i + 1 if i >= 0 else length) - WARMUP for i in first)
    alarms = sum(1 for i in first if i >= 0)
    lo, hi = poisson_ci(alarms)
    return {
        "streams": len(first),
        "events": exposure,
        "false_alarms": alarms,
        "events_per_false_alarm": exposure / alarms if alarms else math.inf,
        "ci95": [exposure / hi, exposure / lo if lo else math.inf],
    }


def delays_of(rows: list[tuple[int, int, int]], horizon: int) -> np.ndarray:
    """Per-stream delay (alarm - change + 1; ``horizon`` if undetected; nan after a false alarm)."""
    out = np.full(len(rows), np.nan)
    for k, (tau, i, _) in enumerate(rows):
        if i < 0:
            out[k] = horizon
        elif i >= tau:
            out[k] = i - tau + 1
    return out


def delay_summary(rows: list[tuple[int, int, int]], horizon: int, oracle: float) -> dict[str, Any]:
    """rows: (change index, first alarm index or -1, onset or -1) per stream; ``oracle``: exact delay."""
    d = delays_of(rows, horizon)
    kept = d[~np.isnan(d)]
    n = len(kept)
    mean = float(kept.mean()) if n else math.nan
    half = 1.96 * float(kept.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    onset_err = [on - tau for tau, i, on in rows if i >= tau and on >= 0]
    return {
        "streams": len(rows),
        "false_alarm_before_change": int(np.isnan(d).sum()),
        "undetected_within_horizon": int(sum(1 for _, i, _ in rows if i < 0)),
        "mean": mean,
        "ci95": [mean - half, mean + half],
        "ratio": mean / oracle,
        "ratio_ci95": [(mean - half) / oracle, (mean + half) / oracle],
        "median": float(np.median(kept)) if n else math.nan,
        "onset_error_median": float(np.median(onset_err)) if onset_err else math.nan,
    }


def paired(a: np.ndarray, b: np.ndarray, resamples: int = 4000, seed: int = 1) -> dict[str, Any]:
    """Paired comparison of per-stream delays ``a`` vs ``b`` on the streams where both are defined:
    mean difference ``a - b`` with a normal 95% interval, and ``mean(a) / mean(b)`` with a percentile
    bootstrap interval (streams resampled together, so the shared randomness cancels)."""
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    n = len(a)
    diff = a - b
    half = 1.96 * float(diff.std(ddof=1)) / math.sqrt(n)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ratios = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return {
        "streams": n,
        "mean_difference": float(diff.mean()),
        "difference_ci95": [float(diff.mean()) - half, float(diff.mean()) + half],
        "ratio": float(a.mean() / b.mean()),
        "ratio_ci95": [float(lo), float(hi)],
    }
