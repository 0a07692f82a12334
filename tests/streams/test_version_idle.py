"""The model-version comparisons of journeys gone idle are dropped (unless a regression of theirs is open),
and new journeys take their room: judge-only, human-calibrated and business-outcome comparisons.

Until 2026-11-26 each judge's (for outcomes: each observation partition's) first 50 journeys held their
comparisons and their room for good: with a new campaign journey a week, every journey from the 51st week
on was compared under ``other``, restart or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.metrics import Metrics
from streams.views.version_calibrated import VersionCalibratedView
from streams.views.version_common import VersionPairView
from streams.views.version_outcomes import VersionOutcomeView
from streams.views.versions import VersionView
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

#: Each view's class, and where the journey is in its keys (after the prefix).
VIEWS: dict[str, tuple[Callable[..., VersionPairView], int]] = {
    "versions": (VersionView, 1),
    "version_calibrated": (VersionCalibratedView, 1),
    "version_outcomes": (VersionOutcomeView, 0),
}
#: Versions that take turns every two hours are live together (a 6-hour horizon).
HORIZON = 6 * 3600.0


def worker(prefix: str, **kwargs: Any) -> JourneyWorker:
    cls = VIEWS[prefix][0]

    def make(metrics: Metrics) -> VersionPairView:
        return cls(metrics, horizon_seconds=HORIZON, min_samples=20, **kwargs)

    return JourneyWorker(make)


def journeys(w: JourneyWorker) -> set[str]:
    view = w.view
    assert isinstance(view, VersionPairView)
    return w.journeys(view.prefix, VIEWS[view.prefix][1])


def room_for(w: JourneyWorker, journey: str) -> bool:
    """Whether a turn of ``journey`` would get comparisons of its own (in the judge's guard, or for
    outcomes in the guard of the one observation partition there is without partitions)."""
    view = w.view
    guard = (
        view.partition_journeys(None)
        if isinstance(view, VersionOutcomeView)
        else view.journeys(JUDGE, "journey")
    )
    return guard.unless_folded(journey) is not None


def open_journeys(w: JourneyWorker) -> set[str]:
    """The journeys of the regressions open, as a restarted worker sends them again."""
    keys = [k for k, _ in w.aggregator.records(w.view.prefix)]
    opened = w.view.open_escalations(w.aggregator, keys, lambda owner: True, 0.0)
    return {value["segment"]["journey"] for _, value in opened}


def regress(w: JourneyWorker, journey: str, start: float) -> float:
    """Turns of ``journey`` from ``start``, v2 failing half of them, v1 none, until v2 is found worse and
    the regression fires; the event time then."""
    ts, n = start, 0
    while not open_journeys(w) & {journey, "other"}:
        n += 1
        ts += 10.0
        w.turn(ts, journey, version="v1" if n % 2 else "v2", fail=0.0 if n % 2 else 0.5)
        assert ts < start + HORIZON / 2
    return ts


@pytest.mark.parametrize("prefix", VIEWS)
def test_this_weeks_journey_has_comparisons_of_its_own_after_60_weekly_journeys(prefix: str) -> None:
    own: list[bool] = []

    def check(w: JourneyWorker, week: int) -> None:
        rows = w.view.report(w.aggregator)[prefix]
        own.append(any(row["journey"] == campaign(week) and row["live"] for row in rows))

    w = worker(prefix)
    weekly_campaigns(w, check=check)
    assert own == [True] * 60
    assert journeys(w) == {campaign(week) for week in range(55, 60)}

    forever = worker(prefix, idle_seconds=NEVER)  # what happened until 2026-11-26
    weekly_campaigns(forever)
    assert journeys(forever) == {"other"} | {campaign(week) for week in range(50)}


@pytest.mark.parametrize("prefix", VIEWS)
@pytest.mark.parametrize("restart_at", [30 * WEEK + 13 * 3600.0, 41 * WEEK + 19 * 3600.0])
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(
    prefix: str, restart_at: float
) -> None:
    def make() -> JourneyWorker:
        return worker(prefix, max_journeys=3)

    once, restarted = with_and_without_a_restart(make, weekly_turns(45), feed, restart_at)
    assert "other" in journeys(once)
    assert restarted.state() == once.state()


@pytest.mark.parametrize("prefix", VIEWS)
def test_a_comparison_whose_regression_is_open_is_kept_however_idle_until_its_silence_closes_it(
    prefix: str,
) -> None:
    w = worker(prefix, idle_seconds=3 * DAY)  # the default silence: 7 days
    regress(w, "retiring", 0.0)
    for day in range(1, 7):
        w.turn(day * DAY, "shopper")
    assert journeys(w) == {"shopper", "retiring"}
    assert open_journeys(w) == {"retiring"}
    for day in range(7, 10):  # closed (tests/streams/test_version_silence.py), then dropped
        w.turn(day * DAY, "shopper")
    assert journeys(w) == {"shopper"}
    assert open_journeys(w) == set()


@pytest.mark.parametrize("prefix", VIEWS)
@pytest.mark.parametrize("restart", [False, True])
def test_no_room_is_given_up_while_the_other_comparison_has_a_regression_open(
    prefix: str, restart: bool
) -> None:
    # room for one journey: a's. b, past it, is "other", whose v2 regresses; given a's room, b would leave
    # "other" and its regression would never resolve. a's idle comparison is kept meanwhile: a restart admits
    # the journeys of the recovered comparisons
    w = worker(prefix, idle_seconds=10 * DAY, max_journeys=1)
    w.turn(0.0, "a")
    ts = regress(w, "b", 60.0)
    while ts < 15 * DAY:  # a idle for 14 days, v2 still serving b next to v1: the regression stays open
        ts += 3 * 3600.0
        for version in ("v1", "v2"):
            w.turn(ts + (version == "v2") * 60.0, "b", version=version)
    assert journeys(w) == {"a", "other"}
    if restart:
        w.restart()
    assert not room_for(w, "c")
    while open_journeys(w):  # v2 rolled back: the pair ends, and with it the regression
        ts += 3600.0
        w.turn(ts, "b", version="v1")
    w.turn(ts + 10 * DAY / 30, "c")  # the next look (every 8 hours) gives the room up
    assert journeys(w) - {"c"} == {"other"}
    assert room_for(w, "c")


def test_outcome_comparisons_turn_over_per_partition_and_a_restart_drops_as_without() -> None:
    # as on Kafka: each observation partition (the journey's: odd and even campaign weeks) has room for 2
    def make() -> JourneyWorker:
        return JourneyWorker(
            lambda m: VersionOutcomeView(m, horizon_seconds=HORIZON, max_journeys=2),
            partition_of=lambda journey: int(journey[-1]) % 2,
        )

    once, restarted = with_and_without_a_restart(make, weekly_turns(45), feed, 37 * WEEK + 13 * 3600.0)
    own = journeys(once) - {"other#0", "other#1"}  # at most 2 a partition, of the last 30 days' journeys
    assert {"other#0", "other#1"} <= journeys(once)
    assert {campaign(43), campaign(44)} <= own <= {campaign(week) for week in range(39, 45)}
    assert restarted.state() == once.state()
