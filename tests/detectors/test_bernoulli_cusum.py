"""BernoulliCUSUM (the known-rates oracle) and the exact Markov-chain run lengths of detectors.arl."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from detectors import arl
from detectors.bernoulli_cusum import BernoulliCUSUM

# 2% -> 6% at ARL0 = 1e6: threshold and steady-state delay from the exact chain (KNOWN.md: 319 events)
H_2_6 = arl.llr_threshold_for_arl(0.02, 0.06, 1e6)


def _alarms(cusum: BernoulliCUSUM, xs: np.ndarray) -> list[int]:
    found = []
    for i, x in enumerate(xs.tolist()):
        if cusum.update(x).drift_detected:
            found.append(i)
    return found


# -- the Markov chain ------------------------------------------------------------------------------


def _dense_arl(up: int, down: int, threshold: int, p: float) -> np.ndarray:
    """The same chain solved densely, transition by transition, as a reference."""
    q = np.zeros((threshold, threshold))
    for s in range(threshold):
        if s + up < threshold:
            q[s, s + up] += p
        q[s, max(0, s - down)] += 1 - p
    return np.linalg.solve(np.eye(threshold) - q, np.ones(threshold))


@pytest.mark.parametrize(("up", "down", "threshold", "p"), [(3, 1, 20, 0.2), (5, 2, 33, 0.1), (1, 3, 7, 0.5)])
def test_banded_solution_matches_a_dense_solve(up, down, threshold, p):
    np.testing.assert_allclose(
        arl.arl_vector(up, down, threshold, p), _dense_arl(up, down, threshold, p), rtol=1e-10
    )


@pytest.mark.parametrize(
    ("up", "threshold", "p"), [(40, 725, 0.02), (19, 138, 0.02), (400, 2114, 0.001), (3, 30, 0.2)]
)
def test_fast_skip_free_arl_matches_the_banded_solve(up, threshold, p):
    # down = 1 charts (DefectRateSpike's) use an O(threshold) recursion instead of the banded solve
    assert arl.arl(up, 1, threshold, p) == pytest.approx(arl.arl_vector(up, 1, threshold, p)[0], rel=1e-8)


def test_small_chain_arl_agrees_with_simulation():
    # integer chart up 3, down 1, threshold 12 at p = 0.2: exact ARL vs 20,000 simulated run lengths
    exact = arl.arl(3, 1, 12, 0.2)
    rng = np.random.default_rng(11)
    runs, s, steps = np.zeros(20_000), np.zeros(20_000, dtype=np.int64), 0
    alive = np.ones(20_000, dtype=bool)
    while alive.any():
        steps += 1
        x = rng.random(alive.sum()) < 0.2
        s[alive] = np.where(x, s[alive] + 3, np.maximum(s[alive] - 1, 0))
        hit = alive.copy()
        hit[alive] = s[alive] >= 12
        runs[hit] = steps
        alive &= ~hit
    se = runs.std() / math.sqrt(len(runs))
    assert abs(runs.mean() - exact) < 4 * se, (runs.mean(), exact, se)


def test_llr_chart_arl_agrees_with_the_detector_simulated():
    # the real-valued chart 10% -> 20% with h = 2.5 nats: ARL0 and ARL1 against the class itself
    h = 2.5
    for p, events in ((0.10, 400_000), (0.20, 100_000)):
        exact = arl.llr_chart_arl(0.10, 0.20, h, p, resolution=32)
        xs = np.random.default_rng(5).random(events) < p
        n_alarms = len(_alarms(BernoulliCUSUM(0.10, 0.20, h), xs))  # restarts after each alarm: renewal
        measured = events / n_alarms
        assert abs(measured - exact) < 4 * measured / math.sqrt(n_alarms), (p, measured, exact)


def test_lattice_approximates_the_llr_steps_closely():
    for p1 in (0.03, 0.04, 0.06, 0.10):
        up, down, unit = arl.lattice(0.02, p1, resolution=16)
        assert down * unit == pytest.approx(math.log(0.98 / (1 - p1)))
        assert up * unit == pytest.approx(math.log(p1 / 0.02), rel=2e-4)
    assert arl.lattice(0.02, 0.06, resolution=1)[1] == 1  # the integer chart DefectRateSpike runs
    assert 1e6 <= arl.llr_chart_arl(0.02, 0.06, H_2_6, 0.02) < 1.02e6


def test_threshold_for_arl_is_the_smallest_reaching_the_target():
    thr = arl.threshold_for_arl(26, 1, 0.02, 1e5)
    assert arl.arl(26, 1, thr, 0.02) >= 1e5 > arl.arl(26, 1, thr - 1, 0.02)


@pytest.mark.parametrize(
    ("up", "down", "p", "arl0", "expected"),
    [
        (26, 1, 0.02, 1e5, 168),  # down = 1: the one-pass search
        (808, 1, 0.001, 3.03e6, 10977),  # DefectRateSpike's 1.5x chart at the 0.1% floor
        (9, 1, 0.08, 3.03e6, 213),
        (26, 1, 0.02, 182.0, 30),
        (26, 1, 0.02, 178.0, 29),  # up + 3: the first threshold the one pass gives
        (26, 1, 0.02, 174.0, 28),  # up + 2 and less: from the banded solve
        (26, 1, 0.02, 60.0, 27),
        (26, 1, 0.02, 3.0, 1),
        (3, 2, 0.2, 1e3, 14),  # down > 1: Newton steps of the Wald slope inside a bracket
        (1617, 2, 0.001, 1e4, 3938),
        (1, 3, 0.3, 1e6, 12),
    ],
)
def test_threshold_for_arl_is_exactly_the_first_threshold_past_the_target(up, down, p, arl0, expected):
    # the same test the search makes, at the answer and just below it: the answer cannot depend on how
    # the search got there
    def reaches(t: int) -> bool:
        return t > 0 and math.log(arl.arl(up, down, t, p)) - math.log(arl0) >= 0.0

    thr = arl.threshold_for_arl(up, down, p, arl0)
    assert thr == expected
    assert reaches(thr) and not reaches(thr - 1)


def test_exact_oracle_delays_match_the_known_anchors():
    assert round(arl.llr_steady_state_delay(0.02, 0.06, H_2_6)) == 319
    assert round(arl.llr_steady_state_delay(0.02, 0.10, arl.llr_threshold_for_arl(0.02, 0.10, 1e6))) == 114


def test_a_chart_drifting_upward_has_no_threshold():
    with pytest.raises(ValueError, match="drifts upward"):
        arl.threshold_for_arl(60, 1, 0.02, 1e6)  # 0.02 * 60 > 0.98


# -- the detector ----------------------------------------------------------------------------------


def test_detects_a_known_change_within_the_oracle_range():
    rng = np.random.default_rng(2024)
    xs = np.concatenate([rng.random(20_000) < 0.02, rng.random(5_000) < 0.06]).tolist()
    cusum = BernoulliCUSUM(0.02, 0.06, H_2_6)
    alarm = next(i for i, x in enumerate(xs) if cusum.update(x).drift_detected)
    # exact steady-state delay 319; the delay of one run has a long right tail: 3x covers it
    assert 20_000 <= alarm < 20_000 + 3 * 319
    assert cusum.onset is not None and 20_000 - 100 <= cusum.onset <= alarm


def test_mean_delay_over_seeded_streams_matches_the_exact_steady_state_delay():
    exact = arl.llr_steady_state_delay(0.02, 0.06, H_2_6)
    delays = []
    for seed in range(300):
        rng = np.random.default_rng([seed, 1])
        xs = np.concatenate([rng.random(5_000) < 0.02, rng.random(3_000) < 0.06])
        alarms = _alarms(BernoulliCUSUM(0.02, 0.06, H_2_6), xs)
        if alarms and alarms[0] >= 5_000:  # streams with a false alarm before the change are left out
            delays.append(alarms[0] - 5_000 + 1)
    delays_a = np.array(delays)
    se = delays_a.std() / math.sqrt(len(delays_a))
    assert len(delays) >= 295
    assert abs(delays_a.mean() - exact) < 4 * se, (delays_a.mean(), exact, se)


def test_calibrated_threshold_rarely_alarms_in_control():
    # 10^6 in-control events at the ARL0 = 10^6 threshold: Poisson(1) alarms, more than 3 has p = 1.9%
    xs = np.random.default_rng(77).random(1_000_000) < 0.02
    assert len(_alarms(BernoulliCUSUM(0.02, 0.06, H_2_6), xs)) <= 3


def test_no_alarm_on_a_long_in_control_stream_at_a_strict_threshold():
    # at ARL0 = 10^7 an alarm within 10^6 events has probability ~10%; this seeded stream has none
    h = arl.llr_threshold_for_arl(0.02, 0.06, 1e7)
    xs = np.random.default_rng(78).random(1_000_000) < 0.02
    assert _alarms(BernoulliCUSUM(0.02, 0.06, h), xs) == []


def test_restarts_after_an_alarm_and_tracks_the_onset():
    cusum = BernoulliCUSUM(0.1, 0.5, 1.5)
    cusum.update(0)
    assert cusum.statistic == 0.0 and cusum.onset is None
    cusum.update(1)
    assert cusum.onset == 1 and cusum.statistic == pytest.approx(math.log(5))
    assert cusum.drift_detected  # ln 5 >= 1.5: alarm; the onset stays readable until the next update
    cusum.update(0)
    assert not cusum.drift_detected and cusum.statistic == 0.0 and cusum.onset is None
    assert cusum.n == 3


def test_state_round_trips_through_json_mid_excursion():
    rng = np.random.default_rng(9)
    xs = (rng.random(3_000) < 0.05).tolist()
    a = BernoulliCUSUM(0.02, 0.06, 4.0)
    for x in xs[:1_500]:
        a.update(x)
    b = BernoulliCUSUM.from_dict(json.loads(json.dumps(a.to_dict())))
    for x in xs[1_500:]:
        a.update(x)
        b.update(x)
        assert (a.statistic, a.onset, a.drift_detected) == (b.statistic, b.onset, b.drift_detected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p0": 0.06, "p1": 0.02, "threshold": 5.0},
        {"p0": 0.0, "p1": 0.02, "threshold": 5.0},
        {"p0": 0.02, "p1": 1.0, "threshold": 5.0},
        {"p0": 0.02, "p1": 0.06, "threshold": 0.0},
        {"p0": 0.02, "p1": 0.06, "threshold": math.inf},
    ],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        BernoulliCUSUM(**kwargs)
