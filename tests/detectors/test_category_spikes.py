"""CategorySpikes: closing an alarm without a turn, and the typical gap between arrivals."""

from __future__ import annotations

import random

import pytest

from detectors.category_spikes import MAX_GAP_SECONDS, MAX_LONGEST_GAP_SECONDS, CategorySpikes


def _in_alarm(seed: int = 5) -> tuple[CategorySpikes, random.Random]:
    """A detector whose ``unsafe`` rate rose from 2% to 30% at turn 3,000: in alarm."""
    rng = random.Random(seed)
    spikes = CategorySpikes(arl0=1e6)
    for i in range(3_300):
        failed = ["unsafe"] if rng.random() < (0.3 if i >= 3_000 else 0.02) else []
        spikes.update(["unsafe", "irrelevant"], failed, ref=f"t{i}")
    assert spikes.in_alarm == ["unsafe"]
    return spikes, rng


def test_closing_ends_the_alarm_keeps_the_baseline_and_the_same_rise_alarms_again() -> None:
    spikes, rng = _in_alarm()
    detector = spikes.detector("unsafe")
    baseline, n, episode_rate = detector.baseline, detector.n, detector.spike_rate
    spikes.close()
    assert spikes.resolutions == ["unsafe"] and spikes.alarms == [] and spikes.in_alarm == []
    assert detector.resolved and detector.spike_rate == episode_rate  # the resolution describes the episode
    assert detector.n == n and detector.baseline == pytest.approx(baseline)  # no turn, the spike not learned
    assert CategorySpikes.from_dict(spikes.to_dict()).to_dict() == spikes.to_dict()
    assert spikes.close().resolutions == []  # nothing open: nothing closed

    for i in range(300):  # the slice's traffic is back, at the rate it stopped at: a new alarm
        spikes.update(["unsafe"], ["unsafe"] if rng.random() < 0.3 else [], ref=f"u{i}")
        if spikes.alarms:
            break
    assert spikes.alarms == ["unsafe"] and detector.n_alarms == 2
    assert 0.15 < detector.spike_rate < 0.6 and detector.baseline == pytest.approx(baseline, rel=0.05)


def test_a_closed_alarm_at_the_baseline_rate_stays_closed() -> None:
    spikes, rng = _in_alarm(seed=8)
    spikes.close()
    for i in range(20_000):
        spikes.update(["unsafe"], ["unsafe"] if rng.random() < 0.02 else [], ref=f"u{i}")
        assert not spikes.alarms, i


@pytest.mark.parametrize(("mean_gap", "arrivals"), [(5.0, 50_000), (7200.0, 2_000)])
def test_the_typical_gap_of_arrivals_at_random_is_twice_their_mean_gap(
    mean_gap: float, arrivals: int
) -> None:
    rng, spikes, arrival = random.Random(3), CategorySpikes(), 0.0
    for _ in range(arrivals):
        arrival += rng.expovariate(1 / mean_gap)
        spikes.update(["unsafe"], [], arrival=arrival)
    assert spikes.last_arrival == arrival
    assert spikes.typical_gap == pytest.approx(2 * mean_gap, rel=0.15)


def test_nightly_pauses_weigh_as_the_time_they_take() -> None:
    # a turn every 5 minutes for 16 hours, then 8 hours of night, for two weeks: at a random moment the
    # slice is in the night's gap a third of the time
    spikes = CategorySpikes()
    for day in range(14):
        for k in range(16 * 12):
            spikes.update(["unsafe"], [], arrival=day * 86400.0 + k * 300.0)
    gap = spikes.typical_gap
    assert gap is not None and 2 * 3600 < gap < 4 * 3600  # (192 * 300² + 28,800²) / 86,400 s: 2.9 h


def test_a_long_outage_counts_as_a_day_and_fades() -> None:
    spikes = CategorySpikes()
    for k in range(100):
        spikes.update(["unsafe"], [], arrival=k * 60.0)
    spikes.update(["unsafe"], [], arrival=99 * 60.0 + 30 * 86400.0)  # a month's outage
    gap = spikes.typical_gap
    assert gap is not None and gap <= MAX_GAP_SECONDS
    start = spikes.last_arrival
    assert start is not None
    for k in range(1, 14 * 1440):  # two weeks of a turn a minute
        spikes.update(["unsafe"], [], arrival=start + k * 60.0)
    gap = spikes.typical_gap
    assert gap is not None and gap < 3600  # e^-2 of the day's weight is left


def test_arrivals_at_one_time_make_no_gap_and_state_from_before_has_none() -> None:
    spikes = CategorySpikes().update(["unsafe"], [], arrival=10.0).update(["unsafe"], [], arrival=10.0)
    assert spikes.typical_gap is None and spikes.last_arrival == 10.0
    state = spikes.to_dict()
    for field in ("_last_arrival", "_gaps"):
        del state["state"][field]
    restored = CategorySpikes.from_dict(state)
    assert restored.last_arrival is None and restored.typical_gap is None
    restored.update(["unsafe"], [], arrival=20.0).update(["unsafe"], [], arrival=80.0)
    assert restored.typical_gap == pytest.approx(60.0)


def test_the_longest_gap_is_remembered_7_to_14_days_and_an_outage_counts_as_a_week() -> None:
    day = 86400.0
    spikes = CategorySpikes().update(["unsafe"], [], arrival=0.0).update(["unsafe"], [], arrival=3 * day)
    assert spikes.longest_gap == 3 * day
    for k in range(4 * 24, 14 * 24):  # hourly arrivals: the 3 days' gap is in the week before until day 14
        spikes.update(["unsafe"], [], arrival=k * 3600.0)
        assert spikes.longest_gap == 3 * day, k
    spikes.update(["unsafe"], [], arrival=14 * day)
    assert spikes.longest_gap == 3600.0
    spikes.update(["unsafe"], [], arrival=50 * day)  # an outage of 36 days
    assert spikes.longest_gap == MAX_LONGEST_GAP_SECONDS
    for k in range(50 * 24 + 1, 64 * 24 + 1):  # hourly again: the outage stands until its next week's end
        spikes.update(["unsafe"], [], arrival=k * 3600.0)
        assert spikes.longest_gap == (MAX_LONGEST_GAP_SECONDS if k < 63 * 24 else 3600.0), k


def test_state_from_before_weekends_restores_without_a_longest_gap() -> None:
    spikes = CategorySpikes().update(["unsafe"], [], arrival=0.0).update(["unsafe"], [], arrival=600.0)
    state = spikes.to_dict()
    del state["state"]["_longest"]  # as written until 2026-11-26
    restored = CategorySpikes.from_dict(state)
    assert restored.longest_gap is None and restored.typical_gap == spikes.typical_gap
    assert restored.update(["unsafe"], [], arrival=1800.0).longest_gap == 1200.0
