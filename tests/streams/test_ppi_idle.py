"""The calibrated defect rates of journeys gone idle are dropped, and new journeys take their room.

Until 2026-11-26 each judge's first 50 journeys held their estimators and their room for good: with a new
campaign journey a week, every journey from the 51st week on was counted as ``other``, restart or not.
"""

from __future__ import annotations

from typing import Any

import pytest

from detectors.keyed import KeyedDetectors
from streams.emit import SEP
from streams.views.ppi import DefectRateView
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

KEY = SEP.join(["ppi", JUDGE])


def worker(**kwargs: Any) -> JourneyWorker:
    return JourneyWorker(lambda metrics: DefectRateView(metrics, **kwargs))


def estimators(w: JourneyWorker) -> KeyedDetectors:
    keyed = w.aggregator.detector(KEY)
    assert isinstance(keyed, KeyedDetectors)
    return keyed


def journeys(w: JourneyWorker) -> set[str]:
    return {inner.split(SEP)[0] for inner in estimators(w).keys}


def test_this_weeks_journey_has_estimates_of_its_own_after_60_weekly_journeys() -> None:
    own: list[bool] = []

    def check(w: JourneyWorker, week: int) -> None:
        rows = w.view.report(w.aggregator)["defect_rates"]
        own.append(any(row["journey"] == campaign(week) and row["n_judged"] == 36 for row in rows))

    w = worker()
    weekly_campaigns(w, check=check)
    assert own == [True] * 60
    # left: all journeys, and those with a turn within 30 days before the start of the last day that looked
    assert journeys(w) == {"*"} | {campaign(week) for week in range(55, 60)}
    assert w.view.journeys(JUDGE, "journey").unless_folded(campaign(60)) == campaign(60)

    forever = worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    weekly_campaigns(forever)
    assert journeys(forever) == {"*", "other"} | {campaign(week) for week in range(50)}
    # the figures of all journeys are those of a view that drops nothing
    kept, never_dropped = estimators(w), estimators(forever)
    assert kept.get(f"*{SEP}safety").to_dict() == never_dropped.get(f"*{SEP}safety").to_dict()


@pytest.mark.parametrize(
    "restart_at", [30 * WEEK + 13 * 3600.0, 37 * WEEK + DAY + 3600.0, 41 * WEEK + 19 * 3600.0]
)
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(restart_at: float) -> None:
    # room for 3 journeys, 5 of them seen within 30 days: the room is full, and a new journey takes a place
    # when a look drops one idle for 30 days
    def make() -> JourneyWorker:
        return worker(max_journeys=3)

    once, restarted = with_and_without_a_restart(make, weekly_turns(45), feed, restart_at)
    assert "other" in journeys(once)
    assert restarted.state() == once.state()


def test_estimators_from_before_idle_times_were_kept_are_idle_from_the_first_look_on() -> None:
    # state from before 2026-11-26 has no event times: each estimator is stamped at the first look after the
    # upgrade (written, so a restart keeps the stamp) and dropped idle_seconds later
    w = worker(idle_seconds=10 * DAY)
    for journey in ("shopper", "driver"):
        w.turn(0.0, journey)
    w.without_last_seen()
    assert estimators(w).last_seen == {}
    w.turn(5 * DAY + 3600.0, "shopper")  # the first look, as of its day's start: the rest stamped then
    assert estimators(w).last_seen[f"driver{SEP}safety"] == 5 * DAY
    w.restart()
    w.turn(15 * DAY + 3600.0, "shopper")
    assert journeys(w) == {"*", "shopper", "driver"}
    w.turn(16 * DAY + 3600.0, "shopper")
    assert journeys(w) == {"*", "shopper"}
