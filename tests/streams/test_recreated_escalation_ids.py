"""A detector dropped when idle and made again raises escalations under ids of its own; open ones keep theirs.

Until 2026-11-26 an escalation's id came from its detector's episode count alone, which a detector made again
(a journey back after 30 idle days, a retired judge re-enabled) starts at 0 again: its first alarm had the id
of the dropped detector's first, resolved long before, at revision 1. Consumers that keep the highest
revision of an id, and convowatch's own Alertmanager sink, which ignores an id it has seen resolved, dropped
it: the drift or spike was never paged (a review: ``/tmp/s24/dayreview3/drift_eid_reuse.py`` and
``spike_eid_reuse.py``). Detectors restored from state written before keep the ids they had, so that an open
escalation is not left firing under its old id after an upgrade.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from streams.policy import escalation_id
from streams.views.drift import JudgeDriftView
from streams.views.versions import VersionView
from tests.streams.test_spike_silence import DAY, HOUR, STOP, Worker, posted, traffic
from tests.support.journeys import JUDGE, JourneyWorker

SEASONAL = "black-friday"


class DriftWorker(JourneyWorker):
    """The judge drift view; :meth:`pairs` feeds it pairs and keeps the escalations."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        super().__init__(lambda metrics: JudgeDriftView(metrics, warmup=200))

    def pairs(self, ts: float, n: int, journey: str, disagree: float, step: float = 600.0) -> float:
        """``n`` pairs of ``journey`` from ``ts``, one every ``step`` seconds, the judge failing 10% of the
        turns and disagreeing with the human with probability ``disagree``; the event time after them."""
        for _ in range(n):
            self.offset += 1
            judge_label = "fail" if self.rng.random() < 0.1 else "pass"
            flipped = "pass" if judge_label == "fail" else "fail"
            obs = {
                "kind": "pair",
                "turn_id": f"t{self.offset}",
                "ts": ts,
                "segment": {"journey": journey, "model_version": "v1", "intent": "refund"},
                "judge_id": JUDGE,
                "dimension": "safety",
                "judge_label": judge_label,
                "human_label": judge_label if self.rng.random() >= disagree else flipped,
                "inclusion_probability": None,
                "confidence": None,
                "src": ["pair:0", self.offset, 0],
            }
            self.out += [e.value for e in self.aggregator.apply(obs) if e.topic == "escalations"]
            ts += step
        return ts

    def seasonal(self) -> list[tuple[str, int, str]]:
        """(status, revision, id) of the seasonal journey's drift escalations."""
        return [
            (e["status"], e["revision"], e["escalation_id"])
            for e in self.out
            if e["segment"]["journey"] == SEASONAL
        ]

    def open_ids(self) -> set[str]:
        keys = [k for k, _ in self.aggregator.records("drift")]
        return {
            v["escalation_id"]
            for _, v in self.view.open_escalations(self.aggregator, keys, lambda _: True, 0.0)
        }


def test_a_journeys_drift_after_its_detector_was_dropped_is_a_new_escalation_alertmanager_is_sent() -> None:
    w = DriftWorker()
    ts = w.pairs(0.0, 1500, SEASONAL, 0.05)  # the season: a drift, over
    ts = w.pairs(ts, 300, SEASONAL, 0.40)
    ts = w.pairs(ts, 1500, SEASONAL, 0.05)
    ts = w.pairs(
        ts, 960, "support", 0.05, step=3600.0
    )  # 40 days of another journey: the seasonal one dropped
    assert w.journeys("drift", 2) == {"*", "support"}
    ts = w.pairs(ts, 1500, SEASONAL, 0.05)  # the next season: its detector made again, and a drift
    w.pairs(ts, 300, SEASONAL, 0.40)
    (_, _, first), resolved, (status, revision, again) = w.seasonal()
    assert resolved == ("resolved", 2, first)
    assert (status, revision) == ("firing", 1)
    assert again != first
    alerts = posted([e for e in w.out if e["segment"]["journey"] == SEASONAL])
    assert {k: [a["annotations"]["revision"] for a in v] for k, v in alerts.items()} == {
        first: ["1", "2"],
        again: ["1"],
    }


def test_a_spike_of_a_re_enabled_judge_after_its_detectors_were_dropped_is_a_new_escalation() -> None:
    w, rng = Worker(), random.Random(1)
    events = list(traffic(rng, STOP, gone="judge"))  # judge-a's spike on m-1 open when judge-b replaces it
    for ts, what in events:
        w.feed(ts, what)
    ts = events[-1][0]
    while ts < STOP + 32 * DAY:  # closed without traffic; 30 days on, judge-a's detectors are dropped
        ts += HOUR
        w.turn(ts, "m-2", False, "judge-b")
    assert not [k for k in w.state() if "judge-a" in k]
    for i in range(2600):  # judge-a back: m-1 at 2%, then 30% from its 2,300th turn
        ts += 30.0
        w.turn(ts, "m-1", rng.random() < (0.3 if i >= 2300 else 0.02), "judge-a")
    (first, closed, again) = [(e["status"], e["revision"], e["escalation_id"]) for e in w.spikes("m-1")]
    assert first[:2] == ("firing", 1) and closed == ("resolved", 2, first[2])
    assert again[:2] == ("firing", 1) and again[2] != first[2]
    alerts = posted(w.spikes("m-1"))
    assert [a["annotations"]["revision"] for a in alerts[again[2]]] == ["1"]


def test_a_versions_regression_after_its_comparison_was_dropped_is_a_new_escalation() -> None:
    day = 86400.0
    w = JourneyWorker(lambda metrics: VersionView(metrics, horizon_seconds=6 * 3600.0, min_samples=20))

    def regress(start: float) -> tuple[float, set[str]]:
        """v2 serving the seasonal journey next to v1, failing half its turns, until found worse."""
        ts, n = start, 0
        while not (opened := open_regressions(w)):
            n += 1
            ts += 10.0
            w.turn(ts, SEASONAL, version="v1" if n % 2 else "v2", fail=0.0 if n % 2 else 0.5)
        return ts, opened

    ts, first = regress(0.0)
    while open_regressions(w):  # v2 rolled back: the pair ends, the regression resolves
        ts += 3600.0
        w.turn(ts, SEASONAL, version="v1")
    for k in range(1, 40):  # another journey for 40 days: the seasonal one's comparison dropped
        w.turn(ts + k * day, "support")
    assert w.journeys("versions", 1) == {"support"}
    _, again = regress(ts + 40 * day)
    assert len(first) == len(again) == 1 and again != first


def open_regressions(w: JourneyWorker) -> set[str]:
    keys = [k for k, _ in w.aggregator.records(w.view.prefix)]
    return {v["escalation_id"] for _, v in w.view.open_escalations(w.aggregator, keys, lambda _: True, 0.0)}


@pytest.mark.parametrize("last_seen", [False, True], ids=["main", "before-idle-drops"])
def test_an_open_drift_restored_from_state_written_before_keeps_its_id(last_seen: bool) -> None:
    # the id main's HEAD (62e28ed) gave this drift: no creation time (dayreview3/drift_eid_reuse.py's output)
    before = escalation_id("judge_drift", f"{JUDGE}|safety|{SEASONAL}|1")
    assert before == "judge_drift-a8c3a48b4a1df2d597e3"
    w = DriftWorker()
    ts = w.pairs(0.0, 1500, SEASONAL, 0.05)
    ts = w.pairs(ts, 300, SEASONAL, 0.40)
    assert [status for status, _, _ in w.seasonal()] == ["firing"]
    w.without_created(last_seen)  # the state as the code before wrote it
    assert before in w.open_ids()
    w.out = []
    w.pairs(ts, 1500, SEASONAL, 0.05)
    assert w.seasonal() == [("resolved", 2, before)]


@pytest.mark.parametrize("last_seen", [False, True], ids=["main", "before-idle-drops"])
def test_an_open_spike_restored_from_state_written_before_keeps_its_id(last_seen: bool) -> None:
    # the id main's HEAD (62e28ed) gave this spike (dayreview3/spike_eid_reuse.py's output)
    before = "defect_spike-8dd7e8e9ffc3470d13e4"
    w = Worker()
    events = list(traffic(random.Random(1), STOP, gone="judge"))
    restored = False
    for ts, what in events:
        w.feed(ts, what)
        if not restored and w.spikes("m-1"):  # judge-a's spike on m-1 has fired, and turns of m-1 follow
            assert ts < STOP - HOUR
            w.without_created(last_seen)
            restored = True
    ts = events[-1][0]
    while ts < STOP + 2 * DAY:
        ts += HOUR
        w.turn(ts, "m-2", False, "judge-b")
    assert [(e["status"], e["escalation_id"]) for e in w.spikes("m-1")][1:] == [("resolved", before)]
