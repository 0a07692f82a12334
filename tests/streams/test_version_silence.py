"""A model-version comparison with a regression open whose turns have stopped is closed: the regression
resolves (``closed_without_traffic``), and the comparison is then dropped when idle.

Until 2026-11-26 a regression open when the comparison's turns all stopped (a judge replaced, a journey
retired) stayed open for good: the pair stayed live in the comparison's state, the idle drop kept it, and a
restart sent the escalation to Alertmanager again.
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.emit import iso
from streams.views.spike_silence import SWEEP_SECONDS
from streams.views.version_common import VersionPairView
from streams.views.version_regression import SILENCE_SECONDS
from tests.streams.test_version_idle import HORIZON, VIEWS, journeys, open_journeys, regress
from tests.support.escalating import Escalating
from tests.support.journeys import DAY, JourneyWorker


class Emitting(Escalating, JourneyWorker):
    """A model-version view (``prefix``) over a :class:`JourneyWorker`, keeping what it emits."""

    def __init__(self, prefix: str, horizon: float = HORIZON) -> None:
        self.escalations: list[dict[str, Any]] = []
        cls = VIEWS[prefix][0]

        def make(metrics: Any) -> VersionPairView:
            return cls(metrics, horizon_seconds=horizon, min_samples=20, idle_seconds=10 * DAY)

        super().__init__(make)

    def of(self, journey: str) -> list[dict[str, Any]]:
        return [e for e in self.escalations if e["segment"]["journey"] == journey]


def _statuses(w: Emitting, journey: str) -> list[tuple[str, bool]]:
    """(status, closed_without_traffic) of the escalations of ``journey``'s first regression (the outcome
    tests' has one per outcome: they go alike)."""
    first = w.of(journey)[0]["escalation_id"]
    return [
        (e["status"], e["evidence"]["closed_without_traffic"])
        for e in w.of(journey)
        if e["escalation_id"] == first
    ]


@pytest.mark.parametrize("prefix", VIEWS)
@pytest.mark.parametrize("restart", [False, True])
def test_a_retired_journeys_regression_closes_after_its_silence_then_goes(prefix: str, restart: bool) -> None:
    w = Emitting(prefix)
    last = regress(w, "retiring", 0.0)
    ts = last
    while w.of("retiring")[-1]["status"] == "firing":  # turns go on, in another journey
        ts += 3600.0
        if restart and ts == last + 2 * DAY:  # in the silence
            w.restart()
        w.turn(ts, "shopper")
        assert ts < last + 2 * SILENCE_SECONDS
    assert ts <= last + SILENCE_SECONDS + 3600.0 + SWEEP_SECONDS  # at the first look after the silence
    assert _statuses(w, "retiring") == [("firing", False), ("resolved", True)]
    firing, resolved = (
        e for e in w.of("retiring") if e["escalation_id"] == w.of("retiring")[0]["escalation_id"]
    )
    assert resolved["escalation_id"] == firing["escalation_id"]
    assert resolved["revision"] == 2 and resolved["turn_ids"] == []
    assert resolved["event_time"] == iso(last + SILENCE_SECONDS)
    assert resolved["summary"].endswith("; closed without traffic: no turns for 7.0 days")
    assert "retiring" not in open_journeys(w)
    w.restart()  # not sent again, nor closed again
    assert "retiring" not in open_journeys(w)
    for day in range(1, 6):  # dropped when idle (10 days)
        w.turn(ts + day * DAY, "shopper")
    assert journeys(w) == {"shopper"}
    assert _statuses(w, "retiring") == [("firing", False), ("resolved", True)]


@pytest.mark.parametrize("prefix", ["versions", "version_calibrated"])
def test_a_replaced_judges_regression_closes_on_contacts_alone(prefix: str) -> None:
    w = Emitting(prefix)
    last = regress(w, "retiring", 0.0)
    for hour in range(1, 12 * 24):  # none of the judge's verdicts: the turns' contacts only
        w.contact(last + hour * 3600.0)
    assert _statuses(w, "retiring") == [("firing", False), ("resolved", True)]
    assert journeys(w) == set()


@pytest.mark.parametrize("prefix", VIEWS)
def test_a_regression_whose_versions_keep_serving_stays_open(prefix: str) -> None:
    w = Emitting(prefix)
    ts = regress(w, "retiring", 0.0)
    for _ in range(4 * 20):  # both versions every 3 hours for 10 days
        ts += 3 * 3600.0
        w.turn(ts, "retiring", version="v1")
        w.turn(ts + 60.0, "retiring", version="v2")
    assert {e["status"] for e in w.of("retiring")} == {"firing"}
    assert open_journeys(w) == {"retiring"}


@pytest.mark.parametrize("prefix", VIEWS)
def test_a_closed_comparisons_versions_serving_again_are_tested_afresh(prefix: str) -> None:
    w = Emitting(prefix)
    last = regress(w, "retiring", 0.0)
    for day in range(1, 9):
        w.turn(last + day * DAY, "shopper")
    assert _statuses(w, "retiring") == [("firing", False), ("resolved", True)]
    before = {e["escalation_id"] for e in w.of("retiring")}
    regress(w, "retiring", last + 9 * DAY)  # the journey back, v2 still worse: its next episode
    fresh = [e["status"] for e in w.of("retiring") if e["escalation_id"] not in before]
    assert fresh and set(fresh) == {"firing"}


@pytest.mark.parametrize("prefix", VIEWS)
def test_a_regression_within_a_horizon_longer_than_the_silence_stays_open(prefix: str) -> None:
    """With CONVOWATCH_VERSION_HORIZON_SECONDS of 14 days (a low-traffic canary), two versions 9 days apart
    still serve together: found by review (2026-11-26), the first version closed the regression after its
    week and paged again under a new id when the journey's turns came back."""
    w = Emitting(prefix, horizon=14 * DAY)
    last = regress(w, "claims", 0.0)
    opened = {e["escalation_id"] for e in w.of("claims")}
    for day in range(1, 10):  # the journey paused 9 days, other traffic going on
        w.turn(last + day * DAY, "shopper")
    w.turn(last + 9 * DAY + 60.0, "claims", version="v2", fail=0.5)
    assert {e["status"] for e in w.of("claims")} == {"firing"}  # not closed, nor opened anew
    assert {e["escalation_id"] for e in w.of("claims")} == opened
    for day in range(10, 25):  # then silent past the horizon: closed, saying for how long
        w.turn(last + day * DAY, "shopper")
    assert _statuses(w, "claims") == [("firing", False), ("resolved", True)]
    resolved = next(e for e in w.of("claims") if e["status"] == "resolved")
    assert resolved["summary"].endswith("; closed without traffic: no turns for 14.0 days")
