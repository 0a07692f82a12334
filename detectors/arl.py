"""Exact run lengths of Bernoulli CUSUM charts by the Markov-chain method (Brook & Evans 1972).

A chart on an integer lattice, ``S = max(0, S + up)`` on a defect and ``S = max(0, S - down)`` otherwise,
alarming when ``S >= threshold``, is a finite Markov chain on the states ``0 .. threshold - 1``. Its
average run length (ARL) from every state solves ``(I - Q) L = 1``, a banded system (``down`` diagonals
below, ``up`` above) that LAPACK solves in ``O(threshold * up * down)``. For such a chart the result is
exact, not an approximation.

The log-likelihood-ratio chart of :class:`detectors.bernoulli_cusum.BernoulliCUSUM` has real-valued
steps ``a = ln(p1/p0)`` and ``-b = ln((1-p0)/(1-p1))``. :func:`lattice` maps it onto the lattice with
``down = resolution`` units per ``b``; the only approximation is rounding ``a/b`` to a multiple of
``1/resolution`` (relative error ``< 0.5 / (resolution * a/b)``), which vanishes as ``resolution`` grows.
With ``resolution=1`` the lattice chart *is* the integer chart of Reynolds & Stoumbos (1999).
"""

from __future__ import annotations

import math

import numpy as np


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
    return float(arl_vector(up, down, threshold, p)[0])


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


def threshold_for_arl(up: int, down: int, p: float, arl0: float) -> int:
    """Smallest integer threshold whose zero-state ARL at defect probability ``p`` is at least ``arl0``.

    Raises ``ValueError`` when the chart drifts upward at ``p`` (no threshold reaches a large ARL).
    """
    _validate(up, down, 1, p)
    if arl0 <= 1.0:
        return 1
    if p * up >= (1.0 - p) * down:
        raise ValueError(f"chart with up={up}, down={down} drifts upward at p={p}: its ARL stays small")
    # the ARL grows about exponentially in the threshold: double until it brackets arl0, then bisect
    lo, hi = 0, max(up, down)
    while arl(up, down, hi, p) < arl0:
        lo, hi = hi, 2 * hi
        if hi > 50_000_000:  # pragma: no cover - guards a runaway loop on absurd inputs
            raise ValueError(f"no threshold below {hi} reaches ARL {arl0}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if arl(up, down, mid, p) >= arl0:
            hi = mid
        else:
            lo = mid
    return hi


def lattice(p0: float, p1: float, resolution: int = 1) -> tuple[int, int, float]:
    """Integer steps ``(up, down, unit)`` of the LLR chart for ``p0 -> p1`` (``p1 > p0``).

    ``unit`` is the size of one lattice step in LLR (nats): ``down * unit = ln((1-p0)/(1-p1))`` and
    ``up * unit`` is ``ln(p1/p0)`` rounded to the lattice.
    """
    if not 0.0 < p0 < p1 < 1.0:
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    a = math.log(p1 / p0)
    b = math.log((1.0 - p0) / (1.0 - p1))
    unit = b / resolution
    return max(1, round(a / unit)), resolution, unit


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
