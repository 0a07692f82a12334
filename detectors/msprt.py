"""Always-valid comparison of two defect rates (mixture sequential probability ratio test, mSPRT).

Reference: Johari, Koomen, Pekelis, Walsh, "Always valid inference: continuous monitoring of A/B tests",
Operations Research 70(3) (2022), arXiv:1512.04922; the two-sample Bernoulli case as in Optimizely's Stats
Engine (Pekelis, Walsh, Johari, "The new Stats Engine", 2015).

Setting. Two arms, ``control`` (the old model version) and ``treatment`` (the new one), each a stream of
Bernoulli outcomes (1 = defect). The target is the lift ``theta = p_treatment - p_control``. The running
difference of means ``d`` is approximately ``N(theta, s2)`` with the plug-in variance::

    s2 = max(v_c / n_c + v_t / n_t, v (1 / n_c + 1 / n_t)),  v_a = q_a (1 - q_a),  q_a = (x_a + 1) / (n_a + 2)

where ``v`` is the same for the pooled rate of both arms (the add-one smoothing of Agresti and Caffo keeps
``s2 > 0`` at zero counts). The unpooled term alone under-estimates the variance when a small arm (a 10%
canary) happens to show few defects: measured at a 10% split it rejected 8% of A/A runs at alpha = 5%,
and 2% with the maximum, with no loss of power against regressions. Mixing the likelihood ratio
of ``theta`` against ``theta0`` over ``theta ~ N(theta0, tau2)`` gives::

    Lambda(theta0) = sqrt(s2 / (s2 + tau2)) * exp(tau2 (d - theta0)^2 / (2 s2 (s2 + tau2)))

a non-negative martingale under ``theta = theta0`` (exactly so for Gaussian data with known variance and a
stable traffic split), so by Ville's inequality ``P(sup_n Lambda_n >= 1 / alpha) <= alpha``: checking after
every observation does not inflate the false-positive rate. The always-valid p-value is the running
minimum of ``1 / Lambda_n(0)``; the confidence sequence is the running intersection of
``{theta0 : Lambda_n(theta0) < 1 / alpha}``, i.e. of ``d +- h`` with::

    h = sqrt(2 s2 (s2 + tau2) / tau2 * (ln(1 / alpha) + ln((s2 + tau2) / s2) / 2))

Time strata. Pooled over time, a split that moves while the rate does is read as a difference: a canary
ramped from 5% to 50% of turns while the defect rate follows the time of day (2% at night, 4% by day) rejected
most A/A runs (``bench/version_ramp.py``). So the lift is estimated within time strata (``stratum``, an hour
of event time in :class:`VersionComparison`) and combined with the weights ``w = n_c n_t / (n_c + n_t)``
of each stratum's counts::

    d = sum(w d_s) / sum(w),   s2 = sum(w^2 s2_s) / sum(w)^2

with ``d_s`` each stratum's difference and ``s2_s`` its variance as above, from each arm's (and the pooled)
rate over the whole test, not the stratum's: on a quiet journey, a few turns an hour with add-one smoothing
made the variance several times too large. A stratum where an arm is empty adds nothing; with one stratum
this is the pooled test exactly. A late outcome of an earlier stratum counts in the open one.

``tau2`` is the prior variance of the lift: the test is most sensitive to lifts of about ``sqrt(tau2)``
and still valid for any other. Nothing is tested before each arm has ``min_samples`` observations (the
normal approximation is poor on a handful of defects). The plug-in variance makes the guarantee
approximate; ``bench/version_test.py`` measures it (A/A false-positive rate under continuous monitoring
against a naive repeated z-test) and the time to detect given regressions.
"""

from __future__ import annotations

import math
from typing import Any, Self

# the shared base lives in detectors.always_valid; its names stay importable from here
from detectors.always_valid import (
    ARMS,
    DECISIONS,
    NAN,
    LiveVersionPairs,
    _AlwaysValidTest,
    _check_count,
    _check_fraction,
    _check_stratum_seconds,
    confidence_half_width,
    mixture_log_lr,
    stratum_of,
    stratum_sums,
)

__all__ = [
    "ARMS",
    "DECISIONS",
    "NAN",
    "LiveVersionPairs",
    "MixtureSPRT",
    "VersionComparison",
    "_AlwaysValidTest",
    "_check_count",
    "_check_fraction",
    "confidence_half_width",
    "mixture_log_lr",
]


class MixtureSPRT(_AlwaysValidTest):
    """Always-valid test of ``p_treatment - p_control`` for two Bernoulli streams (see the module doc).

    ``update(arm, defect)`` adds one outcome to ``"control"`` or ``"treatment"``. ``decision`` becomes
    ``"worse"`` (treatment significantly worse) or ``"better"`` once the always-valid p-value reaches
    ``alpha``, and stays so; ``decided_now`` is true on that update only, ``decided_at`` holds the turns
    per arm then. With ``higher_is_better`` the outcomes are successes rather than defects, which flips
    what "worse" means.

    >>> import random
    >>> rng = random.Random(8)
    >>> test = MixtureSPRT(alpha=0.05, tau2=1e-4)
    >>> for i in range(40_000):
    ...     arm = "treatment" if rng.random() < 0.5 else "control"
    ...     test = test.update(arm, rng.random() < (0.06 if arm == "treatment" else 0.03))
    ...     if test.decided_now:
    ...         print(i, test.decision, test.n_control, test.n_treatment, round(test.p_value, 4))
    2968 worse 1468 1501 0.0498
    >>> round(test.lift, 4), [round(x, 4) for x in test.interval]
    (0.0302, [0.0267, 0.0367])
    """

    def __init__(
        self, alpha: float = 0.05, tau2: float = 1e-4, min_samples: int = 100, higher_is_better: bool = False
    ) -> None:
        super().__init__(alpha, tau2, min_samples)
        if not isinstance(higher_is_better, bool):
            raise ValueError(f"higher_is_better must be a bool, got {higher_is_better!r}")
        self.higher_is_better = higher_is_better
        self._reset()

    def _reset(self) -> None:
        self._n = {"control": 0, "treatment": 0}
        self._x = {"control": 0, "treatment": 0}
        self._reset_strata()  # time strata (module doc)
        self._reset_test()

    def update(self, arm: str, defect: bool, stratum: int | None = None) -> Self:
        """Add one outcome of ``arm``; ``stratum`` is its time stratum (module doc: None, one stratum for
        all). An outcome of an earlier stratum than the open one counts in the open one."""
        if arm not in ARMS:
            raise ValueError(f"arm must be 'control' or 'treatment', got {arm!r}")
        if not isinstance(defect, int) or defect not in (0, 1):  # a bool is an int
            raise ValueError(f"defect must be a bool (or 0/1), got {defect!r}")
        self._decided_now = False
        counts, defects = self._n, self._x
        if stratum != self._stratum:
            self._enter_stratum(stratum)
        counts[arm] += 1
        defects[arm] += int(defect)
        at = 0 if arm == "control" else 2
        self._open[at] += 1
        self._open[at + 1] += int(defect)
        n_c, n_t = counts["control"], counts["treatment"]
        if n_c < self.min_samples or n_t < self.min_samples:
            return self
        estimate = self._estimate()
        if estimate is None:  # the arms never met in one stratum yet
            return self
        d, s2 = estimate
        p = math.exp(-mixture_log_lr(d, s2, self.tau2)) if s2 > 0 else 1.0
        if self._advance(d, s2, p, worse=(d > 0) != self.higher_is_better):
            self._decided_at = [n_c, n_t]
        return self

    def _estimate(self) -> tuple[float, float] | None:
        """The stratified lift estimate and its variance (module doc), or None before the arms met."""
        weighted, weight, over_c, over_t = stratum_sums(self._open, self._closed)
        if weight <= 0.0:
            return None
        # each arm's rate over the whole test in every stratum's variance: per stratum, a few turns with
        # add-one smoothing inflated it several-fold on a quiet journey
        n, x = self._n, self._x
        c, t = n["control"], n["treatment"]
        q_c, q_t = (x["control"] + 1) / (c + 2), (x["treatment"] + 1) / (t + 2)
        q = (x["control"] + x["treatment"] + 1) / (c + t + 2)
        spread = max(q_c * (1 - q_c) * over_c + q_t * (1 - q_t) * over_t, q * (1 - q) * weight)
        return weighted / weight, spread / (weight * weight)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        test = super().from_dict(data)
        if "_open" not in data["state"]:  # stored before strata: its counts so far are one stratum
            n, x = test._n, test._x
            test._open = [n["control"], x["control"], n["treatment"], x["treatment"]]
        return test

    @property
    def variance(self) -> float:
        """Plug-in variance ``s2`` of the lift estimate (module doc; ``nan`` before the arms met)."""
        estimate = self._estimate()
        return NAN if estimate is None else estimate[1]

    @property
    def control_rate(self) -> float:
        n = self._n["control"]
        return self._x["control"] / n if n else NAN

    @property
    def treatment_rate(self) -> float:
        n = self._n["treatment"]
        return self._x["treatment"] / n if n else NAN

    @property
    def lift(self) -> float:
        """Point estimate of ``p_treatment - p_control``: within time strata (module doc), so under a
        moving split it is not ``treatment_rate - control_rate``, the rates over all turns."""
        estimate = self._estimate()
        return NAN if estimate is None else estimate[0]

    @property
    def n_control(self) -> int:
        return self._n["control"]

    @property
    def n_treatment(self) -> int:
        return self._n["treatment"]

    def summary(self) -> dict[str, Any]:
        return {
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
            "control_rate": self.control_rate,
            "treatment_rate": self.treatment_rate,
            "lift": self.lift,
            "interval": list(self.interval),
            "p_value": self.p_value,
            "decision": self.decision,
            "decided_at": list(self.decided_at) if self.decided_at else None,
        }


class VersionComparison(LiveVersionPairs):
    """Compares every pair of model versions that serve one stream (a journey) at the same time.

    ``update(version, defect, ts)`` adds one judged turn served by ``version`` at event time ``ts``. A
    version is *live* while it was seen within ``horizon_seconds`` of the newest event time. Each live
    pair gets a :class:`MixtureSPRT`: control = the version first seen earlier, treatment = the newer one.
    A turn counts in a pair only while both are live, so a comparison never mixes periods, and the arms are
    compared within strata of ``stratum_seconds`` of event time (0: pooled; module doc), so a traffic
    split that moves with the time of day is not read as a difference. At most
    ``max_versions`` versions are tracked (the least recently seen is forgotten with its tests). With
    ``higher_is_better`` the outcomes are successes (containment, task completion), not defects.

    After an update, ``events`` lists ``(control, treatment, what)`` for pairs whose test just reached a
    decision (``worse`` or ``better``) or that stopped being live together (``ended``).

    >>> import random
    >>> rng = random.Random(3)
    >>> cmp = VersionComparison(horizon_seconds=3600, tau2=1e-4)
    >>> for i in range(30_000):
    ...     canary = i >= 5_000 and rng.random() < 0.2                # v2 takes 20% of traffic from i=5000
    ...     version, rate = ("v2", 0.07) if canary else ("v1", 0.03)
    ...     cmp = cmp.update(version, rng.random() < rate, ts=float(i))
    ...     for event in cmp.events:
    ...         print(i, event)
    10045 ('v1', 'v2', 'worse')
    >>> t = cmp.test("v1", "v2")
    >>> t.n_control, t.n_treatment, round(t.treatment_rate, 3), round(t.control_rate, 3)
    (19977, 5013, 0.066, 0.03)
    """

    def __init__(
        self,
        horizon_seconds: float = 3600.0,
        alpha: float = 0.05,
        tau2: float = 1e-4,
        min_samples: int = 100,
        max_versions: int = 8,
        higher_is_better: bool = False,
        stratum_seconds: float = 3600.0,
    ) -> None:
        super().__init__(horizon_seconds, max_versions)
        MixtureSPRT(alpha, tau2, min_samples, higher_is_better)  # fails early on bad values
        _check_stratum_seconds(stratum_seconds)
        self.alpha = alpha
        self.tau2 = tau2
        self.min_samples = min_samples
        self.higher_is_better = higher_is_better
        self.stratum_seconds = stratum_seconds
        self._reset()

    def _new_test(self) -> MixtureSPRT:
        return MixtureSPRT(self.alpha, self.tau2, self.min_samples, self.higher_is_better)

    def _dump_test(self, test: MixtureSPRT) -> dict[str, Any]:
        return test.to_dict()

    def _load_test(self, data: dict[str, Any]) -> MixtureSPRT:
        return MixtureSPRT.from_dict(data)

    def update(self, version: str, defect: bool, ts: float) -> Self:
        stratum = stratum_of(ts, self.stratum_seconds)
        for control, treatment, test in self._arrive(version, ts):
            test.update("treatment" if version == treatment else "control", defect, stratum)
            if test.decided_now:
                self._events.append([control, treatment, test.decision])
        self._settle()
        return self

    def test(self, control: str, treatment: str) -> MixtureSPRT:
        test: MixtureSPRT = self._tests[control][treatment]
        return test

    def tests(self) -> list[tuple[str, str, MixtureSPRT]]:
        return [(c, t, test) for c, by in sorted(self._tests.items()) for t, test in sorted(by.items())]
