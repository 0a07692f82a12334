"""A fleet restarted or rebalanced more often than every 30 days drops a retired judge's agreement figures
about 30 days after its last verdict, and keeps those of a judge still judging: the newest verdict time of
each judge and dimension is stamped into its breakdown (``streams/views/agreement_heard.py``).

Until 2026-11-26 it was kept in memory only and each start counted every judge as heard at its first
verdict or contact: such a fleet never dropped a retired judge's figures, and ``ConvowatchJudgeAgreementLow``
of a judge replaced for disagreeing with humans kept firing for good.
"""

from __future__ import annotations

from typing import Any

import orjson

from detectors.agreement_breakdown import AgreementBreakdown
from streams.aggregate import key
from streams.state import encode_json
from tests.streams.test_agreement_retired import DAY, NEW, OLD, Worker, _traffic_from, _verdicts
from tests.support.restartable import JsonStore

HOUR = 3600.0
WEEK = 7 * DAY
PAIR_KINDS = {"agreement", "agreement_detail", "calibration"}


def _fleet(worker: Worker, start: float, end: float, restart_every: float = WEEK) -> int:
    """Every 3 hours from ``start`` to ``end`` a contact, and a turn the old judge judges for its first 3 days
    and the new one after (each labelled); the worker restarted, and its owned gauges exported again, before
    the first turn 7 hours or more into each ``restart_every`` after the first; the restarts."""
    ts, restarts = start, 0
    while ts < end:
        if ts >= restart_every and (ts - 7 * HOUR) // restart_every != (ts - 10 * HOUR) // restart_every:
            worker.restart_and_export()
            restarts += 1
        worker.contact(ts)
        worker.pair(OLD if ts < 3 * DAY else NEW, ts)
        ts += 3 * HOUR
    return restarts


def test_a_fleet_restarted_weekly_drops_a_retired_judges_figures_30_days_after_its_last_verdict() -> None:
    worker = Worker()
    assert _fleet(worker, 0.0, 33.5 * DAY) == 4  # restarted on days 7, 14, 21 and 28
    # its vendor figures went with their labels on day 33, restarts or not
    assert {k.split("\x1f")[0] for k in worker.keys(OLD)} == PAIR_KINDS
    assert "convowatch_judge_cohen_kappa" in worker.series(OLD)
    assert (
        _fleet(worker, 33.5 * DAY, 36 * DAY) == 1
    )  # its last verdict on day 2.875; the look of day 34 drops it
    assert worker.keys(OLD) == set()
    assert worker.series(OLD) == set()  # the restart on day 35 did not export them again
    assert [row["judge_id"] for row in worker.view.rows(worker.aggregator)] == [NEW, NEW]


def test_a_judge_audited_every_35_days_keeps_its_figures_through_weekly_restarts() -> None:
    worker = Worker()
    for audit in (0.0, 35 * DAY):
        worker.audit(OLD, audit)
        week = audit
        while week < audit + 35 * DAY:
            _verdicts(worker, week + HOUR, week + WEEK, ("relevance", "safety"))
            worker.restart_and_export()
            worker.contact(
                week + WEEK + DAY
            )  # a turn of another shard first: a look before OLD's next verdict
            week += WEEK
    assert len(worker.keys(OLD)) == 6  # its vendor figures went with their labels (labels only decide them)
    pairs = worker.registry.get_sample_value(
        "convowatch_judge_agreement_pairs", {"judge_id": OLD, "dimension": "safety"}
    )
    assert pairs == 80.0


def _verdicts_then_quiet(restart: bool, end: float) -> Worker:
    """OLD's 40 pairs on day 0.9, its verdicts every hour until day 3.8 (stamped on days 0.9, 1.9 and 2.9:
    those after are in memory only), a restart on day 3.85 if ``restart``, then contacts every 3 hours."""
    worker = Worker()
    worker.audit(OLD, 0.9 * DAY)
    _verdicts(worker, 0.9 * DAY + HOUR, 3.8 * DAY + 1.0, ("relevance", "safety"))
    if restart:
        worker.restart()
    ts = 3.85 * DAY
    while ts < end:
        worker.contact(ts)
        ts += 3 * HOUR
    return worker


def test_verdicts_the_stamp_missed_before_a_restart_do_not_hasten_the_drop() -> None:
    # the stamp counts as heard a day after its time (2.9 + 1), after the newest verdict it missed (3.8)
    once, restarted = _verdicts_then_quiet(False, 33.5 * DAY), _verdicts_then_quiet(True, 33.5 * DAY)
    assert {k.split("\x1f")[0] for k in once.keys(OLD)} == PAIR_KINDS
    assert restarted.keys(OLD) == once.keys(OLD)
    once, restarted = _verdicts_then_quiet(False, 35 * DAY), _verdicts_then_quiet(True, 35 * DAY)
    assert once.keys(OLD) == restarted.keys(OLD) == set()


def test_a_verdict_after_weeks_of_silence_just_before_a_restart_keeps_the_judge() -> None:
    # OLD judges again on day 30.5, after the day's look and hours before a restart; the looks of days 31 and
    # 32 come before its next verdict: the stamp taken by that verdict keeps it, as memory does without the
    # restart (one taken at the daily look only would not have it)
    once, restarted = Worker(), Worker()
    for worker in (once, restarted):
        worker.audit(OLD)
        _verdicts(worker, HOUR, 0.9 * DAY, ("relevance", "safety"))
        worker.contact(30.4 * DAY)  # the day's look comes before OLD's verdicts
        _verdicts(worker, 30.5 * DAY, 30.6 * DAY, ("relevance", "safety"))
    restarted.restart()
    for worker in (once, restarted):
        worker.contact(31 * DAY)
        worker.contact(32 * DAY)
        _verdicts(worker, 32.5 * DAY, 33 * DAY, ("relevance", "safety"))
    assert {k.split("\x1f")[0] for k in restarted.keys(OLD)} >= PAIR_KINDS
    assert restarted.keys(OLD) == once.keys(OLD)


def _without_heard(worker: Worker) -> None:
    """Store the breakdowns without their ``_heard`` stamp, as code until 2026-11-26 wrote them; restart."""
    worker.aggregator.flush()
    for at in [k for k, _ in worker.store.items() if k.startswith("agreement_detail\x1f")]:
        value = orjson.loads(worker.store.get(at))
        value["detector"]["state"].pop("_heard", None)
        worker.store.put(at, encode_json(value), None)
    worker.restart_and_export()


def test_state_without_the_stamp_counts_from_the_first_start_on_it_then_from_its_stamp() -> None:
    worker = Worker()
    _traffic_from(worker, 0.0, 20 * DAY)
    for ts in range(0, int(3 * DAY), int(3 * HOUR)):
        worker.pair(OLD, float(ts))
    _without_heard(worker)  # the upgrade on day 20: OLD, retired on day 3, counts as heard then, as before
    _traffic_from(worker, 20 * DAY, 40 * DAY)
    assert len(worker.keys(OLD)) == 6  # its vendor figures went with their labels, as before
    assert _stamp(worker, key("agreement_detail", OLD, "safety")) == 20 * DAY
    worker.restart_and_export()  # a later restart defers it no more
    _traffic_from(worker, 40 * DAY, 50.5 * DAY)
    assert len(worker.keys(OLD)) == 6
    _traffic_from(worker, 50.5 * DAY, 52.5 * DAY)
    assert worker.keys(OLD) == set() and worker.series(OLD) == set()


def _stamp(worker: Worker, at: str) -> float | None:
    breakdown = worker.aggregator.detector(at)
    assert isinstance(breakdown, AgreementBreakdown)
    return breakdown.heard


class CountingStore(JsonStore):
    """A store counting the writes of each key (what goes to the changelog)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: dict[str, int] = {}

    def put(self, key: str, value: Any, partition: int | None) -> None:
        self.writes[key] = self.writes.get(key, 0) + 1
        super().put(key, value, partition)


def test_verdicts_are_stamped_once_a_day_of_them_not_once_each() -> None:
    store = CountingStore()
    worker = Worker(store)
    worker.pair(OLD, 0.0)
    _verdicts(worker, HOUR, 10 * DAY, ("relevance", "safety"))  # 239 verdicts on each dimension
    at = key("agreement_detail", OLD, "safety")
    assert store.writes[at] == 10  # the pair's, then the first verdict of each of days 1 to 9
    assert _stamp(worker, at) == 9 * DAY


def test_an_upgrade_whose_first_observation_is_an_old_label_keeps_an_active_judge() -> None:
    """An unstamped breakdown is not stamped at a look before the start's first verdict or contact: the
    clock then stands at a label's turn, which may be old. Found by review (2026-11-26): the first version
    stamped it so, and the next look dropped a judge still judging (humans last paired it 36 days before)."""
    worker = Worker()
    worker.audit(OLD)
    _verdicts(worker, HOUR, 36 * DAY, ("relevance", "safety"))
    _without_heard(worker)  # the upgrade on day 36
    label = {"kind": "labelled", "turn_id": "t-old", "vendor_id": "acme", "judges": {}}
    worker.apply(label | {"labels": {"relevance": "pass"}, "label_ts": 36 * DAY, "ts": DAY})
    worker.contact(36 * DAY + 60.0)
    _verdicts(worker, 36 * DAY + HOUR, 37 * DAY, ("relevance", "safety"))
    assert {k.split("\x1f")[0] for k in worker.keys(OLD)} == PAIR_KINDS


def test_a_first_pair_of_an_old_turn_as_the_first_observation_after_a_restart_keeps_an_active_judge() -> None:
    """The same at any restart: the first pair ever of a judge and dimension, of a 35-day-old turn, read
    first after it (found by the same review)."""
    once, restarted = Worker(), Worker()
    for worker in (once, restarted):
        _verdicts(worker, 0.0, 40 * DAY, ("safety",))
    restarted.restart_and_export()
    segment = {"journey": "shopper", "model_version": "m1", "intent": "x"}
    pair = {"kind": "pair", "turn_id": "late", "judge_id": OLD, "judge_version": "v1", "dimension": "safety"}
    for worker in (once, restarted):
        worker.apply(
            pair
            | {"judge_label": "pass", "human_label": "fail", "inclusion_probability": None, "confidence": 0.8}
            | {"segment": segment, "ts": 5 * DAY}
        )
        worker.contact(40 * DAY + 60.0)
        _verdicts(worker, 40 * DAY + HOUR, 41 * DAY, ("safety",))
    assert restarted.keys(OLD) == once.keys(OLD) != set()
