"""A slice of weekday traffic keeps its open spike over the weekend, a long one too, and closes once silent.

Until 2026-11-26 its silence period was 5 typical gaps, each gap counted up to a day there: 54.5 hours for a
turn a minute from 08:00 to 18:00 on weekdays, less than its 62-hour weekend, and an incident open on Friday
was closed without traffic on Sunday and raised again, as a new escalation, on Monday (a review:
``/tmp/s24/dayreview3/weekend_close.py``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from streams.emit import SEP
from streams.views.spike_silence import LONGEST_GAP_MARGIN, silence_seconds
from tests.streams.test_spike_silence import Worker, _statuses
from tests.support.restartable import with_and_without_a_restart

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
SPIKE_FROM = datetime(2026, 10, 30, 12, tzinfo=UTC)  # a Friday, noon
HOLIDAY = datetime(2026, 11, 9, tzinfo=UTC).date()  # the Monday after: a long weekend
ROLLED_BACK = datetime(2026, 11, 11, 12, tzinfo=UTC)  # a Wednesday, noon
END = datetime(2026, 11, 20, tzinfo=UTC)


def weekday_traffic(rng: random.Random) -> Iterator[tuple[float, str]]:
    """judge-a: model m-1 of journey shopper, a turn a minute from 08:00 to 18:00 UTC on working days (not
    on :data:`HOLIDAY`) until :data:`ROLLED_BACK`, 2% defective, 30% from :data:`SPIKE_FROM`; and every
    day, every 10 minutes, a turn of another journey (``consumer``): the worker's clock runs at weekends."""
    at = START
    while at < END:
        working = at.weekday() < 5 and at.date() != HOLIDAY and 8 <= at.hour < 18
        if working and at < ROLLED_BACK:
            yield at.timestamp(), f"judge-a/m-1/{int(rng.random() < (0.3 if at >= SPIKE_FROM else 0.02))}"
        if at.minute % 10 == 0:
            yield at.timestamp(), "consumer"
        at += timedelta(minutes=1)


def feed(worker: Worker, ts: float, what: str) -> None:
    if what != "consumer":
        worker.feed(ts, what)
        return
    worker.offset += 1
    obs = {
        "kind": "judged",
        "judge_id": "judge-a",
        "turn_id": f"c{worker.offset}",
        "ts": ts,
        "labels": {"relevance": "pass"},
        "segment": {"journey": "consumer", "model_version": "c-1", "intent": "x"},
        "src": ["observations:0", worker.offset, 0],
    }
    worker.out += worker.aggregator.apply(obs)


def test_a_weekday_slices_spike_stays_open_over_weekends_and_closes_once_rolled_back() -> None:
    worker = Worker()
    events = list(weekday_traffic(random.Random(3)))
    for ts, what in events:
        if ts >= ROLLED_BACK.timestamp():
            break
        feed(worker, ts, what)
    m1 = worker.spikes("m-1")
    assert _statuses(m1) == [("firing", False)]  # until 2026-11-26: closed each Sunday, raised each Monday
    assert datetime.fromisoformat(m1[0]["event_time"]) < datetime(2026, 10, 31, tzinfo=UTC)
    assert worker.active("m-1") == 1.0  # over the weekend and the long weekend
    for ts, what in events:
        if ts >= ROLLED_BACK.timestamp():
            feed(worker, ts, what)
    m1 = worker.spikes("m-1")
    assert _statuses(m1) == [("firing", False), ("resolved", True)]
    detector = worker.aggregator.detector(f"spike{SEP}judge-a{SEP}journey=shopper{SEP}model_version=m-1")
    assert detector is not None and detector.last_arrival == (ROLLED_BACK - timedelta(minutes=1)).timestamp()
    # the long weekend, from Friday's last turn (17:59) to Tuesday 08:00, is the longest gap
    long_weekend = datetime(2026, 11, 10, 8, tzinfo=UTC) - datetime(2026, 11, 6, 17, 59, tzinfo=UTC)
    assert detector.longest_gap == long_weekend.total_seconds()
    silence = LONGEST_GAP_MARGIN * long_weekend.total_seconds()
    assert silence_seconds(detector) == silence  # 129 hours: more than 5 typical gaps
    assert datetime.fromisoformat(m1[1]["event_time"]).timestamp() == detector.last_arrival + silence


@pytest.mark.parametrize("at", [datetime(2026, 11, 1, 12, tzinfo=UTC), datetime(2026, 11, 14, tzinfo=UTC)])
def test_a_restart_in_a_weekend_or_the_silence_ends_as_a_run_without_it(at: datetime) -> None:
    events = list(weekday_traffic(random.Random(4)))
    once, restarted = with_and_without_a_restart(Worker, events, feed, at.timestamp())
    assert [e.value for e in restarted.out] == [e.value for e in once.out]
    assert restarted.state() == once.state()
    assert _statuses(once.spikes("m-1")) == [("firing", False), ("resolved", True)]
