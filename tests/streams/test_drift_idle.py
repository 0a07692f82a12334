"""Judge drift detectors of journeys gone idle are dropped (unless in alarm); new journeys take their room.

Until 2026-11-26 each judge's first 50 journeys held their detectors and their room for good: with a new
campaign journey a week, every journey from the 51st week on shared the ``other`` detector, restart or not.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors.defect_rate_spike import DefectRateSpike
from streams.emit import SEP
from streams.views.drift import JudgeDriftView
from tests.streams.test_drift_silence import Emitting
from tests.support.journeys import (
    DAY,
    JUDGE,
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
    return JourneyWorker(lambda metrics: JudgeDriftView(metrics, **kwargs))


def journeys(w: JourneyWorker) -> set[str]:
    return w.journeys("drift", 2)


def detector(w: JourneyWorker, journey: str) -> DefectRateSpike | None:
    found = w.aggregator.detector(SEP.join(["drift", JUDGE, "safety", journey]))
    assert found is None or isinstance(found, DefectRateSpike)
    return found


def open_journeys(w: JourneyWorker) -> set[str]:
    """The journeys of the drifts open (``*``: all journeys'), as a restarted worker sends them again."""
    keys = [k for k, _ in w.aggregator.records("drift")]
    opened = w.view.open_escalations(w.aggregator, keys, lambda judge: True, 0.0)
    return {value["segment"]["journey"] or "*" for _, value in opened}


def test_this_weeks_journey_has_a_detector_of_its_own_after_60_weekly_journeys() -> None:
    own: list[bool] = []

    def check(w: JourneyWorker, week: int) -> None:
        found = detector(w, campaign(week))
        own.append(found is not None and found.n == 36)

    w = worker()
    weekly_campaigns(w, check=check)
    assert own == [True] * 60
    assert journeys(w) == {"*"} | {campaign(week) for week in range(55, 60)}

    forever = worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    weekly_campaigns(forever)
    assert journeys(forever) == {"*", "other"} | {campaign(week) for week in range(50)}
    assert w.state(SEP.join(["drift", JUDGE, "safety", "*"])) == forever.state(
        SEP.join(["drift", JUDGE, "safety", "*"])
    )


@pytest.mark.parametrize(
    "restart_at", [30 * WEEK + 13 * 3600.0, 37 * WEEK + DAY + 3600.0, 41 * WEEK + 19 * 3600.0]
)
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(restart_at: float) -> None:
    def make() -> JourneyWorker:
        return worker(max_journeys=3)

    once, restarted = with_and_without_a_restart(make, weekly_turns(45), feed, restart_at)
    assert "other" in journeys(once)
    assert restarted.state() == once.state()


def test_a_detector_in_alarm_is_kept_however_idle_while_its_judge_judges() -> None:
    # with the agreement view, whose stamp of the judge's verdicts keeps it open (test_drift_silence.py)
    w = Emitting(idle_seconds=10 * DAY)
    for n in range(400):  # a disagreement rate of 5%, then 60%: the journey's drift alarms
        w.turn(n * 60.0, "retiring", disagree=0.05 if n < 300 else 0.6)
    drifted = detector(w, "retiring")
    assert drifted is not None and drifted.in_alarm
    for day in range(1, 40):
        w.turn(day * DAY, "shopper")
    assert journeys(w) == {"*", "shopper", "retiring"}
    assert "retiring" in open_journeys(w)


@pytest.mark.parametrize("restart", [False, True])
def test_no_room_is_given_up_while_the_other_detector_is_in_alarm(restart: bool) -> None:
    # room for one journey: a's. b, past it, is "other", whose drift alarms; given a's room, b would leave
    # "other" and its alarm would never resolve. a's idle detector is kept meanwhile: a restart admits the
    # journeys of the recovered detectors
    w = worker(idle_seconds=10 * DAY, max_journeys=1)
    w.turn(0.0, "a")
    n = 0
    while not ((other := detector(w, "other")) is not None and other.in_alarm):
        n += 1
        w.turn(n * 60.0, "b", disagree=0.05 if n < 300 else 0.6)
    for day in range(1, 15):  # a idle for 14 days
        w.turn(day * DAY, "b", disagree=0.6)
    assert journeys(w) == {"*", "a", "other"}
    if restart:
        w.restart()
    assert w.view.journeys(JUDGE, "journey").unless_folded("c") is None
    ts = 15 * DAY
    while (other := detector(w, "other")) is not None and other.in_alarm:
        ts += 600.0
        w.turn(ts, "b", disagree=0.0)
        assert ts < 16 * DAY
    w.turn(17 * DAY, "b")  # the next look gives the room up
    assert detector(w, "a") is None
    assert w.view.journeys(JUDGE, "journey").unless_folded("c") == "c"


def test_detectors_from_before_idle_times_were_kept_are_idle_from_the_first_look_on() -> None:
    w = worker(idle_seconds=10 * DAY)
    for journey in ("shopper", "driver"):
        w.turn(0.0, journey)
    w.without_last_seen()
    driver = detector(w, "driver")
    assert driver is not None and driver.last_seen is None
    assert DefectRateSpike.from_dict(driver.to_dict()).last_seen is None
    w.turn(5 * DAY + 3600.0, "shopper")  # the first look, as of its day's start: driver stamped then
    w.restart()
    driver = detector(w, "driver")
    assert driver is not None and driver.last_seen == 5 * DAY
    assert DefectRateSpike.from_dict(orjson.loads(orjson.dumps(driver.to_dict()))).last_seen == 5 * DAY
    w.turn(15 * DAY + 3600.0, "shopper")
    assert journeys(w) == {"*", "shopper", "driver"}
    w.turn(16 * DAY + 3600.0, "shopper")
    assert journeys(w) == {"*", "shopper"}
