"""The always-valid version test: monotone p-value, type-I control under continuous monitoring, detection."""

from __future__ import annotations

import json
import math
import random

import pytest

from detectors.msprt import MixtureSPRT, VersionComparison, confidence_half_width, mixture_log_lr


def _stream(test: MixtureSPRT, rng: random.Random, control: float, treatment: float, n: int) -> MixtureSPRT:
    for _ in range(n):
        arm = "treatment" if rng.random() < 0.5 else "control"
        test.update(arm, rng.random() < (treatment if arm == "treatment" else control))
    return test


def test_p_value_is_non_increasing_and_the_confidence_sequence_nested() -> None:
    rng = random.Random(1)
    test = MixtureSPRT()
    last_p, last = 1.0, (-1.0, 1.0)
    for _ in range(5_000):
        test.update("treatment" if rng.random() < 0.5 else "control", rng.random() < 0.05)
        assert 0.0 <= test.p_value <= last_p
        low, high = test.interval
        assert last[0] <= low <= high <= last[1]
        last_p, last = test.p_value, (low, high)
    assert last[0] < 0.0 < last[1]  # an A/A stream: the lift interval keeps 0


def test_nothing_is_tested_before_min_samples_per_arm() -> None:
    test = MixtureSPRT(min_samples=50)
    for _ in range(500):
        test.update("treatment", True)
    for _ in range(49):
        test.update("control", False)
    assert test.p_value == 1.0 and test.decision == "continue" and test.interval == (-1.0, 1.0)
    test.update("control", False)
    assert test.decision == "worse" and test.decided_now and test.decided_at == (50, 500)
    test.update("control", False)
    assert test.decision == "worse" and not test.decided_now


def test_type_one_error_under_continuous_monitoring_stays_near_alpha() -> None:
    # 250 A/A runs of 2,400 turns (~1,200 per arm) at 3%, checked after every turn
    rng = random.Random(20240)
    runs, rejected, naive = 250, 0, 0
    for _ in range(runs):
        test = MixtureSPRT(alpha=0.05)
        naive_rejected = False
        for _ in range(2_400):
            test.update("treatment" if rng.random() < 0.5 else "control", rng.random() < 0.03)
            if not naive_rejected and min(test.n_control, test.n_treatment) >= test.min_samples:
                naive_rejected = abs(test.lift) > 1.96 * math.sqrt(test.variance)
        rejected += test.decision != "continue"
        naive += naive_rejected
    assert rejected / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs)
    assert naive / runs > 2 * 0.05  # peeking at a fixed-horizon test inflates its error; mSPRT's does not


@pytest.mark.parametrize(
    ("control", "treatment", "decision", "within"),
    [
        (0.03, 0.10, "worse", 800),
        (0.10, 0.03, "better", 800),
        (0.03, 0.06, "worse", 4_000),
    ],
)
def test_a_large_change_is_detected_with_its_sign_within_a_bounded_number_of_turns(
    control: float, treatment: float, decision: str, within: int
) -> None:
    for seed in range(5):
        test = _stream(MixtureSPRT(), random.Random(seed), control, treatment, 2 * within)
        assert test.decision == decision, seed
        assert test.decided_at is not None and max(test.decided_at) <= within, (seed, test.decided_at)
        low, high = test.interval
        assert low <= treatment - control <= high  # the confidence sequence covers the true lift
        assert (high < 0) if decision == "better" else (low > 0)


def test_higher_is_better_flips_the_decision() -> None:
    test = _stream(MixtureSPRT(higher_is_better=True), random.Random(3), 0.03, 0.10, 2_000)
    assert test.decision == "better"


def test_formulas_match_the_definition() -> None:
    s2, tau2, alpha = 2e-5, 1e-4, 0.05
    h = confidence_half_width(s2, tau2, alpha)
    # the interval's edge is where the mixture likelihood ratio reaches 1 / alpha
    assert mixture_log_lr(0.01 + h, s2, tau2, theta0=0.01) == pytest.approx(math.log(1 / alpha))
    assert mixture_log_lr(0.0, s2, tau2) < 0  # no evidence: the ratio is below 1


def test_json_round_trip_continues_identically() -> None:
    rng = random.Random(9)
    test = _stream(MixtureSPRT(), rng, 0.03, 0.05, 3_000)
    restored = MixtureSPRT.from_dict(json.loads(json.dumps(test.to_dict())))
    for _ in range(6_000):
        args = ("treatment" if rng.random() < 0.5 else "control", rng.random() < 0.04)
        test.update(*args)
        restored.update(*args)
        assert restored.p_value == test.p_value and restored.interval == test.interval
    assert restored.summary() == test.summary()


def _feed(test: MixtureSPRT, stratum: int | None, arm: str, n: int, defects: int) -> None:
    for i in range(n):
        test.update(arm, i < defects, stratum)


def test_the_lift_is_estimated_within_time_strata() -> None:
    # hour 0: 2% for both, the canary small; hour 1: 4% for both, half the turns each. Pooled, the canary's
    # turns come from the worse hour and it looks worse (+0.48 points); within each hour it is not
    test = MixtureSPRT(min_samples=1)
    _feed(test, 0, "control", 90, 2)
    _feed(test, 0, "treatment", 10, 0)
    _feed(test, 1, "control", 50, 2)
    _feed(test, 1, "treatment", 50, 2)
    assert test.treatment_rate - test.control_rate == pytest.approx(2 / 60 - 4 / 140)
    w0, w1 = 90 * 10 / 100, 50 * 50 / 100  # n_c n_t / (n_c + n_t)
    assert test.lift == pytest.approx(w0 * (0 / 10 - 2 / 90) / (w0 + w1))  # hour 1 adds a difference of 0
    q_c, q_t, q = 5 / 142, 3 / 62, 7 / 202  # add-one smoothed rates over the whole test
    over_c, over_t = w0**2 / 90 + w1**2 / 50, w0**2 / 10 + w1**2 / 50
    unpooled = q_c * (1 - q_c) * over_c + q_t * (1 - q_t) * over_t
    assert test.variance == pytest.approx(max(unpooled, q * (1 - q) * (w0 + w1)) / (w0 + w1) ** 2)
    one = MixtureSPRT(min_samples=1)  # one stratum: the pooled estimate
    for arm, n, x in (("control", 140, 4), ("treatment", 60, 2)):
        _feed(one, None, arm, n, x)
    assert one.lift == pytest.approx(2 / 60 - 4 / 140)


def test_an_outcome_of_an_earlier_stratum_counts_in_the_open_one() -> None:
    late, on_time = MixtureSPRT(min_samples=1), MixtureSPRT(min_samples=1)
    for test, last in ((late, 0), (on_time, 1)):
        _feed(test, 0, "control", 20, 1)
        _feed(test, 0, "treatment", 20, 2)
        _feed(test, 1, "control", 20, 3)
        _feed(test, 1, "treatment", 10, 0)
        _feed(test, last, "treatment", 10, 5)
    assert late.lift == on_time.lift and late.variance == on_time.variance


def test_a_test_stored_before_strata_keeps_its_counts_as_one_stratum() -> None:
    rng = random.Random(4)
    old = _stream(MixtureSPRT(), rng, 0.03, 0.05, 3_000)
    data = json.loads(json.dumps(old.to_dict()))
    for field in ("_stratum", "_open", "_closed"):
        del data["state"][field]
    restored = MixtureSPRT.from_dict(data)
    restored.update("control", False, 7)  # the new stratum has one arm only: no term yet
    assert restored.lift == pytest.approx(old.treatment_rate - old.control_rate)
    assert restored.n_control + restored.n_treatment == 3_001
    assert restored.p_value == old.p_value
    unstratified = MixtureSPRT.from_dict(data)  # and so are they without strata
    unstratified.update("control", False)
    assert unstratified.lift == pytest.approx(restored.lift, abs=1e-4)


def test_one_stratum_is_the_pooled_test_exactly() -> None:
    rng = random.Random(6)
    pooled, stratified = MixtureSPRT(), MixtureSPRT()
    for _ in range(4_000):
        arm, defect = "treatment" if rng.random() < 0.2 else "control", rng.random() < 0.04
        pooled.update(arm, defect)
        stratified.update(arm, defect, 3)
    x_c, x_t = pooled.control_rate * pooled.n_control, pooled.treatment_rate * pooled.n_treatment
    n_c, n_t = pooled.n_control, pooled.n_treatment
    q_c, q_t, q = (x_c + 1) / (n_c + 2), (x_t + 1) / (n_t + 2), (x_c + x_t + 1) / (n_c + n_t + 2)
    expected = max(q_c * (1 - q_c) / n_c + q_t * (1 - q_t) / n_t, q * (1 - q) * (1 / n_c + 1 / n_t))
    assert stratified.variance == pytest.approx(expected) and pooled.variance == pytest.approx(expected)
    assert stratified.lift == pytest.approx(pooled.treatment_rate - pooled.control_rate)
    assert stratified.p_value == pytest.approx(pooled.p_value)


def test_a_canary_ramped_while_the_rate_follows_the_day_is_not_read_as_a_regression() -> None:
    # bench/version_ramp.py: the canary ramps from 5% to 50% between 04:00 and 16:00 while the defect rate
    # climbs from 2% to 4%; pooled over time the test said "worse" in 18 of 20 such A/A runs
    import numpy as np

    from bench.version_ramp import first_worse, stream

    data = stream(np.random.default_rng(11), lift=0.0)
    assert first_worse(*data, stratum_seconds=0.0) > 0  # pooled: a false regression
    assert first_worse(*data, stratum_seconds=3600.0) == -1
    worse = stream(np.random.default_rng(12), lift=0.015)
    assert first_worse(*worse, stratum_seconds=3600.0) > 0  # a real one is still caught


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0}, {"alpha": 1.0}, {"tau2": 0}, {"min_samples": 0}, {"higher_is_better": 1}]
)
def test_bad_parameters_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MixtureSPRT(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        MixtureSPRT().update("canary", True)
    with pytest.raises(ValueError):
        MixtureSPRT().update("control", 2)  # type: ignore[arg-type]


# -- VersionComparison -------------------------------------------------------------------------------


def test_versions_are_compared_only_while_both_are_live() -> None:
    cmp = VersionComparison(horizon_seconds=100.0, min_samples=5)
    for i in range(50):
        cmp.update("v1", False, ts=float(i))
    assert cmp.live_pairs == [] and cmp.tests() == []
    for i in range(50, 100):
        cmp.update("v2" if i % 2 else "v1", False, ts=float(i))
    assert cmp.live_pairs == [["v1", "v2"]]
    test = cmp.test("v1", "v2")
    # v1's turns before v2's first one (at ts 51) do not count
    assert (test.n_control, test.n_treatment) == (24, 25)
    ended = []
    for i in range(100, 400):  # v2 rolled back: v1 only; v2 (last seen at 99) is out at 200
        cmp.update("v1", False, ts=float(i))
        ended += [(i, e) for e in cmp.events]
    assert ended == [(200, ("v1", "v2", "ended"))]
    # v1's turns count while v2 is live (until ts 199), not after
    assert cmp.test("v1", "v2").n_control == 24 + 100


def test_the_control_is_the_version_seen_first_whatever_its_name() -> None:
    cmp = VersionComparison(min_samples=5)
    cmp.update("b-new", False, ts=10.0)
    cmp.update("a-newer", True, ts=20.0)
    assert cmp.live_pairs == [["b-new", "a-newer"]]
    assert cmp.test("b-new", "a-newer").n_treatment == 1


def test_at_most_max_versions_are_kept() -> None:
    cmp = VersionComparison(max_versions=3)
    for i in range(10):
        cmp.update(f"v{i}", False, ts=float(i))
    assert cmp.versions == ["v7", "v8", "v9"]
    assert {(c, t) for c, t, _ in cmp.tests()} <= {("v7", "v8"), ("v7", "v9"), ("v8", "v9")}


def test_a_worse_canary_is_reported_once() -> None:
    rng = random.Random(4)
    cmp = VersionComparison(min_samples=100)
    events = []
    for i in range(40_000):
        canary = i >= 10_000 and rng.random() < 0.1
        cmp.update("v2" if canary else "v1", rng.random() < (0.08 if canary else 0.03), ts=i * 0.1)
        events += cmp.events
    assert events == [("v1", "v2", "worse")]


def test_a_worse_canary_paused_past_the_horizon_is_tested_afresh_and_fires_again() -> None:
    # the pair's test decided "worse", the pause ended it (resolved), and back live the final decision
    # could never fire again: a regression after a night's pause went unreported
    rng = random.Random(4)
    cmp = VersionComparison(horizon_seconds=100.0, min_samples=100)
    events: list[tuple[int, tuple[str, ...]]] = []

    def run(start: int, stop: int, canary_share: float) -> None:
        for i in range(start, stop):
            canary = rng.random() < canary_share
            cmp.update("v2" if canary else "v1", rng.random() < (0.08 if canary else 0.03), ts=i * 0.1)
            events.extend((i, e) for e in cmp.events)

    cmp.update("v1", False, ts=0.0)
    run(1, 30_000, 0.1)
    assert [e for _, e in events] == [("v1", "v2", "worse")] and cmp.episode("v1", "v2") == 1
    run(30_000, 40_000, 0.0)  # v2 paused for 1,000 s: out after 100
    assert [e for _, e in events][-1] == ("v1", "v2", "ended")
    run(40_000, 80_000, 0.1)  # back
    assert cmp.episode("v1", "v2") == 2
    assert [e for _, e in events][-1] == ("v1", "v2", "worse")  # the fresh test's own decision
    restored = VersionComparison.from_dict(json.loads(json.dumps(cmp.to_dict())))
    assert restored.episode("v1", "v2") == 2
    old_state = cmp.to_dict()
    del old_state["state"]["_episodes"]  # written before episodes existed
    assert VersionComparison.from_dict(old_state).episode("v1", "v2") == 1


def test_a_late_turn_of_a_version_no_longer_live_counts_in_no_pair_and_starts_no_episode() -> None:
    # a straggler verdict of a rolled-back canary replaced the pair's decided test with an empty one
    rng = random.Random(4)
    cmp = VersionComparison(horizon_seconds=100.0, min_samples=100)
    for i in range(30_000):
        canary = i >= 1_000 and rng.random() < 0.1
        cmp.update("v2" if canary else "v1", rng.random() < (0.08 if canary else 0.03), ts=i * 0.1)
    for i in range(30_000, 32_000):  # rolled back: the pair ends 100 s later
        cmp.update("v1", False, ts=i * 0.1)
    assert cmp.live_pairs == []
    decided = cmp.test("v1", "v2")
    before = (decided.decision, decided.n_control, decided.n_treatment)
    for late in (2_900.0, 2_950.0, 2_990.0):  # v2 turns from before the rollback, arriving now
        cmp.update("v2", True, ts=late)
        assert cmp.events == [] and cmp.live_pairs == []
    after = cmp.test("v1", "v2")
    assert (after.decision, after.n_control, after.n_treatment) == before and before[0] == "worse"
    assert cmp.episode("v1", "v2") == 1


def test_a_late_turn_of_the_newer_version_does_not_swap_control_and_treatment() -> None:
    # a canary turn older than the control's first one (out-of-order arrival) used to flip the pair: the
    # regression test ended ("ended": a resolved regression while both still served) and restarted reversed
    from detectors.msprt import VersionComparison

    cmp = VersionComparison(horizon_seconds=3600, tau2=1e-4, min_samples=50)
    rng = random.Random(8)
    events = []
    for i in range(6_000):
        version, rate = ("v2", 0.15) if i % 5 == 4 else ("v1", 0.03)  # v1 first: the control
        events += cmp.update(version, rng.random() < rate, ts=1_000.0 + i).events
    assert ("v1", "v2", "worse") in events
    late = cmp.update("v2", False, ts=999.0).events  # older than v1's first turn
    assert late == []
    assert cmp.live_pairs == [["v1", "v2"]]


def test_a_late_turn_of_an_untracked_version_at_the_cap_is_ignored() -> None:
    from detectors.msprt import VersionComparison

    cmp = VersionComparison(horizon_seconds=3600, max_versions=3)
    for i, version in enumerate(("v1", "v2", "v3")):
        cmp.update(version, False, ts=100.0 + i)
    cmp.update("late", False, ts=50.0)  # raised KeyError: it was forgotten as the stalest, then ordered
    assert sorted(cmp.live_pairs) == [["v1", "v2"], ["v1", "v3"], ["v2", "v3"]]
