"""An open judge drift whose pairs have stopped closes (``closed_without_traffic``), and is then dropped.

Until 2026-11-26 a drift open when its pairs stopped (a judge replaced because of it, a journey retired)
stayed open for good: only new pairs could resolve it, the idle drop kept detectors in alarm, and a restart
sent the escalation to Alertmanager again.
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.emit import iso
from streams.views.drift import JudgeDriftView
from streams.views.spike_silence import SWEEP_SECONDS
from tests.support.escalating import Escalating
from tests.support.journeys import DAY, JUDGE, JourneyWorker

SILENCE = 5 * DAY  # the silence period of these tests (30 days by default)


class Emitting(Escalating, JourneyWorker):
    """The drift view over a :class:`JourneyWorker`, keeping what it emits, with contacts (the clock)."""

    def __init__(self, idle_seconds: float = 10 * DAY) -> None:
        self.escalations: list[dict[str, Any]] = []
        super().__init__(lambda m: JudgeDriftView(m, idle_seconds=idle_seconds, silence_seconds=SILENCE))

    def of(self, journey: str) -> list[dict[str, Any]]:
        return [e for e in self.escalations if e["segment"]["journey"] == journey]

    def open_journeys(self) -> set[str]:
        keys = [k for k, _ in self.aggregator.records("drift")]
        opened = self.view.open_escalations(self.aggregator, keys, lambda judge: True, 0.0)
        return {value["segment"]["journey"] or "*" for _, value in opened}

    def journeys(self, prefix: str = "drift", at: int = 2) -> set[str]:
        return super().journeys(prefix, at)


def _retiring_drifts(w: Emitting) -> float:
    """A disagreement rate of 5%, then 60%, in journey ``retiring`` until its drift fires; the event time of
    its last pair."""
    n = 0
    while not w.of("retiring"):
        w.turn(n * 60.0, "retiring", disagree=0.05 if n < 300 else 0.6)
        n += 1
        assert n < 1000
    return (n - 1) * 60.0


@pytest.mark.parametrize("restart", [False, True])
def test_a_retired_journeys_drift_closes_after_its_silence_then_goes(restart: bool) -> None:
    w = Emitting()
    last = _retiring_drifts(w)
    assert "retiring" in w.open_journeys()
    ts = last
    while len(w.of("retiring")) < 2:  # the judge's pairs go on, in another journey
        ts += 3600.0
        if restart and ts == last + 2 * DAY:  # in the silence
            w.restart()
        w.turn(ts, "shopper", disagree=0.05)
        assert ts < last + 2 * SILENCE
    assert ts <= last + SILENCE + 3600.0 + SWEEP_SECONDS  # closed at the first look after the silence
    firing, resolved = w.of("retiring")
    assert (firing["status"], firing["revision"], firing["evidence"]["closed_without_traffic"]) == (
        "firing",
        1,
        False,
    )
    assert resolved["escalation_id"] == firing["escalation_id"]
    assert (resolved["status"], resolved["revision"]) == ("resolved", 2)
    assert resolved["evidence"]["closed_without_traffic"] is True
    assert resolved["event_time"] == iso(last + SILENCE)
    assert resolved["summary"].startswith(
        f"Judge drift closed without traffic: no pairs of {JUDGE} on safety in journey retiring for 5.0 "
        "days; it disagreed with humans "
    )
    assert "retiring" not in w.open_journeys()
    w.restart()  # not sent again, nor closed again
    assert "retiring" not in w.open_journeys()
    while ts < last + 10 * DAY:  # idle_seconds: dropped when idle, as any detector not in alarm
        ts += 6 * 3600.0
        w.turn(ts, "shopper", disagree=0.05)
    assert "retiring" in w.journeys()
    w.turn(ts + DAY, "shopper", disagree=0.05)  # the next day's look
    assert w.journeys() == {"*", "shopper"}
    assert len(w.of("retiring")) == 2


def test_a_retired_judges_drift_closes_and_goes_on_contacts_alone() -> None:
    # the judge replaced because of its drift: none of its pairs come any more, the turns' contacts do
    w = Emitting()
    last = _retiring_drifts(w)
    for hour in range(1, 12 * 24):
        w.contact(last + hour * 3600.0)
    statuses = [(e["status"], e["evidence"]["closed_without_traffic"]) for e in w.of("retiring")]
    assert statuses == [("firing", False), ("resolved", True)]
    assert w.journeys() == set()
    assert w.open_journeys() == set()


def test_a_drift_whose_pairs_keep_coming_stays_open() -> None:
    w = Emitting()
    last = _retiring_drifts(w)
    for n in range(1, 11):  # a drifted pair every 4 days, each within the silence; contacts between
        w.turn(last + n * 4 * DAY, "retiring", disagree=1.0)
        for hour in range(1, 4 * 24, 6):
            w.contact(last + n * 4 * DAY + hour * 3600.0)
    assert [e["status"] for e in w.of("retiring")] == ["firing"]
    assert "retiring" in w.open_journeys()


def test_a_drift_from_state_without_pair_times_is_silent_from_the_first_look_on() -> None:
    # state written until 2026-11-26 has no pair time: the first look after the upgrade writes the clock's
    w = Emitting()
    last = _retiring_drifts(w)
    w.without_last_seen()
    upgraded = last + 2 * DAY  # the first look: at the start of its 10 minutes
    for hour in range(0, 8 * 24):
        w.contact(upgraded + hour * 3600.0)
    _, resolved = w.of("retiring")
    assert resolved["event_time"] == iso(upgraded // SWEEP_SECONDS * SWEEP_SECONDS + SILENCE)
