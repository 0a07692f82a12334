"""Exact run lengths of Bernoulli CUSUM charts by the Markov-chain method (Brook & Evans 1972).

A chart on an integer lattice, ``S = max(0, S + up)`` on a defect and ``S = max(0, S - down)`` otherwise,
alarming when ``S >= threshold``, is a finite Markov chain on the states ``0 .. threshold - 1``. Its
average run length (ARL) from every state solves ``(I - Q) L = 1``, a banded system (``down`` diagonals
below, ``up`` above) that LAPACK solves in ``O(threshold * up * down)``. For such a chart the result is
exact, not an approximation.

The log-likelihood-ratio chart of :class:`detectors.bernoulli_cusum.BernoulliCUSUM` has real-valued
steps ``a = ln(p1/p0)`` and ``-b = ln((1-p0)/(1-p1))``. :func:`lattice` maps it onto the lattice with
``down <= resolution`` units per ``b``, a denominator that approximates ``a/b`` within 1e-4; that
rounding is the only approximation (the ARL of the real-valued chart moves by about 1% per 0.1% of
``a/b`` at ARL0 = 10^6) and it vanishes as ``resolution`` grows. With ``resolution=1`` the lattice
chart *is* the integer chart of Reynolds & Stoumbos (1999), which DefectRateSpike runs.
"""

from __future__ import annotations

import math

import numpy as np

#: Thresholds searched up to this (a runaway guard: designs in use stay below ~10^5).
_MAX_THRESHOLD = 50_000_000


def _validate(up: int, down: int, threshold: int, p: float) -> None:
    if up < 1 or down < 1 or threshold < 1:
        raise ValueError(f"up, down and threshold must be >= 1, got {up}, {down}, {threshold}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"the defect probability must be in (0, 1), got {p}")


def arl_vector(up: int, down: int, threshold: int, p: float) -> np.ndarray:
    """ARL (expected events until ``S >= threshold``, counting the alarming one) from each state.

    ``p`` is the true defect probability; entry ``s`` of the result starts the chart at ``S = s``.
    """
    from scipy.linalg import solve_banded  # scipy ships with river; imported lazily to keep imports cheap

    _validate(up, down, threshold, p)
    n = threshold
    # ab[up + i - j, j] = (I - Q)[i, j]
    ab = np.zeros((down + up + 1, n))
    ab[up, :] = 1.0
    ab[up, 0] -= 1.0 - p  # state 0 stays at 0 on an ok event
    # ok event: i -> i - down for i >= down (column j = i - down, row offset up + down)
    if n > down:
        ab[up + down, : n - down] -= 1.0 - p
    # ok event from 1 <= i < down floors to 0: entry (i, 0), row offset up + i
    for i in range(1, min(down, n)):
        ab[up + i, 0] -= 1.0 - p
    # defect: i -> i + up when still below the threshold (column j = i + up, row offset 0)
    if n > up:
        ab[0, up:] -= p
    return np.asarray(solve_banded((down, up), ab, np.ones(n)))


def arl(up: int, down: int, threshold: int, p: float) -> float:
    """Zero-state ARL: expected events until the first alarm when the chart starts at 0."""
    if down == 1 and threshold > up + 1:
        _validate(up, down, threshold, p)
        return _arl_skip_free(up, threshold, p)
    return float(arl_vector(up, down, threshold, p)[0])


def _arl_skip_free(up: int, n: int, p: float) -> float:
    """Zero-state ARL of a chart that falls 1 unit per ok event, threshold ``n > up + 1``, in ``O(n)``
    operations (:func:`_skip_free_scan`). Agrees with the banded solve to ~1e-9 relative at ARL 1e6-1e8
    (tests)."""
    _, c, e = _skip_free_scan(up, p, n)
    return (1.0 + p * c) / (p * (1.0 - e))


def _skip_free_scan(up: int, p: float, last: int, arl0: float = math.inf) -> tuple[int, float, float]:
    """Thresholds ``up + 2, up + 3, ... last`` of a chart that falls 1 unit per ok event, in turn: the first
    whose zero-state ARL reaches ``arl0`` (none with the default), else ``last``, as ``(threshold, c, e)``
    with ``L(up) = c + e * L(0)``: its zero-state ARL is ``(1 + p * c) / (p * (1 - e))``.

    Each state's ARL is an affine function of its lower neighbour's, ``L(i) = a_i + b_i L(i-1)``, from
    the top down; the map from ``L(i)`` to ``L(i+up)`` is the composition of ``up`` such functions,
    updated in O(1) per state by dropping the outermost function and adding the innermost one. The numbers
    depend only on the distance ``k`` below the threshold, never on the threshold itself, so one pass
    serves every threshold in turn: after the step at distance ``k``, threshold ``k + 1``. The loop is
    written out (no generator, no calls): a spike detector's design runs it a few hundred steps per chart.
    """
    near = arl0 * (1.0 - 1e-9)  # an ARL below this has ln ARL < ln arl0 for certain: no log needed
    target = math.log(arl0)
    q = 1.0 - p
    # distance 0 .. up below the threshold: fall back, or alarm on a defect: L = 1 + q L(below)
    a = [1.0] * (up + 1)  # a[k], b[k]: the affine map of the state at distance k below the threshold
    b = [q] * (up + 1)
    c, e = 0.0, 1.0
    for _ in range(up):
        c, e = 1.0 + q * c, q * e
    add_a, add_b = a.append, b.append
    j = 1  # k - up, for the state at distance k = up + 1, up + 2, ...
    threshold = up + 2
    while True:
        d = 1.0 - p * e
        ak = (1.0 + p * c) / d
        bk = q / d
        add_a(ak)
        add_b(bk)
        bj = b[j]
        c = (c + e * ak - a[j]) / bj
        e = e * bk / bj
        value = (1.0 + p * c) / (p * (1.0 - e))
        if (value >= near and math.log(value) - target >= 0.0) or threshold >= last:
            return threshold, c, e
        j += 1
        threshold += 1


def quasi_stationary(up: int, down: int, threshold: int, p: float, tol: float = 1e-13) -> np.ndarray:
    """Distribution of ``S`` after a long run without alarm (left Perron vector of ``Q``), by power iteration.

    This is the state a chart is in when a change arrives after a long in-control period: the
    steady-state delay of a chart is ``quasi_stationary(..., p0) @ arl_vector(..., p1)``.
    """
    _validate(up, down, threshold, p)
    n = threshold
    v = np.zeros(n)
    v[0] = 1.0
    q = 1.0 - p
    for _ in range(1_000_000):
        nxt = np.zeros(n)
        if n > up:
            nxt[up:] += p * v[: n - up]
        if n > down:
            nxt[: n - down] += q * v[down:]
        nxt[0] += q * v[: min(down, n)].sum()
        nxt /= nxt.sum()
        if np.abs(nxt - v).sum() < tol:
            return nxt
        v = nxt
    raise RuntimeError("quasi-stationary distribution did not converge")  # pragma: no cover


def _wald_exponent(up: int, down: int, p: float) -> float:
    """The root ``theta > 0`` of ``p exp(theta up) + (1-p) exp(-theta down) = 1`` (a chart drifting down).

    ``ln ARL`` of the chart grows like ``theta * threshold`` (Wald): the slope that
    :func:`threshold_for_arl` steps with. Newton from the right of the convex function's root.
    """
    q = 1.0 - p
    theta = -math.log(p) / up  # p exp(theta up) = 1 here, so the function is positive
    for _ in range(100):
        grow, fall = p * math.exp(theta * up), q * math.exp(-theta * down)
        step = (grow + fall - 1.0) / (up * grow - down * fall)
        theta -= step
        if step <= 1e-12 * theta:
            break
    return theta


def threshold_for_arl(up: int, down: int, p: float, arl0: float) -> int:
    """Smallest integer threshold whose zero-state ARL at defect probability ``p`` is at least ``arl0``.

    Raises ``ValueError`` when the chart drifts upward at ``p`` (no threshold reaches a large ARL).
    """
    _validate(up, down, 1, p)
    if arl0 <= 1.0:
        return 1
    drift = (1.0 - p) * down - p * up
    if drift <= 0.0:
        raise ValueError(f"chart with up={up}, down={down} drifts upward at p={p}: its ARL stays small")
    target = math.log(arl0)
    if down == 1:
        found = _skip_free_threshold(up, p, arl0)
        if found:
            return found
    # ln ARL(t) is close to theta * t - ln(theta * drift) and its slope tends to theta: Newton steps of
    # that known slope land next to the answer, usually 3 ARL evaluations in all. Only the bracket decides
    # the answer (lo misses the target, hi reaches it; done when they are adjacent), so it is the exact
    # smallest threshold whatever the steps; bisection takes over if the steps have not closed it.
    theta = _wald_exponent(up, down, p)
    lo, hi = 0, 0  # hi = 0: no threshold found yet that reaches the target (ARL(0) = 0 < arl0)
    t = max(1, math.ceil((target + math.log(theta * drift)) / theta))
    for steps in range(1, 200):
        excess = math.log(arl(up, down, t, p)) - target
        if excess >= 0.0:
            hi = t
        else:
            lo = t
        if hi and hi - lo == 1:
            return hi
        if steps < 5:
            t = math.ceil(t - excess / theta)  # the first threshold the slope predicts reaches the target
        elif hi:
            t = (lo + hi) // 2
        else:
            t = 2 * t
        t = min(max(t, lo + 1), hi - 1) if hi else max(t, lo + 1)
        if t > _MAX_THRESHOLD:  # pragma: no cover - guards a runaway loop on absurd inputs
            raise ValueError(f"no threshold below {t} reaches ARL {arl0}")
    raise RuntimeError("threshold search did not converge")  # pragma: no cover


def _skip_free_threshold(up: int, p: float, arl0: float) -> int:
    """:func:`threshold_for_arl` of a chart falling 1 unit per ok event, in one pass of
    :func:`_skip_free_scan`, stopped at the first threshold whose ARL reaches ``arl0`` (``ln ARL`` rises
    with the threshold); 0 when the answer is ``up + 2`` or less (thresholds whose ARL :func:`arl` takes
    from the banded solve)."""
    threshold, c, e = _skip_free_scan(up, p, _MAX_THRESHOLD, arl0)
    if math.log((1.0 + p * c) / (p * (1.0 - e))) < math.log(arl0):  # pragma: no cover - runaway guard
        raise ValueError(f"no threshold below {_MAX_THRESHOLD} reaches ARL {arl0}")
    return threshold if threshold > up + 2 else 0


def lattice(p0: float, p1: float, resolution: int = 1, tolerance: float = 1e-4) -> tuple[int, int, float]:
    """Integer steps ``(up, down, unit)`` of the LLR chart for ``p0 -> p1`` (``p1 > p0``).

    ``down <= resolution`` is the smallest denominator that approximates ``a/b`` by ``up/down`` within
    ``tolerance`` (relative; else the best one); ``unit`` is one lattice step in nats:
    ``down * unit = ln((1-p0)/(1-p1))`` exactly and ``up * unit`` is ``ln(p1/p0)`` to that precision.
    """
    if not 0.0 < p0 < p1 < 1.0:
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    a = math.log(p1 / p0)
    b = math.log((1.0 - p0) / (1.0 - p1))
    ratio = a / b

    def error(d: int) -> float:
        return abs(max(1, round(ratio * d)) / d - ratio) / ratio

    good = [d for d in range(1, resolution + 1) if error(d) < tolerance]
    down = good[0] if good else min(range(1, resolution + 1), key=lambda d: (error(d), d))
    return max(1, round(ratio * down)), down, b / down


def llr_chart_arl(p0: float, p1: float, h: float, p: float, resolution: int = 16) -> float:
    """Zero-state ARL of the real-valued LLR chart (alarm at ``S >= h`` nats) at defect probability ``p``."""
    up, down, unit = lattice(p0, p1, resolution)
    return arl(up, down, max(1, math.ceil(h / unit - 1e-9)), p)


def llr_threshold_for_arl(p0: float, p1: float, arl0: float, resolution: int = 16) -> float:
    """Threshold ``h`` (nats) of the real-valued LLR chart ``p0 -> p1`` with zero-state ARL ``arl0``."""
    up, down, unit = lattice(p0, p1, resolution)
    return threshold_for_arl(up, down, p0, arl0) * unit


def llr_steady_state_delay(p0: float, p1: float, h: float, resolution: int = 16) -> float:
    """Mean delay (events, counting the alarming one) of the LLR chart when the change ``p0 -> p1``
    arrives after a long in-control run without alarm."""
    up, down, unit = lattice(p0, p1, resolution)
    threshold = max(1, math.ceil(h / unit - 1e-9))
    return float(quasi_stationary(up, down, threshold, p0) @ arl_vector(up, down, threshold, p1))
