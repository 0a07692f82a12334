"""Always-valid comparison of two human-calibrated defect rates (prediction-powered mSPRT).

A judge labels every turn; humans label a small sample. A version comparison on the judge's verdicts alone
measures the *judge's* defect rate, and a judge that misses the new version's kind of defect hides part of
a regression. Here each arm's defect rate is the prediction-powered (PPI, Angelopoulos et al., Science
2023) estimate with ``lambda = 1``::

    theta_a = mean_N(f) + mean_n(y - f)

``f`` in ``[0, 1]`` is the judge's verdict (1 = fail) over all ``N`` judged turns of the arm, ``y`` in
``{0, 1}`` the human truth over its ``n`` labelled turns (a random sample of the judged ones; with known
inclusion probabilities ``pi`` the labelled mean is the Hajek mean with weights ``1 / pi``). The judge's bias
is measured on the labelled turns (the *rectifier* ``r = y - f``) and removed, so the estimate is
unbiased whatever the judge's error rates, even when they differ between the arms. Its variance::

    s2_a = var(f) / N + var_w(mean_n(r))
    var_w(mean_n(r)) = n / (n - 1) * sum w^2 (r - mean_w r)^2 / (sum w)^2

(with-replacement approximation, as in ``detectors.ppi``). A sample with no disagreement would have
``var(r) = 0`` and claim the judge exact, so the variance is computed with half a pseudo-turn at ``f = 0``
and ``f = 1`` for the judge and at ``r = -1`` and ``r = +1`` (of mean weight) for the rectifier. As for
:class:`~detectors.msprt.MixtureSPRT`, the variance of the lift ``d = theta_t - theta_c`` is the larger of
the unpooled ``s2_c + s2_t`` and the pooled one (both arms' sums together, scaled by ``1 / N_c + 1 / N_t``
and ``1 / n_c + 1 / n_t``), which keeps a small canary's lucky streak from passing as a difference.

Time strata. As in :mod:`detectors.msprt`, a traffic split that moves while the defect rate follows the
time of day (a canary ramped up over a day) would be read as a difference, so the judge's part of the lift
is estimated within time strata (an hour of event time in :class:`CalibratedVersionComparison`)::

    d = sum(w (mean_t(f) - mean_c(f))) / sum(w) + mean_n(r)_t - mean_n(r)_c,   w = N_c N_t / (N_c + N_t)

each stratum's judged turns and weight, its variance ``sum(w^2 (var_c(f) / N_c + var_t(f) / N_t)) /
sum(w)^2`` with each arm's ``var(f)`` over the whole test (pooled: ``var(f) / sum(w)``). The rectifiers
stay pooled over the test: labels come minutes to days after their turns, when the turn's stratum is long
closed, and with a few labels an hour per-stratum means would be mostly noise. So the part of a time-of-day
difference that the judge gets wrong (the rectifier's share of it) still reaches the estimate. Under the
canary ramp of ``bench/version_ramp.py``, with a judge that flags 70% of defects, A/A runs rejected in 2
of 100 pooled and in 0 of 100 within strata. With one stratum this is the pooled test exactly.

The test is the normal-mixture SPRT of ``detectors.msprt`` on ``d`` (:func:`~detectors.msprt.mixture_log_lr`,
:func:`~detectors.msprt.confidence_half_width`): the p-value is the running minimum of ``1 / Lambda_n``,
the confidence sequence the running intersection, checked after every judged turn and every label. Nothing
is tested before each arm has ``min_samples`` judged and ``min_labels`` labelled turns. Type-I error and
time to detect with a biased judge and 5% of turns labelled: ``bench/version_calibrated.py``.

:class:`CalibratedVersionComparison` runs one such test per quality dimension for every pair of model
versions that serve a journey at once (live-version tracking of :class:`~detectors.msprt.LiveVersionPairs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

from detectors.always_valid import (
    ARMS,
    NAN,
    LiveVersionPairs,
    _AlwaysValidTest,
    _check_count,
    _check_stratum_seconds,
    mixture_log_lr,
    stratum_of,
    stratum_sums,
)
from detectors.calibrated_variance import (
    _N,
    _W,
    _W2,
    _W2R,
    _W2RR,
    _WR,
    lift_variance,
    rectifier_variances,
)
from detectors.calibrated_variance import (
    PSEUDO as PSEUDO,  # re-exported: the tests and bench/version_calibrated.py import it from here
)


def _unit(name: str, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] (or a bool), got {value!r}")
    return float(value)


class CalibratedComparison(_AlwaysValidTest):
    """Always-valid test of ``theta_treatment - theta_control`` for two human-calibrated defect rates.

    ``update(arm, f)`` adds a judged turn (``f``: the judge's fail, 1/0 or a score in ``[0, 1]``);
    ``add_label(arm, f, y, weight)`` the human truth ``y`` of a judged turn (``weight`` = 1 / its inclusion
    probability). ``update(arm, f, y, weight)`` does both for a turn whose label is already known. The
    decision (``worse`` = the treatment has more defects, or ``better``) is final; ``decided_now`` is
    true on the call that reached it, ``decided_at`` the labelled turns per arm then. See the module doc.

    >>> import random
    >>> rng = random.Random(11)
    >>> test = CalibratedComparison(alpha=0.05, tau2=1e-4, min_labels=30)
    >>> for i in range(200_000):
    ...     arm = "treatment" if rng.random() < 0.5 else "control"
    ...     y = rng.random() < (0.06 if arm == "treatment" else 0.03)   # humans: 3% -> 6%
    ...     f = rng.random() < (0.7 if y else 0.02)                     # the judge misses 30%, adds 2%
    ...     test = test.update(arm, f, y) if rng.random() < 0.05 else test.update(arm, f)
    ...     if test.decided_now:
    ...         print(i, test.decision, test.n_treatment, test.labels_treatment, round(test.p_value, 4))
    ...         break
    17260 worse 8725 460 0.05
    >>> round(test.control_rate, 4), round(test.treatment_rate, 4), round(test.judge_lift, 4)
    (0.0229, 0.0828, 0.0284)
    """

    def __init__(
        self, alpha: float = 0.05, tau2: float = 1e-4, min_samples: int = 100, min_labels: int = 30
    ) -> None:
        super().__init__(alpha, tau2, min_samples)
        _check_count("min_labels", min_labels, 2)
        self.min_labels = min_labels
        self._reset()

    def _reset(self) -> None:
        self._judged = {arm: [0.0, 0.0, 0.0] for arm in ARMS}
        self._labelled = {arm: [0.0] * 6 for arm in ARMS}
        # the rectifier's variance terms (control, treatment, pooled), which only labels change
        self._rectifier = [0.0, 0.0, 0.0]
        self._reset_strata()  # time strata of the judged turns (module doc): [N_c, sum f_c, N_t, sum f_t]
        self._reset_test()  # decided_at: labelled turns (control, treatment)

    def update(
        self, arm: str, f: float, y: bool | None = None, weight: float = 1.0, stratum: int | None = None
    ) -> Self:
        """One judged turn of ``arm``; with ``y`` its human label too. ``stratum``: its time stratum (module
        doc; None, one stratum for all); a turn of an earlier stratum than the open one counts in the open
        one."""
        # a pass/fail verdict (a bool) is the common case: skip the call that checks it
        value = 1.0 if f is True else 0.0 if f is False else _unit("f", f)
        self._check_arm(arm)
        if y is not None:
            self._label(arm, value, y, weight)
        if stratum != self._stratum:
            self._enter_stratum(stratum)
        judged = self._judged[arm]
        judged[0] += 1
        judged[1] += value
        judged[2] += value * value
        at = 0 if arm == "control" else 2
        self._open[at] += 1
        self._open[at + 1] += value
        self._test()
        return self

    def add_label(self, arm: str, f: float, y: bool, weight: float = 1.0) -> Self:
        """The human label ``y`` of a turn already passed to ``update(arm, f)``."""
        value = _unit("f", f)
        self._check_arm(arm)
        self._label(arm, value, y, weight)
        self._test()
        return self

    @staticmethod
    def _check_arm(arm: str) -> None:
        if arm not in ARMS:
            raise ValueError(f"arm must be 'control' or 'treatment', got {arm!r}")

    def _label(self, arm: str, f: float, y: bool, weight: float) -> None:
        if not isinstance(y, bool | int) or y not in (0, 1):
            raise ValueError(f"y must be a bool (or 0/1), got {y!r}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf:
            raise ValueError(f"weight must be a positive finite number, got {weight!r}")
        r, w = float(y) - f, float(weight)
        lab = self._labelled[arm]
        lab[_N] += 1
        lab[_W] += w
        lab[_WR] += w * r
        lab[_W2] += w * w
        lab[_W2R] += w * w * r
        lab[_W2RR] += w * w * r * r
        lc, lt = self._labelled["control"], self._labelled["treatment"]
        if min(lc[_N], lt[_N]) >= 2:
            self._rectifier = rectifier_variances(lc, lt)

    def _test(self) -> None:
        self._decided_now = False
        jc, jt = self._judged["control"], self._judged["treatment"]
        lc, lt = self._labelled["control"], self._labelled["treatment"]
        if min(jc[0], jt[0]) < self.min_samples or min(lc[_N], lt[_N]) < self.min_labels:
            return
        # the lift and its variance inline (this runs for every judged turn of every dimension)
        sums = stratum_sums(self._open, self._closed)
        if sums[1] <= 0.0:  # the arms never met in one stratum yet
            return
        d = sums[0] / sums[1] + lt[_WR] / lt[_W] - lc[_WR] / lc[_W]
        s2 = lift_variance(jc, jt, self._rectifier, sums)
        if self._advance(d, s2, math.exp(-mixture_log_lr(d, s2, self.tau2)), worse=d > 0):
            self._decided_at = [int(lc[_N]), int(lt[_N])]

    def _rate(self, arm: str) -> float:
        judged, lab = self._judged[arm], self._labelled[arm]
        if not judged[0] or not lab[_N]:
            return NAN
        return judged[1] / judged[0] + lab[_WR] / lab[_W]

    @property
    def variance(self) -> float:
        """Variance of the lift estimate (module doc); ``nan`` until each arm has two labels and the arms
        met in one stratum."""
        jc, jt = self._judged["control"], self._judged["treatment"]
        lc, lt = self._labelled["control"], self._labelled["treatment"]
        sums = stratum_sums(self._open, self._closed)
        if sums[1] <= 0.0 or min(lc[_N], lt[_N]) < 2:
            return NAN
        return lift_variance(jc, jt, self._rectifier, sums)

    @property
    def control_rate(self) -> float:
        """Calibrated (PPI) defect rate of the control; not clipped to ``[0, 1]``."""
        return self._rate("control")

    @property
    def treatment_rate(self) -> float:
        return self._rate("treatment")

    @property
    def judge_lift(self) -> float:
        """The judge's own lift (what a judge-only comparison sees), within time strata (module doc); ``nan``
        before the arms met in one stratum."""
        weighted, weight, _, _ = stratum_sums(self._open, self._closed)
        return weighted / weight if weight > 0.0 else NAN

    @property
    def lift(self) -> float:
        """Point estimate of ``theta_treatment - theta_control``: the judge's lift within time strata plus
        the difference of the arms' rectifiers, so under a moving split it is not ``treatment_rate -
        control_rate``, the rates over all turns."""
        lc, lt = self._labelled["control"], self._labelled["treatment"]
        if not lc[_N] or not lt[_N]:
            return NAN
        return self.judge_lift + lt[_WR] / lt[_W] - lc[_WR] / lc[_W]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        test = super().from_dict(data)
        if "_open" not in data["state"]:  # stored before strata: its turns so far are one stratum
            jc, jt = test._judged["control"], test._judged["treatment"]
            test._open = [jc[0], jc[1], jt[0], jt[1]]
        return test

    @property
    def n_control(self) -> int:
        return int(self._judged["control"][0])

    @property
    def n_treatment(self) -> int:
        return int(self._judged["treatment"][0])

    @property
    def labels_control(self) -> int:
        return int(self._labelled["control"][_N])

    @property
    def labels_treatment(self) -> int:
        return int(self._labelled["treatment"][_N])


class CalibratedVersionComparison(LiveVersionPairs):
    """Per quality dimension, a :class:`CalibratedComparison` for every pair of live model versions.

    ``update(version, fails, ts)`` adds one judged turn (``fails``: dimension -> the judge's fail) and
    drives which versions are live, as :class:`~detectors.msprt.VersionComparison` does.
    ``add_label(version, dimension, f, y, ts, weight)`` adds a human label of a turn served at ``ts``: it
    counts in the pairs live now whose treatment was first seen by ``ts`` (a label arrives long after
    its turn; it counts where the turn's verdict could). Labels do not move event time.

    After a call, ``events`` lists ``(control, treatment, dimension, what)`` for tests that just reached
    a decision and ``(control, treatment, "", "ended")`` for pairs no longer live together.

    >>> import random
    >>> rng = random.Random(5)
    >>> cmp = CalibratedVersionComparison(horizon_seconds=3600, min_labels=30)
    >>> for i in range(45_000):
    ...     v2 = i >= 5_000 and rng.random() < 0.5
    ...     y = rng.random() < (0.08 if v2 else 0.03)                   # v2 fails relevance more often
    ...     f = rng.random() < (0.6 if y else 0.02)                     # a judge that misses 40%
    ...     version = "v2" if v2 else "v1"
    ...     cmp = cmp.update(version, {"relevance": f, "safety": False}, ts=float(i))
    ...     if rng.random() < 0.05:
    ...         cmp = cmp.add_label(version, "relevance", f, y, ts=float(i))
    ...     for event in cmp.events:
    ...         print(i, event)
    40737 ('v1', 'v2', 'relevance', 'worse')
    >>> t = cmp.test("v1", "v2")["relevance"]
    >>> round(t.control_rate, 3), round(t.treatment_rate, 3), t.labels_treatment
    (0.038, 0.075, 996)
    """

    def __init__(
        self,
        horizon_seconds: float = 3600.0,
        alpha: float = 0.05,
        tau2: float = 1e-4,
        min_samples: int = 100,
        min_labels: int = 30,
        max_versions: int = 8,
        max_dimensions: int = 16,
        stratum_seconds: float = 3600.0,
    ) -> None:
        super().__init__(horizon_seconds, max_versions)
        CalibratedComparison(alpha, tau2, min_samples, min_labels)  # fails early on bad values
        _check_count("max_dimensions", max_dimensions, 1)
        _check_stratum_seconds(stratum_seconds)
        self.alpha = alpha
        self.tau2 = tau2
        self.min_samples = min_samples
        self.min_labels = min_labels
        self.max_dimensions = max_dimensions
        self.stratum_seconds = stratum_seconds
        self._reset()

    def _new_test(self) -> dict[str, CalibratedComparison]:
        return {}

    def _dump_test(self, test: dict[str, CalibratedComparison]) -> dict[str, Any]:
        return {dim: t.to_dict() for dim, t in test.items()}

    def _load_test(self, data: dict[str, Any]) -> dict[str, CalibratedComparison]:
        return {dim: CalibratedComparison.from_dict(t) for dim, t in data.items()}

    def _dimension(self, tests: dict[str, CalibratedComparison], dim: str) -> CalibratedComparison | None:
        test = tests.get(dim)
        if test is None and len(tests) < self.max_dimensions:
            test = tests[dim] = CalibratedComparison(self.alpha, self.tau2, self.min_samples, self.min_labels)
        return test

    def update(self, version: str, fails: Mapping[str, float], ts: float) -> Self:
        if not isinstance(fails, Mapping):
            raise ValueError(f"fails must map dimension -> judge fail, got {fails!r}")
        stratum = stratum_of(ts, self.stratum_seconds)
        for control, treatment, tests in self._arrive(version, ts):
            arm = "treatment" if version == treatment else "control"
            for dim, f in fails.items():
                test = tests.get(dim) or self._dimension(tests, dim)
                if test is not None:
                    test.update(arm, f, stratum=stratum)
                    if test.decided_now:
                        self._events.append([control, treatment, dim, test.decision])
        self._settle()
        return self

    def add_label(
        self, version: str, dimension: str, f: float, y: bool, ts: float, weight: float = 1.0
    ) -> Self:
        self._events = []
        if version not in self._seen:
            return self
        for control, treatment in self.live_pairs:
            if version not in (control, treatment) or ts < self._seen[treatment][0]:
                continue
            test = self._dimension(self._tests[control][treatment], dimension)
            if test is None:
                continue
            test.add_label("treatment" if version == treatment else "control", f, y, weight)
            if test.decided_now:
                self._events.append([control, treatment, dimension, test.decision])
        return self

    def _settle(self) -> None:
        live = self.live_pairs
        if self._live:
            self._events.extend([*pair, "", "ended"] for pair in self._live if pair not in live)
        self._live = live

    @property
    def events(self) -> list[tuple[str, str, str, str]]:  # type: ignore[override]
        return [(c, t, dim, what) for c, t, dim, what in self._events]

    def test(self, control: str, treatment: str) -> dict[str, CalibratedComparison]:
        tests: dict[str, CalibratedComparison] = self._tests[control][treatment]
        return tests

    def tests(self) -> list[tuple[str, str, str, CalibratedComparison]]:
        return [
            (c, t, dim, test)
            for c, by in sorted(self._tests.items())
            for t, tests in sorted(by.items())
            for dim, test in sorted(tests.items())
        ]
