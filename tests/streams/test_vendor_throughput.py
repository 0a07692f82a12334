"""The labels-per-hour SLA through the vendors view: silence is judged, at 0 labels over the window.

Each run is two vendors' labels through an :class:`Aggregator` with the vendors view, under the shipped
window (24 h in 1 h buckets, judged every 300 s of label time) and ``min_labels_per_hour: 5``: vendor-x,
the vendor under test, and vendor-y, labelling every 10 minutes with no throughput target, which moves label
time on while vendor-x is silent. Until 2026-11-26 a vendor none of whose labels the window held lost its
slot, so its throughput breach closed for want of labels (``closed_without_labels``) and its series went.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from statistics import NormalDist
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from detectors.label_tally import Scorecard
from detectors.vendor_scorecard import VendorScorecard
from schemas.outputs import Escalation
from streams.aggregate import Aggregator
from streams.metrics import Metrics
from streams.vendor_sla import SLAS, Targets, VendorSla, Verdict, silence_judged
from streams.views.vendors import VendorsView
from tests.support.restartable import JsonStore

START = 1_793_577_600.0  # 2026-11-02T00:00:00Z
HOUR, DAY = 3600.0, 86400.0
SLA = VendorSla.model_validate(
    {
        "defaults": {"min_labels_per_hour": 5, "max_turnaround_seconds": 1800, "min_samples": 10},
        "vendors": {"vendor-y": {"min_labels_per_hour": None}},
    }
)


class Run:
    """The vendors view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(self, sla: VendorSla = SLA) -> None:
        self.store = JsonStore()
        self.sla = sla
        self.offset = 0
        self.escalations: list[dict[str, Any]] = []
        self._start()

    def _start(self) -> None:
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        self.aggregator = Aggregator(metrics, self.store, views=[VendorsView(metrics, self.sla)])

    def restart(self, sla: VendorSla | None = None) -> None:
        """Stop and start again from the stored state (with ``sla`` as the SLA file, if given)."""
        self.aggregator.flush()
        self.sla = sla or self.sla
        self._start()
        self.aggregator.rebalanced()

    def label(self, label_ts: float, vendor: str, turnaround: float) -> None:
        self.offset += 1
        observation = {
            "kind": "labelled",
            "src": ["human_labels:0", self.offset, 0],
            "turn_id": f"t{self.offset}",
            "ts": label_ts - turnaround,
            "label_ts": label_ts,
            "vendor_id": vendor,
            "annotator_id": f"{vendor}-1",
            "labels": {"relevance": "pass"},
            "judges": {},
        }
        emitted = self.aggregator.apply(observation)
        self.escalations += [e.value for e in emitted if e.topic == "escalations"]

    def feed(self, vendor_x: Iterable[float], since: float, until: float, turnaround: float = 60.0) -> None:
        """From ``since`` to ``until``: vendor-x's labels at the times ``vendor_x`` (``turnaround`` after
        their turns), and vendor-y's every 10 minutes."""
        mine = [ts for ts in vendor_x if since <= ts < until]
        ticks = [ts + 1 for ts in _every(START, until, 600.0) if ts + 1 >= since]
        events = sorted([(ts, "vendor-x") for ts in mine] + [(ts, "vendor-y") for ts in ticks])
        for ts, vendor in events:
            self.label(ts, vendor, turnaround if vendor == "vendor-x" else 60.0)

    def throughput(self) -> list[dict[str, Any]]:
        """vendor-x's labels_per_hour escalation records, checked against the schema."""
        mine = [
            e
            for e in self.escalations
            if e["evidence"]["vendor_id"] == "vendor-x" and e["evidence"]["sla"] == "labels_per_hour"
        ]
        for value in mine:
            Escalation.model_validate(value)
        return mine

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"vendor_id": "vendor-x", **labels})

    def row(self) -> dict[str, Any] | None:
        rows = VendorsView(Metrics(CollectorRegistry()), self.sla).report(self.aggregator)["vendors"][
            "vendors"
        ]
        return next((row for row in rows if row["vendor_id"] == "vendor-x"), None)


def _every(start: float, end: float, seconds: float) -> list[float]:
    return [start + seconds * i for i in range(int((end - start) // seconds))]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_a_vendor_that_goes_silent_stays_breached_for_the_days_of_silence_and_keeps_its_series():
    """vendor-x labels 10 turns an hour for 2 days, 40 minutes after each turn (its turnaround breached),
    then nothing for 3 days. Its throughput breach opens within the day it stops and stays open, one
    episode, across a restart; its turnaround breach closes for want of labels; its series stay."""
    run = Run()
    stop, end = START + 2 * DAY, START + 5 * DAY
    labels = _every(START + 30.0, stop, 360.0)
    run.feed(labels, START, stop + 1.5 * DAY, turnaround=2400.0)
    run.restart()  # mid-silence: the scorecard keeps vendor-x's slot from its stored state
    run.feed(labels, stop + 1.5 * DAY, end)

    throughput = run.throughput()
    assert {e["evidence"]["episode"] for e in throughput} == {1}
    assert [e["status"] for e in throughput] == ["firing"] * len(throughput)  # never resolved
    assert stop < _ts(throughput[0]["event_time"]) < stop + DAY
    assert len(throughput) > 2 * 24  # re-published hourly through the silence
    last = throughput[-1]
    assert _ts(last["event_time"]) > end - 2 * HOUR
    assert last["evidence"]["value"] == 0.0 and last["evidence"]["samples"] == 0
    # no label over the window: the Poisson bound is z^2 over the hours covered (2.7 / 23-24 h)
    assert 2.7 / 24 < last["evidence"]["upper_bound"] < 2.8 / 23
    assert last["evidence"]["closed_without_labels"] is False
    assert "delivers 0.0 labels per hour" in last["summary"]

    turnaround = [e for e in run.escalations if e["evidence"]["sla"] == "turnaround"]
    assert [e["status"] for e in turnaround][:: len(turnaround) - 1] == ["firing", "resolved"]
    assert turnaround[-1]["evidence"]["closed_without_evidence"] is True  # fewer than 10 labels left
    assert stop < _ts(turnaround[-1]["event_time"]) <= stop + DAY + 300

    assert run.gauge("convowatch_vendor_labels_per_hour") == 0.0
    assert run.gauge("convowatch_vendor_sla_breached", sla="labels_per_hour") == 1.0
    assert run.gauge("convowatch_vendor_sla_breached", sla="turnaround") == 0.0
    row = run.row()
    assert row is not None and row["labels"] == 0
    slas = {s["sla"]: s for s in row["slas"]}
    assert slas["labels_per_hour"]["breached"] is True and slas["labels_per_hour"]["escalated"] is True
    assert slas["turnaround"]["judged"] is False and slas["turnaround"]["escalated"] is False


def test_a_vendor_delivering_in_bursts_below_its_target_is_breached_in_one_episode():
    """40 labels in 40 minutes every 48 h (0.83 an hour, against 5) for 8 days. It was breached about an
    hour in every 48, a new episode each time: its burst left the window, it lost its slot, and came back a
    new vendor whose burst read as its rate."""
    run = Run()
    bursts = [START + 10.5 * HOUR + 2 * DAY * k + 60.0 * i for k in range(4) for i in range(40)]
    run.feed(bursts, START, START + 8 * DAY)
    throughput = run.throughput()
    assert {e["evidence"]["episode"] for e in throughput} == {1}
    assert [e["status"] for e in throughput] == ["firing"] * len(throughput)
    first = _ts(throughput[0]["event_time"])
    assert START + 10.5 * HOUR < first < START + 1 * DAY  # judged over its time since the first burst
    in_burst = [e for e in throughput if e["evidence"]["samples"] == 40]  # a whole burst in the window
    assert in_burst and all(e["evidence"]["upper_bound"] < 5 for e in in_burst)
    row = run.row()
    assert row is not None
    assert {s["sla"]: s["episodes"] for s in row["slas"]}["labels_per_hour"] == 1


def test_a_silent_vendor_back_on_target_closes_its_breach():
    """10 labels an hour for a day, silent for 2 days, then 10 an hour again: one episode, closed once the
    window holds 5 an hour of its labels (about 12 hours back), saying it is met again."""
    run = Run()
    back = START + 3 * DAY
    labels = _every(START + 30.0, START + DAY, 360.0) + _every(back, START + 5 * DAY, 360.0)
    run.feed(labels, START, START + 5 * DAY)
    throughput = run.throughput()
    assert {e["evidence"]["episode"] for e in throughput} == {1}
    assert [e["status"] for e in throughput] == ["firing"] * (len(throughput) - 1) + ["resolved"]
    closed = throughput[-1]
    assert back + 11 * HOUR < _ts(closed["event_time"]) < back + 13 * HOUR
    assert closed["evidence"]["value"] >= 5 and closed["evidence"]["closed_without_labels"] is False
    assert closed["summary"].startswith("Vendor SLA met again: vendor-x")
    assert run.gauge("convowatch_vendor_sla_breached", sla="labels_per_hour") == 0.0
    assert run.gauge("convowatch_vendor_labels_per_hour") == pytest.approx(10.0, rel=0.05)


def test_a_new_vendor_is_judged_over_its_time_since_its_first_label_and_one_without_a_target_leaves():
    """A new vendor's throughput is judged over the time since its first label, once that is an hour (a
    whole window before): 2 labels are beyond noise below 5 an hour once 1.2 hours have passed. vendor-y,
    without a throughput target, gives up its slot once the window holds none of its labels."""
    run = Run()
    first = START + 600.0
    run.feed([first, first + 240.0], START, START + 3 * HOUR)
    throughput = run.throughput()
    assert throughput and first + 1.2 * HOUR < _ts(throughput[0]["event_time"]) < first + 1.5 * HOUR
    assert throughput[0]["evidence"]["samples"] == 2 and throughput[0]["status"] == "firing"
    for i in range(300):  # vendor-y stops; vendor-x labels at 10 an hour for 30 hours
        run.label(START + 3 * HOUR + 360.0 * (i + 1), "vendor-x", 60.0)
    card = run.aggregator.detector("vendor_scorecard")
    assert isinstance(card, VendorScorecard) and card.vendors == ["vendor-x"]
    assert run.throughput()[-1]["status"] == "resolved"


def test_a_vendor_that_has_left_has_its_breach_resolved_once_its_target_is_removed_and_then_leaves():
    """vendor-x labels 10 an hour for a day and stops: its throughput breach opens. As README says for a
    vendor that has left, its min_labels_per_hour is set to null and the worker restarted: the next
    evaluation resolves the breach (closed_without_target), and the vendor gives up its slot, its series and
    its report row, but for the closed breach's series, at 0. The breach stayed open for good, and the vendor
    judged and exported with it."""
    run = Run()
    stop = START + DAY
    run.feed(_every(START + 30.0, stop, 360.0), START, stop + DAY)
    assert run.throughput()[-1]["status"] == "firing"
    departed = {**SLA.vendors, "vendor-x": Targets(min_labels_per_hour=None)}
    run.restart(SLA.model_copy(update={"vendors": departed}))
    before = len(run.throughput())
    run.feed([], stop + DAY, stop + 2 * DAY)

    (closed,) = run.throughput()[before:]
    assert closed["status"] == "resolved" and closed["evidence"]["episode"] == 1
    assert stop + DAY < _ts(closed["event_time"]) < stop + DAY + HOUR  # at the first evaluation
    evidence = closed["evidence"]
    assert evidence["closed_without_target"] is True and evidence["target"] is None
    assert evidence["closed_without_labels"] is evidence["closed_without_evidence"] is False
    assert closed["summary"] == "Vendor SLA breach closed: vendor-x has no labels_per_hour target any more"
    status, card = run.aggregator.detector("vendor_sla"), run.aggregator.detector("vendor_scorecard")
    assert status.breached == [] and isinstance(card, VendorScorecard) and card.vendors == ["vendor-y"]
    assert run.row() is None
    assert run.gauge("convowatch_vendor_labels_per_hour") is None
    assert run.gauge("convowatch_vendor_sla_breached", sla="turnaround") is None
    # but the breach closed for want of a target reads 0, which ends the backstop alert (not exported, it
    # stood at 1 for the 6 hours ConvowatchVendorSlaBreached holds a series no worker exports)
    assert run.gauge("convowatch_vendor_sla_breached", sla="labels_per_hour") == 0.0
    run.restart()
    run.feed([], stop + 2 * DAY, stop + 2 * DAY + HOUR)
    assert run.gauge("convowatch_vendor_sla_breached", sla="labels_per_hour") == 0.0  # from the status
    # the status keeps the closed SLA (forgotten 30 days of label time on) so that its series stays at 0
    assert run.aggregator.detector("vendor_sla").status("vendor-x|labels_per_hour") is not None


def test_a_vendor_judged_no_more_is_forgotten_after_a_month_and_a_silent_breach_is_kept():
    """vendor-x labels 10 an hour for a day and stops; vendor-z, without a throughput target, labels as
    much 40 minutes after each turn (its turnaround breached) and stops too. 40 days on (a restart
    between), vendor-x's throughput breach is still open, one episode; vendor-z's closed for want of labels
    and, judged no more for 30 days, the status has forgotten it (until 2026-11-26 it held every vendor and
    SLA ever judged). Back for a day, vendor-z breaches again: episode 1, revision 1, under an id of its
    own (the same id, revision 1, would be refused as older than the first episode's last revision)."""
    idle = {"min_labels_per_hour": None}
    sla = VendorSla.model_validate(  # judged hourly over 6 hours: 40 days of label time go quickly
        {
            "window_seconds": 6 * 3600,
            "evaluate_every_seconds": 3600,
            "defaults": {"min_labels_per_hour": 5, "max_turnaround_seconds": 1800, "min_samples": 10},
            "vendors": {"vendor-y": idle, "vendor-z": idle},
        }
    )
    run = Run(sla)
    stop, back = START + DAY, START + 40 * DAY

    def day_of_z(since: float) -> None:  # vendor-z's labels, vendor-x's if in its day, vendor-y's ticks
        z = [(ts, "vendor-z", 2400.0) for ts in _every(since + 50.0, since + DAY, 360.0)]
        x = [(ts, "vendor-x", 60.0) for ts in _every(since + 30.0, min(since + DAY, stop), 360.0)]
        y = [(ts + 1.0, "vendor-y", 60.0) for ts in _every(since, since + DAY, 600.0)]
        for ts, vendor, turnaround in sorted(x + y + z):
            run.label(ts, vendor, turnaround)

    day_of_z(START)
    run.feed([], stop, START + 20 * DAY)
    run.restart()
    run.feed([], START + 20 * DAY, back)
    status = run.aggregator.detector("vendor_sla")
    assert status.breached == ["vendor-x|labels_per_hour"]
    assert status.status("vendor-x|labels_per_hour")["episode"] == 1
    assert status.status("vendor-y|turnaround") is not None  # judged all along
    assert [status.status(f"vendor-z|{name}") for name in SLAS] == [None] * len(SLAS)

    first = [e for e in run.escalations if e["evidence"]["vendor_id"] == "vendor-z"]
    assert [e["status"] for e in first][:: len(first) - 1] == ["firing", "resolved"]
    assert first[-1]["evidence"]["closed_without_evidence"] is True
    before = len(run.escalations)
    day_of_z(back)
    again = [e for e in run.escalations[before:] if e["evidence"]["vendor_id"] == "vendor-z"]
    assert again and (again[0]["status"], again[0]["revision"], again[0]["evidence"]["episode"]) == (
        "firing",
        1,
        1,
    )
    assert again[0]["escalation_id"] != first[0]["escalation_id"]
    assert "vendor-z|turnaround" in run.aggregator.detector("vendor_sla").breached


def test_a_breach_closed_for_want_of_a_target_exports_0_at_once_and_after_a_restart():
    """The backstop ConvowatchVendorSlaBreached holds a series no worker exports at its last value for 6 h:
    the breach's series must read 0 from the evaluation that closes it, not vanish at 1 (until 2026-11-26
    the SLA without a target was not exported by the restarted worker, and the backstop fired on). vendor-x
    labels once an hour (target 5): breached. Its target is removed and the worker restarted; the vendor
    still labels, so it stays judged, its series at 0, also after a second restart (from the recovered
    status: the new process has seen no breach of its own)."""
    run = Run()
    run.feed(_every(START + 30.0, START + 2 * DAY, HOUR), START, START + DAY)
    assert run.throughput()[-1]["status"] == "firing"
    assert run.gauge("convowatch_vendor_sla_breached", sla="labels_per_hour") == 1.0
    departed = {**SLA.vendors, "vendor-x": Targets(min_labels_per_hour=None)}
    run.restart(SLA.model_copy(update={"vendors": departed}))
    before = len(run.throughput())
    ticks = iter(_every(START + DAY + 1.0, START + 2 * DAY, 600.0))
    while len(run.throughput()) == before:  # vendor-y's labels move label time on to the next evaluation
        run.label(next(ticks), "vendor-y", 60.0)
    assert run.throughput()[-1]["evidence"]["closed_without_target"] is True
    assert run.gauge("convowatch_vendor_sla_breached", sla="labels_per_hour") == 0.0

    run.restart()
    run.feed(_every(START + 30.0, START + 3 * DAY, HOUR), START + DAY + HOUR, START + DAY + 3 * HOUR)
    assert run.aggregator.detector("vendor_sla").evaluated_at > START + DAY + 2 * HOUR  # judged since
    assert run.gauge("convowatch_vendor_sla_breached", sla="labels_per_hour") == 0.0
    assert run.gauge("convowatch_vendor_sla_breached", sla="turnaround") == 0.0  # its other SLAs as before


def _card(labels: int, covered: float, full: bool) -> Scorecard:
    return Scorecard(labels, covered, full, (60.0,), (labels, 0), (0, 0), (0, 0), (0, 0))


def _throughput(sla: VendorSla, card: Scorecard, vendor: str = "v") -> Verdict:
    return next(v for v in sla.judge(vendor, card) if v.sla == "labels_per_hour")


def test_labels_per_hour_is_judged_after_an_hour_of_a_new_vendor_and_no_label_is_evidence():
    sla = VendorSla.model_validate({"defaults": {"min_labels_per_hour": 20}})
    # one label in its first hour: below 20 an hour beyond noise by the bound, but not judged yet
    assert _throughput(sla, _card(1, HOUR - 1, False)).breached is None
    verdict = _throughput(sla, _card(1, HOUR, False))
    assert (verdict.breached, verdict.met, verdict.value) == (True, False, 1.0)
    assert _throughput(sla, _card(1, 600.0, True)).breached is False  # judged over a whole (short) window
    # no label over a full window: 0 an hour, at most z^2 / 24 (95%: 2.71 labels a day)
    for target, breached in ((5, True), (0.1, False)):
        low = VendorSla.model_validate({"defaults": {"min_labels_per_hour": target}})
        verdict = _throughput(low, _card(0, DAY, True))
        assert (verdict.value, verdict.breached, verdict.met) == (0.0, breached, False)
        assert verdict.detail["upper_bound"] == pytest.approx(NormalDist().inv_cdf(0.95) ** 2 / 24)
    assert _throughput(sla, _card(0, 0.0, False)).breached is None  # never labelled: nothing to judge


def test_the_vendors_whose_silence_is_judged_are_those_with_a_throughput_target_and_labels_or_a_breach():
    sla = VendorSla.model_validate(
        {"defaults": {"min_labels_per_hour": 5}, "vendors": {"untargeted": {"min_labels_per_hour": None}}}
    )
    verdicts = {
        "labelling": sla.judge("labelling", _card(3, DAY, True)),
        "silent-breached": sla.judge("silent-breached", _card(0, DAY, True)),
        "silent-judged": sla.judge("silent-judged", _card(0, DAY, True)),
        "untargeted": sla.judge("untargeted", _card(3, DAY, True)),
    }
    breached = ["silent-breached|labels_per_hour", "silent-judged|turnaround", "untargeted|labels_per_hour"]
    assert silence_judged(verdicts, breached) == {"labelling", "silent-breached"}
