"""An open perceptual drift whose scores have stopped closes (``closed_without_traffic``), and a dropped
detector's metric series go.

Until 2026-11-26 a canary model version rolled back because of its drift kept the drift open for good: only
new scores of that version could resolve it, the idle drop kept detectors in alarm, and a restart sent the
escalation to Alertmanager again, which never expires a drift. Detectors dropped when idle left their
``convowatch_perceptual_*`` series exported at their last values.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.emit import SEP, iso
from streams.state import encode_json
from streams.views.perceptual_silence import SILENCE_SECONDS
from streams.views.spike_silence import SWEEP_SECONDS
from tests.streams.test_perceptual_idle import DAY, JUDGE, Worker
from tests.support.escalating import Escalating

HOUR = 3600.0  # the silence period of these tests (a week by default)


class Emitting(Escalating, Worker):
    """The perceptual view of :class:`Worker`, keeping what it emits, with contacts (the worker's clock)."""

    def __init__(self, idle_seconds: float | None = None, silence_seconds: float | None = HOUR) -> None:
        self.escalations: list[dict[str, Any]] = []
        super().__init__(idle_seconds=idle_seconds, silence_seconds=silence_seconds)

    def of(self, version: str) -> list[dict[str, Any]]:
        return [e for e in self.escalations if e["segment"]["model_version"] == version]

    def open_escalations(self) -> list[dict[str, Any]]:
        keys = self.detector_keys()
        return [value for _, value in self.view.open_escalations(self.aggregator, keys, lambda j: True, 0.0)]

    def sample(self, name: str, version: str, score: str = "prompt_alignment") -> float | None:
        labels = {"judge_id": JUDGE, "modality": "image", "model_version": version, "score": score}
        value: float | None = self.registry.get_sample_value(name, labels)
        return value


def _canary_drifts(worker: Emitting) -> float:
    """``main`` and the canary ``m-1`` a minute apart, m-1's prompt alignment falling from its 21st verdict
    until its drift fires; the event time of m-1's last verdict."""
    n = 0
    while not worker.of("m-1"):
        n += 1
        worker.turn(n * 60.0, "main")
        worker.turn(n * 60.0 + 1, "m-1", alignment=0.7 if n <= 20 else 0.3)
        assert n < 100
    return n * 60.0 + 1


@pytest.mark.parametrize("restart", [False, True])
def test_a_rolled_back_versions_drift_closes_after_its_silence(restart: bool) -> None:
    worker = Emitting()
    last = _canary_drifts(worker)
    detector = worker.detector("m-1")
    assert detector is not None and detector.in_alarm
    silence = HOUR
    assert worker.sample("convowatch_perceptual_drift_active", "m-1") == 1.0
    ts = last
    while ts < last + 2 * DAY:  # rolled back: the judge's verdicts are all on main
        ts += 300.0
        if restart and ts == last + 1800.0:  # in the silence
            worker.restart()
        worker.turn(ts, "main")
        if len(worker.of("m-1")) == 2:
            break
    firing, resolved = worker.of("m-1")
    assert ts <= last + silence + 2 * SWEEP_SECONDS  # closed at the first look after the silence
    assert firing["status"] == "firing" and firing["revision"] == 1
    assert not firing["evidence"]["closed_without_traffic"]
    assert resolved["escalation_id"] == firing["escalation_id"]
    assert (resolved["status"], resolved["revision"]) == ("resolved", 2)
    assert resolved["evidence"]["closed_without_traffic"] is True
    assert resolved["event_time"] == iso(last + silence)
    assert resolved["turn_ids"] == []
    assert resolved["summary"].startswith(
        "Perceptual drift closed without traffic: no prompt_alignment scores of image outputs from m-1 "
        f"(judge {JUDGE}) for 1.0 h"
    )
    detector = worker.detector("m-1")
    assert detector is not None and not detector.in_alarm
    if not restart:  # a restarted worker's gauge was never set
        assert worker.sample("convowatch_perceptual_drift_active", "m-1") == 0.0
    assert worker.open_escalations() == []

    worker.restart()  # not sent again, nor closed again
    assert worker.open_escalations() == []
    for day in range(1, 4):
        worker.turn(ts + day * DAY, "main")
    assert len(worker.of("m-1")) == 2


def test_a_drift_closes_on_contacts_when_its_judge_is_silent() -> None:
    # a judge replaced: none of its verdicts come any more, the turns' contacts do
    worker = Emitting()
    last = _canary_drifts(worker)
    for minute in range(1, 121):
        worker.contact(last + minute * 60.0)
    statuses = [(e["status"], e["evidence"]["closed_without_traffic"]) for e in worker.of("m-1")]
    assert statuses == [("firing", False), ("resolved", True)]
    assert worker.of("main") == []


def test_a_drift_whose_scores_keep_coming_stays_open() -> None:
    worker = Emitting()
    last = _canary_drifts(worker)
    for n in range(1, 49):  # a drifted verdict every 50 minutes: each within the hour
        worker.turn(last + n * 3000.0, "m-1", alignment=0.3)
        worker.contact(last + n * 3000.0 + 2900.0)
    assert [e["status"] for e in worker.of("m-1")] == ["firing"]
    detector = worker.detector("m-1")
    assert detector is not None and detector.in_alarm


def test_a_judge_lagging_the_turns_by_hours_is_not_silent() -> None:
    # the contacts of the turns come 2 hours ahead of the judge's verdicts on them: silence is counted from
    # when the scores arrive on the worker's clock, not from their event time
    worker, lag = Emitting(), 2 * 3600.0
    n = 0
    while not worker.of("m-1"):
        n += 1
        worker.contact(n * 60.0 + lag)
        worker.turn(n * 60.0, "m-1", alignment=0.7 if n <= 20 else 0.3)
    for m in range(n + 1, n + 300):  # 5 hours more
        worker.contact(m * 60.0 + lag)
        worker.turn(m * 60.0, "m-1", alignment=0.3)
    assert [e["status"] for e in worker.of("m-1")] == ["firing"]
    last = (n + 299) * 60.0
    for minute in range(1, 121):  # the verdicts stop
        worker.contact(last + lag + minute * 60.0)
    (_, resolved) = worker.of("m-1")
    assert resolved["evidence"]["closed_without_traffic"]
    assert resolved["event_time"] == iso(last + lag + HOUR)


def test_a_drift_from_state_without_arrivals_is_silent_from_the_first_look_on() -> None:
    # state written until 2026-11-26 has no arrival: the first look after the upgrade writes the clock's
    worker = Emitting()
    last = _canary_drifts(worker)
    worker.aggregator.flush()
    for key, stored in list(worker.store.items()):
        value = orjson.loads(stored)
        value["detector"]["state"].pop("_last_arrival")
        worker.store.put(key, encode_json(value), None)
    worker.restart()
    detector = worker.detector("m-1")
    assert detector is not None and detector.in_alarm and detector.last_arrival is None
    upgraded = last + 3 * 3600.0  # the first look: at the start of its 10 minutes
    for minute in range(0, 121, 5):
        worker.contact(upgraded + minute * 60.0)
    (_, resolved) = worker.of("m-1")
    first_look = upgraded // SWEEP_SECONDS * SWEEP_SECONDS
    assert resolved["event_time"] == iso(first_look + HOUR)


def test_a_dropped_detectors_series_go() -> None:
    worker = Emitting(idle_seconds=10 * DAY)
    for n in range(40):  # m-1's statistic is exported (window 10, tested every 5)
        worker.turn(n * 60.0, "m-1")
    families = [
        ("convowatch_perceptual_score_count", "artifact"),
        ("convowatch_perceptual_score_count", "prompt_alignment"),
        ("convowatch_perceptual_drift_statistic", "prompt_alignment"),
        ("convowatch_perceptual_drift_active", "prompt_alignment"),
    ]
    assert all(worker.sample(name, "m-1", score) is not None for name, score in families)
    for day in range(1, 13):
        worker.turn(day * DAY, "m-2")
    assert worker.versions() == {"m-2"}  # m-1 dropped
    assert [worker.sample(name, "m-1", score) for name, score in families] == [None] * 4
    assert worker.sample("convowatch_perceptual_score_count", "m-2") == 12.0

    worker.turn(13 * DAY, "m-1")  # back: exported again
    assert worker.sample("convowatch_perceptual_score_count", "m-1") == 1.0


def test_a_closed_drift_is_dropped_when_idle_with_its_series() -> None:
    worker = Emitting(idle_seconds=10 * DAY)
    last = _canary_drifts(worker)
    for day in range(1, 13):
        worker.turn(last + day * DAY, "main")
    assert [e["status"] for e in worker.of("m-1")] == ["firing", "resolved"]
    assert worker.detector("m-1") is None
    assert worker.sample("convowatch_perceptual_drift_active", "m-1") is None
    assert all(key.split(SEP)[3] == "main" for key in worker.detector_keys())


def test_a_drifted_version_with_quiet_nights_and_weekends_pages_once_and_closes_a_week_after_it_stops() -> (
    None
):
    # the default silence, a week: a review of a first version (an hour and 5 typical gaps of the scores)
    # found a still-drifted version closing every quiet night and firing again every morning
    worker = Emitting(silence_seconds=None)
    n, ts = 0, 0.0
    for day in range(21):  # scores every 10 minutes from 08:00 to 18:00 on weekdays only; contacts always
        for minute in range(0, 24 * 60, 10):
            ts = day * DAY + minute * 60.0
            if day % 7 < 5 and 8 * 60 <= minute < 18 * 60:
                n += 1
                worker.turn(ts, "m-1", alignment=0.7 if n <= 20 else 0.3)
            else:
                worker.contact(ts)
    assert [e["status"] for e in worker.of("m-1")] == ["firing"]
    last = worker.detector("m-1").last_seen  # type: ignore[union-attr]
    while ts < last + SILENCE_SECONDS + 2 * SWEEP_SECONDS:  # rolled back: contacts only
        ts += 600.0
        worker.contact(ts)
    statuses = [(e["status"], e["evidence"]["closed_without_traffic"]) for e in worker.of("m-1")]
    assert statuses == [("firing", False), ("resolved", True)]


def test_a_retired_judges_open_drift_closes_and_its_detectors_go_on_contacts() -> None:
    # a judge replaced while a drift of its is open: the turns' contacts alone close the drift after its
    # silence, then drop the judge's detectors and their series once idle (its own looks never come)
    worker = Emitting(idle_seconds=10 * DAY)
    last = _canary_drifts(worker)
    assert worker.sample("convowatch_perceptual_score_count", "main") is not None
    for hour in range(1, 12 * 24):
        worker.contact(last + hour * 3600.0)
    statuses = [(e["status"], e["evidence"]["closed_without_traffic"]) for e in worker.of("m-1")]
    assert statuses == [("firing", False), ("resolved", True)]
    assert worker.detector_keys() == []
    assert worker.sample("convowatch_perceptual_score_count", "main") is None
    assert worker.sample("convowatch_perceptual_drift_active", "m-1") is None
