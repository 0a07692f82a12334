"""An open judge drift whose judge has gone silent on the dimension (no pair and no verdict for 30 days)
closes (``closed_without_traffic``), and is then dropped; one whose judge still judges stays open.

Until 2026-11-26 a drift open when its pairs stopped (a judge replaced because of it) stayed open for good:
only new pairs could resolve it, the idle drop kept detectors in alarm, and a restart sent the escalation to
Alertmanager again. A first version of the close (the same day) counted the pairs' silence alone, and closed
an active judge's drift between two monthly audits (review): these tests feed the agreement view too, whose
stamp of the judge's verdicts the close reads.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.emit import iso
from streams.metrics import Metrics
from streams.views.agreement import AgreementView
from streams.views.drift import JudgeDriftView
from streams.views.spike_silence import SWEEP_SECONDS
from tests.support.escalating import Escalating
from tests.support.journeys import DAY, JUDGE, JourneyWorker

SILENCE = 5 * DAY  # the silence period of these tests (30 days by default)
STALE = DAY  # how late the agreement view's stamp of the judge's verdicts may be


class Emitting(Escalating, JourneyWorker):
    """The drift view and the agreement view over a :class:`JourneyWorker`, keeping what the drift view
    emits, with contacts (the clock) and verdicts without pairs."""

    def __init__(self, idle_seconds: float = 10 * DAY) -> None:
        self.escalations: list[dict[str, Any]] = []
        self.idle_seconds = idle_seconds
        super().__init__(lambda m: JudgeDriftView(m, idle_seconds=idle_seconds, silence_seconds=SILENCE))

    def _start(self) -> None:
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        self.view = self.make_view(metrics)
        agreement = AgreementView(metrics, idle_seconds=self.idle_seconds)
        self.aggregator = Aggregator(metrics, self.store, views=[agreement, self.view])

    def verdict(self, ts: float) -> None:
        """A verdict of the judge on ``safety`` that no human labels."""
        self.offset += 1
        obs = {
            "kind": "judged",
            "judge_id": JUDGE,
            "labels": {"safety": "pass"},
            "turn_id": f"v{self.offset}",
        }
        self.aggregator.apply(obs | {"ts": ts, "src": ["judged:0", self.offset, 0]})

    def of(self, journey: str) -> list[dict[str, Any]]:
        return [e for e in self.escalations if e["segment"]["journey"] == journey]

    def open_journeys(self) -> set[str]:
        keys = [k for k, _ in self.aggregator.records("drift")]
        opened = self.view.open_escalations(self.aggregator, keys, lambda judge: True, 0.0)
        return {value["segment"]["journey"] or "*" for _, value in opened}

    def journeys(self, prefix: str = "drift", at: int = 2) -> set[str]:
        return super().journeys(prefix, at)


def _drifts(w: Emitting) -> float:
    """A disagreement rate of 5%, then 60%, in journey ``retiring`` until its drift fires; the event time of
    its last pair."""
    n = 0
    while not w.of("retiring"):
        w.turn(n * 60.0, "retiring", disagree=0.05 if n < 300 else 0.6)
        n += 1
        assert n < 1000
    return (n - 1) * 60.0


@pytest.mark.parametrize("restart", [False, True])
def test_a_retired_judges_drift_closes_once_it_is_silent_then_goes(restart: bool) -> None:
    # the judge replaced because of its drift: none of its verdicts or pairs come, the turns' contacts do
    w = Emitting()
    last = _drifts(w)
    ts = last
    while len(w.of("retiring")) < 2:
        ts += 3600.0
        if restart and ts == last + 2 * DAY:  # in the silence
            w.restart()
        w.contact(ts)
        assert ts < last + 2 * SILENCE
    assert ts <= last + SILENCE + STALE + 3600.0 + SWEEP_SECONDS  # the first look after the silence
    firing, resolved = w.of("retiring")
    assert (firing["status"], firing["revision"], firing["evidence"]["closed_without_traffic"]) == (
        "firing",
        1,
        False,
    )
    assert resolved["escalation_id"] == firing["escalation_id"]
    assert (resolved["status"], resolved["revision"]) == ("resolved", 2)
    assert resolved["evidence"]["closed_without_traffic"] is True
    # its silence complete: its last pair's, or the stamp of its judge's last verdict a day after it
    assert iso(last + SILENCE) <= resolved["event_time"] <= iso(last + SILENCE + STALE)
    assert resolved["summary"].startswith(
        f"Judge drift closed without traffic: no pairs or verdicts of {JUDGE} on safety in journey retiring "
        "for 5.0 "
        "days; it disagreed with humans "
    )
    assert w.open_journeys() == set()
    w.restart()  # not sent again, nor closed again
    assert w.open_journeys() == set()
    for hour in range(1, 12 * 24):  # dropped when idle (10 days)
        w.contact(ts + hour * 3600.0)
    assert w.journeys() == set()
    assert len(w.of("retiring")) == 2


@pytest.mark.parametrize("restart", [False, True])
def test_an_active_judges_drift_stays_open_between_audits(restart: bool) -> None:
    """Humans label the judge's turns in audits 4 silence periods apart; the judge judges every hour between.
    The first version closed the drift after the pairs' silence (review, 2026-11-26)."""
    w = Emitting(idle_seconds=40 * DAY)
    last = _drifts(w)
    for hour in range(1, 4 * 5 * 24):
        if restart and hour % (3 * 24) == 0:
            w.restart()
        w.verdict(last + hour * 3600.0)
        w.contact(last + hour * 3600.0 + 60.0)
    assert [e["status"] for e in w.of("retiring")] == ["firing"]
    assert "retiring" in w.open_journeys()


def test_a_retired_journeys_drift_stays_open_while_its_judge_judges_the_dimension() -> None:
    # the journey retired, the judge's pairs and verdicts going on in another: its pairs' silence is no sign
    w = Emitting()
    last = _drifts(w)
    for hour in range(1, 3 * 5 * 24, 3):
        w.turn(last + hour * 3600.0, "shopper", disagree=0.05)
    assert [e["status"] for e in w.of("retiring")] == ["firing"]
    assert "retiring" in w.open_journeys()


def test_a_drift_whose_pairs_keep_coming_stays_open() -> None:
    w = Emitting()
    last = _drifts(w)
    for n in range(1, 11):  # a drifted pair every 4 days, each within the silence; contacts between
        w.turn(last + n * 4 * DAY, "retiring", disagree=1.0)
        for hour in range(1, 4 * 24, 6):
            w.contact(last + n * 4 * DAY + hour * 3600.0)
    assert [e["status"] for e in w.of("retiring")] == ["firing"]
    assert "retiring" in w.open_journeys()


def test_a_drift_from_state_without_pair_times_is_silent_from_the_first_look_on() -> None:
    # state written until 2026-11-26 has no pair time: the first look after the upgrade writes the clock's
    w = Emitting()
    last = _drifts(w)
    w.without_last_seen([k for k, _ in w.store.items() if k.startswith("drift")])
    upgraded = last + 2 * DAY  # the first look: at the start of its 10 minutes
    for hour in range(0, 8 * 24):
        w.contact(upgraded + hour * 3600.0)
    _, resolved = w.of("retiring")
    assert resolved["event_time"] == iso(upgraded // SWEEP_SECONDS * SWEEP_SECONDS + SILENCE)
