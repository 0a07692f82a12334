"""The variance of the human-calibrated lift of :class:`~detectors.calibrated_comparison.CalibratedComparison`
(its module doc): the sums each arm keeps, the pseudo-turns that keep a sample with no disagreement from
claiming the judge exact, and the larger of the unpooled and the pooled variance of the lift.
"""

from __future__ import annotations

#: Pseudo-turns (each side) added to the variance sums (module doc of :mod:`detectors.calibrated_comparison`).
PSEUDO = 0.5
# judged sums per arm: [N, sum f, sum f^2];
# labelled sums: [n, sum w, sum w r, sum w^2, sum w^2 r, sum w^2 r^2] (r = y - f, w = weight)
_N, _W, _WR, _W2, _W2R, _W2RR = range(6)


def _judge_variance(n: float, s: float, ss: float) -> float:
    """Variance of one judged turn's ``f`` from ``n`` turns, ``sum f``, ``sum f^2``, with ``PSEUDO`` turns
    at 0 and at 1."""
    n, s, ss = n + 2 * PSEUDO, s + PSEUDO, ss + PSEUDO
    return max(ss / n - (s / n) ** 2, 0.0)


def _rectifier_variance(lab: list[float]) -> float:
    """Variance of the weighted mean rectifier, ``PSEUDO`` turns of mean weight at ``r = -1`` and ``+1``."""
    w_bar = lab[_W] / lab[_N]
    n, w = lab[_N] + 2 * PSEUDO, lab[_W] + 2 * PSEUDO * w_bar
    w2, w2r, w2rr = lab[_W2] + 2 * PSEUDO * w_bar**2, lab[_W2R], lab[_W2RR] + 2 * PSEUDO * w_bar**2
    mean = lab[_WR] / w
    spread = max(w2rr - 2 * mean * w2r + mean * mean * w2, 0.0)
    return n / (n - 1) * spread / (w * w)


def rectifier_variances(lc: list[float], lt: list[float]) -> list[float]:
    """The rectifier's variance terms (control, treatment, pooled) from the arms' labelled sums ``lc`` and
    ``lt``, each with at least two labels."""
    pooled = [a + b for a, b in zip(lc, lt, strict=True)]
    return [
        _rectifier_variance(lc),
        _rectifier_variance(lt),
        _rectifier_variance(pooled) * pooled[_N] * (1 / lc[_N] + 1 / lt[_N]),
    ]


def lift_variance(
    jc: list[float], jt: list[float], rectifier: list[float], sums: tuple[float, float, float, float]
) -> float:
    """The lift's variance (module doc): the judged part within strata (``sums``:
    :func:`~detectors.always_valid.stratum_sums`) with each arm's variance over the whole test (``jc``,
    ``jt``: the judged sums), the rectifier's (:func:`rectifier_variances`) over the whole test."""
    rc, rt, r_pooled = rectifier
    _, weight, over_c, over_t = sums
    judged = (_judge_variance(*jc) * over_c + _judge_variance(*jt) * over_t) / (weight * weight)
    pooled = _judge_variance(jc[0] + jt[0], jc[1] + jt[1], jc[2] + jt[2]) / weight
    return max(judged + rc + rt, pooled + r_pooled)
