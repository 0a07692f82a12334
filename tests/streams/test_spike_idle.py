"""Spike detectors of slice values gone idle are dropped, and the values give up their guard room.

Until 2026-11-26 a source's first ``max_segment_values`` model versions held their detectors and their room
in the source's guard for good: after turnover every new model version shared the ``other`` detector.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from detectors.category_spikes import CategorySpikes
from streams.emit import SEP
from streams.metrics import Metrics
from streams.state import DictStore
from streams.taxonomy import load_taxonomy
from streams.views.spikes import SpikeView
from tests.support.restartable import JsonStore, RestartableView, with_and_without_a_restart

DAY = 86400.0
JUDGE = "judge-a"


class Worker(RestartableView):
    """The spike view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(self, idle_seconds: float, store: DictStore | None = None) -> None:
        self.idle_seconds = idle_seconds
        super().__init__(store)

    def make_view(self, metrics: Metrics) -> SpikeView:
        return SpikeView(metrics, load_taxonomy(), max_segment_values=3, idle_seconds=self.idle_seconds)

    def turn(self, ts: float, version: str, failed: bool = False) -> None:
        self.offset += 1
        self.aggregator.apply(
            {
                "kind": "judged",
                "judge_id": JUDGE,
                "turn_id": f"t{self.offset}",
                "ts": ts,
                "labels": {"safety": "fail" if failed else "pass"},
                "segment": {"journey": "shopper", "model_version": version, "intent": "refund"},
                "src": ["judge_verdicts:0", self.offset, 0],
            }
        )

    def version_slice(self, version: str) -> str:
        """The model version the view keys a turn of ``version`` under now (``other`` past the guard)."""
        segment = {"journey": "shopper", "model_version": version, "intent": "refund"}
        return self.view._slices(JUDGE, segment)[1][1]["model_version"]

    def detector(self, version: str) -> CategorySpikes | None:
        key = SEP.join(["spike", JUDGE, "journey=shopper", f"model_version={version}"])
        detector = self.aggregator.detector(key)
        assert detector is None or isinstance(detector, CategorySpikes)
        return detector

    def state(self, prefix: str = "spike") -> dict[str, Any]:
        return super().state(prefix)


def _run(worker: Worker, restart_at: float | None = None) -> None:
    """Day 0: m-1 (2,300 turns, a spike in the last 300: in alarm), m-2 and m-3 take the guard's room of 3,
    m-4 is folded into ``other``; then m-3 alone, a turn an hour for 20 days (m-1's spike closes for want of
    traffic within hours: ``tests/streams/test_spike_silence.py``); then m-5, new."""
    rng = random.Random(5)
    for i in range(2300):
        worker.turn(i, "m-1", failed=rng.random() < (0.3 if i >= 2000 else 0.01))
    for version in ("m-2", "m-3", "m-4"):
        worker.turn(2400.0, version)
    for hour in range(1, 20 * 24):
        if restart_at is not None and hour * 3600.0 == restart_at:
            worker.restart()
        worker.turn(hour * 3600.0, "m-3", failed=rng.random() < 0.01)
    worker.turn(20 * DAY, "m-5")


def test_idle_model_versions_give_their_detectors_and_guard_room_to_new_ones() -> None:
    worker = Worker(idle_seconds=10 * DAY)
    _run(worker)
    # idle: dropped; m-1 too, its spike closed for want of traffic (until 2026-11-26 it stayed in alarm, and
    # kept its detector and its room for good)
    assert all(worker.detector(version) is None for version in ("m-1", "m-2", "other"))
    assert worker.version_slice("m-5") == "m-5"  # the room given up: its own detector, not other's
    assert worker.detector("m-5") is not None
    assert worker.version_slice("m-4") == "m-4"  # m-3, m-5 and m-4
    assert worker.version_slice("m-6") == "other"  # the room is full again

    # the active detectors are as they would be without any idle ones dropped
    forever = Worker(idle_seconds=1e12)
    _run(forever)
    assert forever.version_slice("m-5") == "other"  # what happened until 2026-11-26
    kept, never_dropped = worker.state(), forever.state()
    assert set(never_dropped) - set(kept) == {
        SEP.join(["spike", JUDGE, "journey=shopper", f"model_version={v}"]) for v in ("m-1", "m-2", "other")
    }
    for key in set(kept) - {SEP.join(["spike", JUDGE, "journey=shopper", "model_version=m-5"])}:
        assert kept[key] == never_dropped[key], key


def test_a_restarted_worker_drops_and_maps_as_the_one_before_it() -> None:
    once, restarted = Worker(idle_seconds=10 * DAY), Worker(idle_seconds=10 * DAY)
    _run(once)
    _run(restarted, restart_at=12 * DAY)  # after the drop: the recovered state has no m-2 or other
    assert restarted.state() == once.state()
    assert restarted.version_slice("m-5") == "m-5" and restarted.version_slice("m-4") == "m-4"


@pytest.mark.parametrize("restart_day", [40 + 13 / 24, 52 + 1 / 24, 77 + 9 / 24])
def test_a_worker_restarted_in_the_middle_of_a_day_ends_as_one_that_was_not(restart_day: float) -> None:
    # 30 model versions, 5 days apart, 20 turns each, the guard full: looks counted from each start (until
    # 2026-11-26) dropped, and gave a new version room, hours apart from the run without a restart
    turns = sorted(
        ((k - 1) * 5 * DAY + h * DAY / 2 + 60.0 * k, f"m-{k}") for k in range(1, 31) for h in range(20)
    )
    once, restarted = with_and_without_a_restart(
        lambda: Worker(30 * DAY), turns, Worker.turn, restart_day * DAY
    )
    assert restarted.state() == once.state()


def test_detectors_from_before_idle_times_were_kept_are_idle_from_the_first_look_on() -> None:
    # state from before 2026-11-26 has no last event time: a detector is stamped at the first look for
    # idle ones after the upgrade (written, so a restart keeps the stamp) and dropped idle_seconds later
    worker = Worker(idle_seconds=10 * DAY)
    for version in ("m-1", "m-2"):
        worker.turn(0.0, version)
    worker.without_last_seen()
    worker.turn(5 * DAY, "m-1")  # the first look: m-2 stamped at day 5
    m2 = worker.detector("m-2")
    assert m2 is not None and m2.last_seen == 5 * DAY
    worker.restart()
    worker.turn(14 * DAY, "m-1")
    assert worker.detector("m-2") is not None  # idle 9 days since its stamp
    worker.turn(15.5 * DAY, "m-1")
    assert worker.detector("m-2") is None
    assert worker.detector("m-1") is not None


@pytest.mark.parametrize("restart", [False, True])
def test_no_room_is_given_up_while_the_other_detector_is_in_alarm(restart: bool) -> None:
    # m-4, past the room, feeds the "other" detector: given m-1's room while that detector is in alarm, its
    # turns would leave it, and the alarm would never resolve. The idle detectors of m-1 and m-2 are kept
    # meanwhile: a restart admits the values of the recovered detectors (until 2026-11-26 they were dropped,
    # and after a restart m-4 had the room and a detector of its own)
    worker, rng = Worker(idle_seconds=10 * DAY), random.Random(7)
    for version in ("m-1", "m-2", "m-3"):
        worker.turn(0.0, version)
    for i in range(2300):
        worker.turn(1.0 + i, "m-4", failed=rng.random() < (0.3 if i >= 2000 else 0.01))
    hour = 1
    for hour in range(1, 20 * 24):  # m-4 still spiking: other stays in alarm
        worker.turn(hour * 3600.0, "m-3")
        worker.turn(hour * 3600.0 + 1, "m-4", failed=rng.random() < 0.3)
    other = worker.detector("other")
    assert other is not None and other.in_alarm
    m1, m2 = worker.detector("m-1"), worker.detector("m-2")
    assert m1 is not None and m2 is not None and m1.last_seen == m2.last_seen == 0.0  # idle, and kept
    if restart:
        worker.restart()
    assert worker.version_slice("m-5") == "other" and worker.version_slice("m-4") == "other"

    resolved_at = None
    while resolved_at is None and hour < 60 * 24:  # m-4 back to normal, until other's spike is over
        hour += 1
        worker.turn(hour * 3600.0, "m-3")
        worker.turn(hour * 3600.0 + 1, "m-4", failed=rng.random() < 0.01)
        other = worker.detector("other")
        resolved_at = hour if other is not None and not other.in_alarm else None
    assert resolved_at is not None
    for hour in range(resolved_at + 1, resolved_at + 9):  # the next look, 8 hours on, gives the room up
        worker.turn(hour * 3600.0, "m-3")
    assert worker.detector("m-1") is None and worker.detector("m-2") is None
    assert worker.version_slice("m-4") == "m-4" and worker.version_slice("m-5") == "m-5"


def test_a_source_that_comes_back_maps_its_values_as_the_worker_that_held_it_meanwhile() -> None:
    # the source moves to another worker, which drops idle versions and gives their room to a new one, then
    # comes back: until 2026-11-26 the first worker's guard still held the room it had given then, and
    # folded the new version into other, its detector (in alarm, perhaps) no longer updated
    first = Worker(idle_seconds=10 * DAY)
    for version in ("m-1", "m-2", "m-3"):  # the guard's room of 3, full
        first.turn(0.0, version)
    first.aggregator.flush()
    second = Worker(idle_seconds=10 * DAY, store=JsonStore())
    second.store.data.update(first.store.data)  # the rebalance: the second recovers the source's state
    second.aggregator.rebalanced()
    first.store.data.clear()  # and the first drops it (streams.app: the partition's aggregates)
    first.aggregator.rebalanced()

    for hour in range(1, 20 * 24):
        second.turn(hour * 3600.0, "m-3")
    second.turn(20 * DAY, "m-4")  # m-1 and m-2 were dropped idle: room for m-4
    assert second.version_slice("m-4") == "m-4" and second.detector("m-4") is not None
    second.aggregator.flush()

    first.store.data.update(second.store.data)  # the source comes back
    first.aggregator.rebalanced()
    assert first.version_slice("m-4") == "m-4"
    first.offset = second.offset  # the input positions go on
    first.turn(20 * DAY + 60.0, "m-4")
    m4 = first.detector("m-4")
    assert m4 is not None and m4.last_seen == 20 * DAY + 60.0  # its own detector, not other's
