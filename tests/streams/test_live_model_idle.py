"""The live model's detectors of model versions gone idle are dropped, and new versions take their room.

Until 2026-11-26 the live-model detectors (intent accuracy, guardrails against humans and each judge) of the
first 50 model versions held their room for good: after turnover every new model version was counted as
``other``.
"""

from __future__ import annotations

import pytest

from detectors.keyed import KeyedDetectors
from streams.emit import SEP
from streams.metrics import Metrics
from streams.views.live_model import LiveModelView
from tests.support.restartable import RestartableView, with_and_without_a_restart

DAY = 86400.0
JUDGE = "judge-a"
INTENT, HUMANS, JUDGED = "live_intent", "guardrail_human", SEP.join(["guardrail_judge", JUDGE])
NEVER = 1e12  # idle_seconds of a view that drops nothing, as until 2026-11-26


class Worker(RestartableView):
    """The live-model view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(self, idle_seconds: float = 30 * DAY) -> None:
        self.idle_seconds = idle_seconds
        super().__init__(seed=3)

    def make_view(self, metrics: Metrics) -> LiveModelView:
        return LiveModelView(metrics, idle_seconds=self.idle_seconds)

    def turn(self, ts: float, version: str) -> None:
        """A turn of ``version`` labelled by a human (intent and safety) and judged on safety."""
        self.offset += 1
        rng, n = self.rng, self.offset
        intent = rng.choice(["refund", "cancel"])
        unsafe = rng.random() < 0.2
        segment = {"journey": "shopper", "model_version": version, "intent": intent}
        flags = ["unsafe_content"] if (rng.random() < 0.8) == unsafe else []
        self.aggregator.apply(
            {
                "kind": "labelled",
                "turn_id": f"t{n}",
                "ts": ts,
                "segment": segment,
                "guardrail_flags": flags,
                "intent_confidence": rng.random(),
                "first_dimensions": ["intent", "safety"],
                "labels": {
                    "intent": intent if rng.random() < 0.9 else "cancel",
                    "safety": "fail" if unsafe else "pass",
                },
                "src": ["h", n, 0],
            }
        )
        self.aggregator.apply(
            {
                "kind": "judged",
                "judge_id": JUDGE,
                "turn_id": f"t{n}",
                "ts": ts,
                "segment": segment,
                "guardrail_flags": flags,
                "labels": {"safety": "fail" if unsafe != (rng.random() < 0.1) else "pass"},
                "src": ["j", n, 0],
            }
        )

    def keyed(self, name: str) -> KeyedDetectors:
        detector = self.aggregator.detector(name)
        assert isinstance(detector, KeyedDetectors)
        return detector


def _turnover(
    worker: Worker, versions: int = 60, restart_at: int | None = None
) -> list[dict[str, list[str]]]:
    """``main`` all along and canary versions v1 to v<versions> in turn, 3 days each (4 turns a day of each);
    the keys of each aggregate on each canary's last day."""
    keys = []
    for v in range(1, versions + 1):
        if v == restart_at:
            worker.restart()
        for hour in range(0, 72, 6):
            ts = (3 * (v - 1)) * DAY + hour * 3600.0
            worker.turn(ts, "main")
            worker.turn(ts + 60.0, f"v{v}")
        keys.append({name: worker.keyed(name).keys for name in (INTENT, HUMANS, JUDGED)})
    return keys


def test_a_new_model_version_after_turnover_gets_its_own_detectors() -> None:
    worker = Worker()
    keys = _turnover(worker)
    for v, by_aggregate in enumerate(keys, start=1):
        for name, kept in by_aggregate.items():
            assert f"v{v}" in kept, (v, name)
    report = worker.view.report(worker.aggregator)["live_model"]
    assert {row["model_version"] for row in report["intent"]} == {"*", "main"} | {
        f"v{v}" for v in range(50, 61)
    }
    newest = [row for row in report["guardrails"] if row["model_version"] == "v60"]
    assert [(row["source"], row["judge_id"], row["n"]) for row in newest] == [
        ("human", None, 12),
        ("judge", JUDGE, 12),
    ]

    forever = Worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    before = _turnover(forever)
    assert before[-1][INTENT][:3] == ["*", "main", "other"] and "v60" not in before[-1][INTENT]
    assert max(v for v in range(1, 61) if f"v{v}" in before[v - 1][INTENT]) == 48


def test_active_detectors_are_those_of_a_run_that_drops_nothing() -> None:
    worker, forever = Worker(), Worker(idle_seconds=NEVER)
    _turnover(worker)
    _turnover(forever)
    kept, never_dropped = worker.state(), forever.state()
    assert kept.keys() == never_dropped.keys()
    for name in kept:
        ours, theirs = kept[name]["detector"]["state"], never_dropped[name]["detector"]["state"]
        assert set(ours["_inner"]) - set(theirs["_inner"]) == {f"v{v}" for v in range(50, 61)}, name
        for version in ("*", "main"):
            assert ours["_inner"][version] == theirs["_inner"][version], (name, version)
            assert ours["_last_seen"][version] == theirs["_last_seen"][version], (name, version)
        assert kept[name]["applied"] == never_dropped[name]["applied"]


def test_a_restarted_worker_drops_as_the_one_before_it() -> None:
    once, restarted = Worker(), Worker()
    _turnover(once, versions=30)
    _turnover(restarted, versions=30, restart_at=20)
    assert restarted.state() == once.state()


@pytest.mark.parametrize(
    "restart_at", [40 * DAY + 13 * 3600.0, 52 * DAY + 1 * 3600.0, 61 * DAY + 19 * 3600.0]
)
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(restart_at: float) -> None:
    # two new model versions a day, each for 15 days: the room is full, and a new version takes a place when
    # a look drops a version idle for 30 days. Looks every day from a start (until 2026-11-26) looked, after a
    # restart at 13:00, at 13:00 each day: versions were dropped, and new ones had room, at other times than
    # in a run without the restart
    turns = sorted(
        ((k - 1) * DAY / 2 + half_day * DAY / 2 + 60.0 * k, f"v{k}")
        for k in range(1, 161)
        for half_day in range(30)
    )
    once, restarted = with_and_without_a_restart(Worker, turns, Worker.turn, restart_at)
    assert "other" in once.keyed(INTENT).keys
    assert restarted.state() == once.state()


def test_detectors_from_before_idle_times_were_kept_are_idle_from_the_first_look_on() -> None:
    # state from before 2026-11-26 has no event times: each version is stamped at the first look for idle
    # ones after the upgrade (written, so a restart keeps the stamp) and dropped idle_seconds later
    worker = Worker(idle_seconds=10 * DAY)
    for version in ("m-1", "m-2"):
        worker.turn(0.0, version)
    worker.without_last_seen()
    assert worker.keyed(INTENT).last_seen == {}
    worker.turn(5 * DAY, "m-1")  # the first look: m-2 stamped at day 5
    for name in (INTENT, HUMANS, JUDGED):
        assert worker.keyed(name).last_seen == {"*": 5 * DAY, "m-1": 5 * DAY, "m-2": 5 * DAY}
    worker.restart()
    worker.turn(14 * DAY, "m-1")
    assert all(worker.keyed(name).keys == ["*", "m-1", "m-2"] for name in (INTENT, HUMANS, JUDGED))
    worker.turn(15.5 * DAY, "m-1")
    assert all(worker.keyed(name).keys == ["*", "m-1"] for name in (INTENT, HUMANS, JUDGED))
