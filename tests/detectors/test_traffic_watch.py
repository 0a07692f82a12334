"""TrafficWatch: baselines without spread, daily cycles, lagging partitions, gaps and silences."""

from __future__ import annotations

import math
import random

import pytest

from detectors.traffic_watch import TrafficWatch


def feed(watch: TrafficWatch, per_minute: list[int], start: float = 0.0) -> list[str]:
    """Turns spread evenly over each minute (latency 800 ms); the volume events seen."""
    events = []
    for minute, count in enumerate(per_minute):
        for i in range(count):
            watch.update(start + minute * 60 + i * 60 / count, 800.0)
            if watch.volume_event:
                events.append(watch.volume_event)
    return events


def test_a_flat_warm_up_does_not_make_the_next_wobble_a_surge() -> None:
    # 30 identical minutes leave no spread: the next 11-turn minute was 10^8 deviations off, a "surge"
    watch = TrafficWatch()
    assert feed(watch, [10] * 40 + [11, 9, 11, 10, 10, 12, 9, 10] * 3 + [10]) == []


def test_a_real_surge_after_a_flat_warm_up_still_alarms() -> None:
    watch = TrafficWatch()
    assert "up" in feed(watch, [10] * 40 + [40] * 15 + [10])


def test_an_alarm_that_ends_in_a_gap_where_another_starts_reports_both() -> None:
    # a surge, traffic back to normal, then none at all: the turn after the gap closes several minutes at
    # once, in which the surge's alarm resolves and a drop's starts; only the drop was reported, so the
    # surge's escalation never resolved
    watch = TrafficWatch()
    assert feed(watch, [10] * 40 + [40] * 15) == ["up"]
    surge_since = watch.volume_since
    minute = 55
    while watch._volume["up"] > 2.0:  # normal minutes until two more resolve the surge (each takes 1)
        assert feed(watch, [10], start=minute * 60) == []
        minute += 1
    feed(watch, [10], start=minute * 60)  # a normal minute, still open
    watch.update((minute + 10) * 60 + 1.0, 800.0)  # the next turn, ten empty minutes later
    assert [event for event, *_ in watch.volume_events] == ["resolved", "down"]
    (_, resolved_since, *_), (_, down_since, *_) = watch.volume_events
    assert resolved_since == surge_since and down_since not in (None, surge_since)
    assert watch.volume_event == "down"


def test_state_written_before_volume_events_is_read() -> None:
    # a worker upgraded over a changelog written by the previous code must recover its traffic detectors
    watch = TrafficWatch()
    feed(watch, [10] * 40)
    data = watch.to_dict()
    state = {k: v for k, v in data["state"].items() if k != "_volume_events"} | {"_volume_event": None}
    restored = TrafficWatch.from_dict({**data, "state": state})
    # its learned baseline too: a surge is one to both (a fresh detector, still warming up, sees none)
    surge = [40] * 15
    assert feed(restored, surge, start=40 * 60) == feed(watch, surge, start=40 * 60) == ["up"]


def test_the_volume_of_an_alarm_is_the_minute_that_closed_not_the_one_just_opened() -> None:
    # the summary said "1 turns in the last minute": the count of the minute the alarming turn opened
    watch = TrafficWatch()
    feed(watch, [10] * 40)
    alarm = None
    for minute in range(40, 60):  # 40 turns a minute until the surge alarms, at the first turn of a minute
        for i in range(40):
            watch.update(minute * 60 + i * 1.5, 800.0)
            if alarm is None and watch.volume_event:
                alarm = (watch.volume_event, watch.volume_last)
    assert alarm == ("up", 40)


def test_a_surge_that_turns_into_a_collapse_resolves_and_alarms_the_drop() -> None:
    # an alarm resolved only when both sides were back at 0, and a new one started only with none open:
    # the collapse never alarmed (the high-severity one) and the surge never resolved
    watch = TrafficWatch()
    events = []
    for minute, count in enumerate([50] * 40 + [500] * 20 + [2] * 60):
        for i in range(count):
            watch.update(minute * 60 + i * 60 / count, 800.0)
            events += [event for event, *_ in watch.volume_events]
    assert events == ["up", "resolved", "down"]
    assert watch._volume["alarm"] == "down"


def test_a_latency_rise_resolves_when_latency_falls_below_its_old_level() -> None:
    watch = TrafficWatch()
    events = []
    for minute, latency in enumerate([600.0] * 12 + [1800.0] * 10 + [400.0] * 60):
        for i in range(50):
            watch.update(minute * 60 + i * 1.2, latency * (1 + (i % 5 - 2) / 20))
            if watch.latency_event:
                events.append(watch.latency_event)
    assert events == ["up", "resolved"]


def test_turns_of_a_partition_lagging_90_seconds_still_count_for_their_minute() -> None:
    # a journey's turns come from every input partition; with one of four partitions 90 s behind, its
    # turns were dropped as late and the steady 50 a minute looked like a drop (a false "Traffic drop")
    watch = TrafficWatch()
    arrivals = []
    for minute in range(120):
        for i in range(50):
            ts = minute * 60 + i * 1.2
            lag = 90.0 if i % 4 == 0 and minute >= 60 else 0.0  # the lagging partition, from minute 60
            arrivals.append((ts + lag, ts))
    events = []
    for _, ts in sorted(arrivals):
        watch.update(ts, 800.0)
        events += [event for event, *_ in watch.volume_events]
    assert events == [] and watch.late == 0


def test_state_written_before_late_buckets_is_read() -> None:
    watch = TrafficWatch()
    feed(watch, [10] * 3)
    old = watch.to_dict()
    old["state"]["_count"] = old["state"].pop("_open")[-1]  # one open bucket's count, as written before
    restored = TrafficWatch.from_dict(old)
    assert restored._open == [old["state"]["_count"]]
    feed(restored, [10] * 40, start=180.0)
    assert restored.volume_last == 10


def _daily(days: int, low: float, high: float, seed: int, drop: tuple[int, int] | None = None) -> list[int]:
    """Poisson turns per minute over ``days``, the mean cycling daily between ``low`` and ``high``; halved
    in the minutes ``drop`` covers."""
    import numpy as np

    rng = np.random.default_rng(seed)
    minutes = np.arange(days * 1440)
    mean = (low + high) / 2 + (high - low) / 2 * np.sin(2 * np.pi * minutes / 1440)
    if drop is not None:
        mean[drop[0] : drop[1]] *= 0.5
    return [int(n) for n in rng.poisson(mean)]


def test_a_daily_cycle_of_traffic_is_not_an_anomaly() -> None:
    # with the baseline frozen after its 30-minute warm-up, a +-30% daily swing raised a high-severity drop
    # every night and a surge every day
    for seed in (1, 2):
        assert feed(TrafficWatch(), _daily(3, 28, 52, seed)) == []


def test_a_sudden_halving_within_a_daily_cycle_is_found_within_minutes_and_resolves() -> None:
    events = feed(TrafficWatch(), _daily(3, 28, 52, 3, drop=(2_000, 2_060)))
    assert events[:1] == ["down"] and "resolved" in events


def test_state_written_before_the_baseline_was_followed_still_loads_and_runs() -> None:
    watch = TrafficWatch()
    feed(watch, [40] * 60)
    state = watch.to_dict()
    for key in ("_volume", "_latency"):
        state["state"][key].pop("var", None)
    restored = TrafficWatch.from_dict(state)
    assert feed(restored, [40] * 30, start=60 * 60.0) == []


def test_a_latency_slowdown_building_over_minutes_is_found_at_any_traffic() -> None:
    # followed over 2,000 turns, the latency baseline absorbed a slowdown building over 5 minutes at 2,000
    # turns a minute (its memory was a minute of traffic there): it is followed by event time now

    def minutes_to_alarm(per_minute: int, factor: float, ramp: float, seed: int) -> float | None:
        rng, watch = random.Random(seed), TrafficWatch()
        for minute in range(200):
            for i in range(per_minute):
                t = minute + i / per_minute
                scale = 1.0 if t < 100 else min(factor, 1 + (factor - 1) * (t - 100) / ramp)
                watch.update(t * 60, rng.lognormvariate(6.5, 0.3) * scale)
                if watch.latency_event == "up":
                    return t - 100
        return None

    for per_minute, factor, ramp in ((2_000, 2.0, 5.0), (500, 3.0, 15.0)):
        found = minutes_to_alarm(per_minute, factor, ramp, seed=1)
        assert found is not None and found < ramp, (per_minute, factor, ramp, found)


def test_alarms_in_minutes_closed_at_once_start_at_their_own_minutes() -> None:
    """A surge minute, then ten empty ones closed by the next turn: the surge's alarm, its resolution and
    the drop's alarm came out of one update with one start (the turn's time), so the drop's escalation had
    the surge's id, and Alertmanager's sink refused it as an older revision of a resolved alert."""
    watch = TrafficWatch()
    feed(watch, [50] * 40)
    for i in range(300):
        watch.update(40 * 60 + i * 0.2, 800.0)
    watch.update(50 * 60 + 1.0, 800.0)
    events = watch.volume_events
    assert [(event, direction) for event, _, _, direction in events] == [
        ("up", "up"),
        ("resolved", "up"),
        ("down", "down"),
    ]
    (_, up_since, up_turns, _), (_, resolved_since, _, _), (_, down_since, down_turns, _) = events
    assert up_since == resolved_since == 40 * 60  # the surge minute's start
    assert down_since not in (None, up_since)
    assert (up_turns, down_turns) == (300, 0)


def test_a_latency_sample_that_ends_a_rise_far_below_the_baseline_resolves_the_rise() -> None:
    """It ended the rise and went past the lower threshold: the ignored drop's start replaced the rise's,
    so the resolution named another escalation, and the rise's alert was re-sent for ever."""
    watch = TrafficWatch(latency_warmup=50)
    for i in range(50):
        watch.update(float(i), 800.0 * (1.0 + 0.1 * (i % 3 - 1)))
    ts = 50.0
    while watch.latency_event != "up":
        watch.update(ts, 8000.0)
        ts += 1.0
    rise_since = watch.latency_event_since
    assert rise_since == ts - 1.0
    while watch.latency_event != "resolved":
        watch.update(ts, 1.0)  # far faster than usual
        ts += 1.0
    assert watch.latency_event_since == rise_since == watch.latency_since


@pytest.mark.parametrize("ages_minutes", [[45], [30 * 1440], [30 * 1440, 45], [20]])
def test_turns_dated_before_the_traffic_read_first_do_not_hide_its_drop(ages_minutes: list[int]) -> None:
    # the watch started at the stray turn's minute and warmed up on the empty minutes after it: the real
    # traffic was a surge that never resolved (a baseline of 0.18 turns a minute), and its real drop, a
    # high-severity one, never alarmed
    per_minute = [60] * 90 + [3] * 30
    plain = feed(TrafficWatch(), per_minute)
    watch = TrafficWatch()
    for age in ages_minutes:
        watch.update(-age * 60.0, 800.0)
    assert feed(watch, per_minute) == plain == ["down"]
    assert watch.volume_alarm == "down" and watch.volume_since == 90 * 60.0


def _poisson(seed: int, rates: list[float]) -> list[int]:
    """Poisson turns per minute at each minute's mean."""
    import numpy as np

    return [int(n) for n in np.random.default_rng(seed).poisson(rates)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_journey_of_a_few_turns_an_hour_still_warms_up_and_alarms_a_surge(seed: int) -> None:
    # its first turns look like a stray one: each gap restarts the warm-up, and without the longer gap
    # asked after each restart, a journey of 3 turns an hour warmed up only after a median 6 hours
    per_minute = _poisson(seed, [0.05] * 300 + [30.0] * 20)
    watch = TrafficWatch()
    assert feed(watch, per_minute)[:1] == ["up"]
    assert watch.volume_since is not None and watch.volume_since >= 300 * 60


def test_hours_of_silence_do_not_become_a_quiet_journeys_baseline() -> None:
    # every empty minute of a silence (up to a day) was learned as normal: after 6 hours, a journey of 2
    # turns a minute had a baseline of 0.00
    watch = TrafficWatch()
    feed(watch, [1, 2, 3, 2] * 30)
    before = watch.volume_baseline
    watch.update(120 * 60 + 6 * 3600 + 1.0, 800.0)  # the next turn, 6 hours later
    # at most half the memory (15 of 30 minutes) of the silence is followed: 40% of the way to 0 in log
    assert math.log1p(watch.volume_baseline) >= 0.6 * math.log1p(before) - 1e-9
    assert watch.volume_alarm is None


def test_a_busy_journey_silent_for_hours_raises_its_drop_from_the_silence_and_resolves() -> None:
    watch = TrafficWatch()
    events = feed(watch, [60] * 120)
    since = []
    for minute in range(120 + 6 * 60, 120 + 7 * 60):  # back after 6 hours
        for i in range(60):
            watch.update(minute * 60 + i, 800.0)
            events += [event for event, *_ in watch.volume_events]
            since += [at for _, at, *_ in watch.volume_events]
    assert events == ["down", "resolved"]
    assert since == [120 * 60.0] * 2  # the silence's first minute
    assert round(watch.volume_baseline) == 60


def test_a_journey_silent_for_hours_raises_no_latency_rise_when_it_comes_back() -> None:
    # event time since the last latency weighed the next one: after hours, one latency replaced the
    # baseline and its spread (to the 5% floor), and ordinary latencies raised a rise that never resolved
    raised = {}
    for seed in range(4):
        rng, watch, events = random.Random(seed), TrafficWatch(), []
        for minute in list(range(120)) + list(range(120 + 6 * 60, 180 + 6 * 60)):
            for i in range(60):
                watch.update(minute * 60 + i, rng.lognormvariate(6.5, 0.3))
                if watch.latency_event:
                    events.append(watch.latency_event)
        raised[seed] = events
    assert raised == {seed: [] for seed in range(4)}
