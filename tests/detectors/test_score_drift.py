"""ScoreDrift: repeated two-sample KS tests of recent scores against a reference sample."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest

from detectors.score_drift import ScoreDrift, ks_critical_value, ks_p_value, ks_statistic

Draw = Callable[[random.Random], float]
CHANGE = 2_000


def in_control(rng: random.Random) -> float:
    return rng.gauss(0.7, 0.05)


def two_modes(rng: random.Random) -> float:
    """Half the scores at 0.6, half at 0.8: the same mean (0.7), another shape."""
    return rng.gauss(rng.choice((0.6, 0.8)), 0.05)


def wider(rng: random.Random) -> float:
    return rng.gauss(0.7, 0.15)


def higher(rng: random.Random) -> float:
    return rng.gauss(0.75, 0.05)


def first_alarm(seed: int, after: Draw, n: int = 4_000, **params: float) -> int | None:
    rng = random.Random(seed)
    drift = ScoreDrift(**params)  # type: ignore[arg-type]
    for i in range(n):
        if drift.update(in_control(rng) if i < CHANGE else after(rng)).drift_detected:
            return i
    return None


# -- the statistic and its null distribution -----------------------------------------------------------


def test_ks_statistic_is_the_largest_cdf_gap_with_ties():
    rng = random.Random(5)
    for _ in range(200):
        a = sorted(round(rng.random(), 1) for _ in range(rng.randint(1, 30)))  # many ties
        b = sorted(round(rng.random() ** 2, 1) for _ in range(rng.randint(1, 30)))
        brute = max(abs(sum(x <= t for x in a) / len(a) - sum(x <= t for x in b) / len(b)) for t in a + b)
        assert ks_statistic(a, b) == pytest.approx(brute, abs=1e-12)
    assert ks_statistic([0.5] * 4, [0.5] * 7) == 0.0
    assert ks_statistic([0.1, 0.2], [0.3, 0.4]) == 1.0


def _exact_tail(m: int, n: int, bound: int) -> float:
    """Exact ``P(max |i n - j m| >= bound)`` over a uniformly random monotone lattice path from (0, 0) to
    (m, n): the probability that the two-sample KS statistic of continuous i.i.d. samples is at least
    ``bound / (m n)``."""
    prev = [0.0] * (n + 1)
    for i in range(m + 1):
        cur = [0.0] * (n + 1)
        for j in range(n + 1):
            if abs(i * n - j * m) >= bound:
                continue
            if i == 0 and j == 0:
                cur[0] = 1.0
                continue
            p = prev[j] * (m - i + 1) / (m - i + 1 + n - j) if i else 0.0
            if j:
                p += cur[j - 1] * (n - j + 1) / (m - i + n - j + 1)
            cur[j] = p
        prev = cur
    return 1.0 - prev[n]


@pytest.mark.parametrize(("m", "n"), [(500, 200), (200, 100), (100, 50), (300, 300)])
@pytest.mark.parametrize("alpha", [0.05, 1e-3, 1e-6])
def test_critical_values_are_conservative_against_the_exact_distribution(m, n, alpha):
    d = ks_critical_value(alpha, m, n)
    assert ks_p_value(d, m, n) == pytest.approx(alpha, rel=1e-9)
    exact = _exact_tail(m, n, math.floor(d * m * n) + 1)  # the chance a test rejects: D > d
    assert 0.4 * alpha < exact <= alpha


# -- detection -------------------------------------------------------------------------------------------


def test_the_seeded_doctest_scenario_is_found_where_documented():
    # the doctest's seed, another scenario (two_modes): found after the change at 2000, within five checks
    assert first_alarm(3, two_modes, reference_size=500, window_size=200, check_every=25) == 2124


@pytest.mark.parametrize(
    ("after", "indices"),
    [
        (two_modes, {2099: 1, 2149: 27, 2199: 2}),  # shape only: same mean, one mode split in two
        (wider, {2149: 16, 2199: 14}),  # spread only
        (higher, {2049: 2, 2099: 16, 2149: 12}),  # mean only
    ],
    ids=["shape", "variance", "mean"],
)
def test_a_change_at_2000_is_found_within_a_few_checks(after, indices):
    """Defaults: 500 reference values, a 200-value window tested every 50 values (at 699, 749, ...)."""
    found: dict[int | None, int] = {}
    for seed in range(30):
        index = first_alarm(seed, after)
        found[index] = found.get(index, 0) + 1
    assert found == indices


def test_shape_change_at_equal_mean_is_invisible_to_the_mean_but_not_to_the_detector():
    rng = random.Random(8)
    before = [in_control(rng) for _ in range(20_000)]
    after = [two_modes(rng) for _ in range(20_000)]
    assert abs(sum(after) / len(after) - sum(before) / len(before)) < 0.002
    assert first_alarm(8, two_modes) == 2199


def test_in_control_streams_false_alarm_within_the_budget():
    """alpha = 0.05 per 5,000 values: over 200 in-control streams of 5,000 tested values, at most 5% of them
    may alarm in expectation (Bonferroni over the 101 overlapping tests; scores rounded, with ties)."""
    alarmed = total_alarms = 0
    for seed in range(200):
        rng = random.Random(10_000 + seed)
        drift = ScoreDrift(alpha=0.05, horizon=5_000)
        alarms = 0
        for _ in range(700 + 5_000):
            alarms += drift.update(round(rng.betavariate(14, 6), 3)).drift_detected  # rounded: ties
        assert drift.checks == 101
        alarmed += alarms > 0
        total_alarms += alarms
    assert (alarmed, total_alarms) == (4, 4)  # each false alarm is one short episode
    assert alarmed <= 0.05 * 200  # the promise: at most 10 expected


def test_a_single_test_rejects_at_about_its_level():
    """One test per stream at level 0.1: the measured rate is the exact level (~0.093), not far below."""
    rejected = 0
    for seed in range(1_000):
        rng = random.Random(seed)
        drift = ScoreDrift(check_every=200, horizon=200, alpha=0.1, resolve_alpha=0.2)
        for _ in range(700):
            drift.update(rng.random())
        assert drift.checks == 1
        rejected += drift.in_alarm
    assert rejected == 91  # binomial(1000, ~0.093): 95% within 75..111


# -- episodes: resolve and rebase ----------------------------------------------------------------------


def test_alarm_stays_on_while_the_window_differs_and_resolves_when_it_is_back():
    rng = random.Random(4)
    drift = ScoreDrift()
    events = []
    for i in range(6_000):
        drift.update(two_modes(rng) if CHANGE <= i < 3_000 else in_control(rng))
        if drift.drift_detected or drift.resolved:
            events.append((i, "alarm" if drift.drift_detected else "resolved"))
        if CHANGE + 300 <= i < 3_000 and drift.checked:
            assert drift.in_alarm and drift.statistic > drift.resolve_threshold
    assert events == [(2149, "alarm"), (3149, "resolved")]
    assert drift.n_alarms == 1 and not drift.in_alarm


def test_rebase_adopts_the_new_distribution():
    rng = random.Random(4)
    drift = ScoreDrift()
    for i in range(2_200):
        drift.update(two_modes(rng) if i >= CHANGE else in_control(rng))
    assert drift.in_alarm and drift.n_alarms == 1
    drift.rebase()
    assert drift.resolved and not drift.in_alarm and not drift.reference_ready
    assert drift.summary()["reference"]["n"] == 200 and drift.summary()["window"] == {"n": 0}
    for _ in range(3_000):
        assert not drift.update(two_modes(rng)).drift_detected
    assert drift.checks > 40 and drift.n_alarms == 1
    for _ in range(400):  # and the old distribution is now the change
        drift.update(in_control(rng))
    assert drift.in_alarm and drift.n_alarms == 2


# -- state ---------------------------------------------------------------------------------------------


def test_json_round_trip_mid_stream_gives_identical_outputs():
    rng = random.Random(12)
    values = [in_control(rng) for _ in range(CHANGE)] + [two_modes(rng) for _ in range(1_000)]
    values += [in_control(rng) for _ in range(1_500)]
    for split in (300, 650, 2_100, 2_160):
        original = ScoreDrift()
        for x in values[:split]:
            original.update(x)
        restored = ScoreDrift.from_dict(json.loads(json.dumps(original.to_dict(), allow_nan=False)))
        for x in values[split:]:
            a, b = original.update(x), restored.update(x)
            assert (a.drift_detected, a.resolved, a.in_alarm, a.checked, a.statistic, a.p_value) == (
                b.drift_detected,
                b.resolved,
                b.in_alarm,
                b.checked,
                b.statistic,
                b.p_value,
            )
        assert original.to_dict() == restored.to_dict()
        assert original.n_alarms == 1 and not original.in_alarm


def test_state_stays_bounded():
    drift = ScoreDrift(reference_size=50, window_size=20, check_every=10)
    rng = random.Random(1)
    for _ in range(20_000):
        drift.update(rng.random())
    state = drift.to_dict()["state"]
    assert len(state["_reference"]) == 50
    assert len(state["_ring"]) == len(state["_window"]) == 20
    assert state["_window"] == sorted(state["_ring"])
    assert len(json.dumps(state)) < 3_000


@pytest.mark.parametrize(
    "params",
    [
        {"reference_size": 5},
        {"window_size": 9},
        {"check_every": 0},
        {"check_every": 201},
        {"alpha": 0.0},
        {"alpha": 1.0},
        {"horizon": 10},
        {"resolve_alpha": 1e-6},
        {"resolve_alpha": 1.0},
    ],
)
def test_bad_parameters_are_rejected(params):
    with pytest.raises(ValueError):
        ScoreDrift(**params)


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected(x):
    with pytest.raises(ValueError):
        ScoreDrift().update(x)
