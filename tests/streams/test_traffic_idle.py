"""Volume and latency watches of journeys gone idle are dropped (unless in alarm); new journeys take room.

Until 2026-11-26 every journey ever seen kept its watch, and each observation partition's first 100 journeys
held their room for good: with a new campaign journey a week, the state grew by a watch a week, and every
journey from the 101st week on shared the ``other`` watch, restart or not.
"""

from __future__ import annotations

from typing import Any

import pytest

from detectors.traffic_watch import TrafficWatch
from streams.emit import SEP
from streams.views.traffic import TrafficView
from tests.support.journeys import (
    DAY,
    NEVER,
    WEEK,
    JourneyWorker,
    campaign,
    feed,
    weekly_campaigns,
    weekly_turns,
)
from tests.support.restartable import with_and_without_a_restart


def worker(**kwargs: Any) -> JourneyWorker:
    return JourneyWorker(lambda metrics: TrafficView(metrics, **kwargs))


def journeys(w: JourneyWorker) -> set[str]:
    return w.journeys("traffic", 0)


def watch(w: JourneyWorker, journey: str) -> TrafficWatch | None:
    found = w.aggregator.detector(SEP.join(["traffic", journey]))
    assert found is None or isinstance(found, TrafficWatch)
    return found


def open_journeys(w: JourneyWorker) -> set[str]:
    """The journeys of the alarms open, as a restarted worker sends them again."""
    keys = [k for k, _ in w.aggregator.records("traffic")]
    return {journey for journey, _ in w.view.open_escalations(w.aggregator, keys, lambda j: True, 0.0)}


def slow_down(w: JourneyWorker, journey: str, start: float) -> float:
    """Turns of ``journey`` every 10 s from ``start``, 600 at the usual latency, then three times slower until
    its latency alarm opens; the event time then."""
    ts, n = start, 0
    while not open_journeys(w) & {journey, "other"}:
        n += 1
        ts += 10.0
        w.turn(ts, journey, slow=1.0 if n <= 600 else 3.0)
        assert n < 1000
    return ts


def test_this_weeks_journey_has_a_watch_of_its_own_after_110_weekly_journeys() -> None:
    own: list[bool] = []

    def check(w: JourneyWorker, week: int) -> None:
        own.append(watch(w, campaign(week)) is not None)

    w = worker()
    weekly_campaigns(w, weeks=110, check=check)
    assert own == [True] * 110
    assert journeys(w) == {campaign(week) for week in range(105, 110)}

    forever = worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    weekly_campaigns(forever, weeks=110)
    assert journeys(forever) == {"other"} | {campaign(week) for week in range(100)}


@pytest.mark.parametrize(
    "restart_at", [30 * WEEK + 13 * 3600.0, 37 * WEEK + DAY + 3600.0, 41 * WEEK + 19 * 3600.0]
)
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(restart_at: float) -> None:
    def make() -> JourneyWorker:
        return worker(max_journeys=3)

    once, restarted = with_and_without_a_restart(make, weekly_turns(45), feed, restart_at)
    assert "other" in journeys(once)
    assert restarted.state() == once.state()


def test_a_watch_in_alarm_is_kept_however_idle() -> None:
    w = worker(idle_seconds=10 * DAY)
    slow_down(w, "retiring", 0.0)
    for day in range(1, 40):
        w.turn(day * DAY, "shopper")
    assert journeys(w) == {"shopper", "retiring"}
    assert open_journeys(w) == {"retiring"}


@pytest.mark.parametrize("restart", [False, True])
def test_no_room_is_given_up_while_the_other_watch_is_in_alarm(restart: bool) -> None:
    # room for one journey: a's. b, past it, is "other", whose latency rises; given a's room, b would leave
    # "other" and its alarm would never resolve. a's idle watch is kept meanwhile: a restart admits the
    # journeys of the recovered watches. Idle after an hour, looked for every 2 minutes
    w = worker(idle_seconds=3600.0, max_journeys=1)
    ts, n = 0.0, 0
    while not open_journeys(w):
        n += 1
        ts += 10.0
        w.turn(ts, "a")
        w.turn(ts + 1.0, "b", slow=1.0 if n <= 600 else 3.0)
        assert n < 1000
    assert open_journeys(w) == {"other"}
    for _ in range(3 * 360):  # a idle for 3 hours, b still slow
        ts += 10.0
        w.turn(ts, "b", slow=3.0)
    assert journeys(w) == {"a", "other"} and open_journeys(w) == {"other"}
    if restart:
        w.restart()
    assert w.view.journeys(None).unless_folded("c") is None
    while open_journeys(w):  # b's latency back to usual: the alarm ends
        ts += 10.0
        w.turn(ts, "b")
    w.turn(ts + 120.0, "c")  # the next look gives the room up
    assert journeys(w) == {"other"}
    assert w.view.journeys(None).unless_folded("c") == "c"


def test_with_partitions_each_partition_s_journeys_turn_over_and_a_restart_drops_as_without() -> None:
    # as on Kafka: each observation partition (the journey's: odd and even campaign weeks) has room for 2
    def make() -> JourneyWorker:
        return JourneyWorker(lambda m: TrafficView(m, max_journeys=2), partition_of=lambda j: int(j[-1]) % 2)

    once, restarted = with_and_without_a_restart(make, weekly_turns(45), feed, 37 * WEEK + 13 * 3600.0)
    assert {"other#0", "other#1"} <= journeys(once)
    own = journeys(once) - {"other#0", "other#1"}  # at most 2 a partition, of the last 30 days' journeys
    assert {campaign(43), campaign(44)} <= own <= {campaign(week) for week in range(39, 45)}
    assert all(len([j for j in own if int(j[-1]) % 2 == p]) <= 2 for p in (0, 1))
    assert restarted.state() == once.state()
