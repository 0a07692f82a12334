"""Agreement per segment value: the figures of model and judge versions gone idle are dropped, and new ones
take their room.

Until 2026-11-26 an ``agreement_detail`` aggregate's first 49 values of each segment held their room for
good: after turnover every new model version (judge version) was counted as ``other``.
"""

from __future__ import annotations

import pytest

from detectors.agreement_breakdown import AgreementBreakdown
from streams.aggregate import key
from streams.metrics import Metrics
from streams.views.agreement import AgreementView
from tests.support.restartable import RestartableView, with_and_without_a_restart

DAY = 86400.0
JUDGE, DIMENSION = "judge-a", "safety"
DETAIL = key("agreement_detail", JUDGE, DIMENSION)
NEVER = 1e12  # idle_seconds of a view that drops nothing, as until 2026-11-26


class Worker(RestartableView):
    """The agreement view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(self, idle_seconds: float = 30 * DAY) -> None:
        self.idle_seconds = idle_seconds
        super().__init__(seed=11)

    def make_view(self, metrics: Metrics) -> AgreementView:
        return AgreementView(metrics, refresh_every=1, idle_seconds=self.idle_seconds)

    def pair(self, ts: float, version: str, judge_version: str) -> None:
        self.offset += 1
        human = "fail" if self.rng.random() < 0.2 else "pass"
        judge = human if self.rng.random() < 0.85 else ("pass" if human == "fail" else "fail")
        self.aggregator.apply(
            {
                "kind": "pair",
                "turn_id": f"t{self.offset}",
                "judge_id": JUDGE,
                "judge_version": judge_version,
                "dimension": DIMENSION,
                "judge_label": judge,
                "human_label": human,
                "inclusion_probability": None,
                "confidence": None,
                "segment": {"journey": "shopper", "model_version": version, "intent": "refund"},
                "ts": ts,
                "src": ["p", self.offset, 0],
            }
        )

    def breakdown(self) -> AgreementBreakdown:
        detector = self.aggregator.detector(DETAIL)
        assert isinstance(detector, AgreementBreakdown)
        return detector


def _turnover(worker: Worker, versions: int = 60, restart_at: int | None = None) -> list[set[str]]:
    """``main`` all along and canary versions v1 to v<versions> in turn, 3 days each (4 pairs a day of each),
    the judge's version changing with them (j1 to j<versions>); the model versions kept on each canary's
    last day."""
    kept = []
    for v in range(1, versions + 1):
        if v == restart_at:
            worker.restart()
        for hour in range(0, 72, 6):
            ts = (3 * (v - 1)) * DAY + hour * 3600.0
            worker.pair(ts, "main", f"j{v}")
            worker.pair(ts + 60.0, f"v{v}", f"j{v}")
        kept.append(set(worker.breakdown().segment("model_version")))
    return kept


def test_a_new_model_version_after_turnover_gets_its_own_figures() -> None:
    worker = Worker()
    kept = _turnover(worker)
    assert all(f"v{v}" in kept[v - 1] for v in range(1, 61))
    breakdown = worker.breakdown()
    assert set(breakdown.segment("model_version")) == {"main"} | {f"v{v}" for v in range(50, 61)}
    assert set(breakdown.segment("judge_version")) == {f"j{v}" for v in range(50, 61)}
    assert breakdown.segment("model_version")["v60"].n == 12
    rows = worker.view.segment_rows(worker.aggregator)
    assert {row["segment_value"] for row in rows if row["segment"] == "model_version"} >= {"main", "v60"}

    forever = Worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    before = _turnover(forever)
    assert "v60" not in before[-1] and "other" in before[-1]
    assert max(v for v in range(1, 61) if f"v{v}" in before[v - 1]) == 48
    assert "j60" not in forever.breakdown().segment("judge_version")


def test_figures_kept_are_those_of_a_run_that_drops_nothing() -> None:
    worker, forever = Worker(), Worker(idle_seconds=NEVER)
    _turnover(worker)
    _turnover(forever)
    kept, never_dropped = worker.state(), forever.state()
    assert kept.keys() == never_dropped.keys()
    for name in kept:
        if name != DETAIL:
            assert kept[name] == never_dropped[name], name
    ours, theirs = kept[DETAIL]["detector"]["state"], never_dropped[DETAIL]["detector"]["state"]
    for field in ("_overall", "_windows"):
        assert ours[field] == theirs[field]
    for segment in ("journey", "intent", "channel", "modality"):
        assert ours["_segments"][segment] == theirs["_segments"][segment]
        assert ours["_last_seen"][segment] == theirs["_last_seen"][segment]
    assert ours["_segments"]["model_version"]["main"] == theirs["_segments"]["model_version"]["main"]


def test_a_restarted_worker_drops_as_the_one_before_it() -> None:
    once, restarted = Worker(), Worker()
    _turnover(once, versions=30)
    _turnover(restarted, versions=30, restart_at=20)
    assert restarted.state() == once.state()


@pytest.mark.parametrize(
    "restart_at", [40 * DAY + 13 * 3600.0, 52 * DAY + 1 * 3600.0, 61 * DAY + 19 * 3600.0]
)
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(restart_at: float) -> None:
    # two new model versions a day, each for 15 days: 49 values' room is full, and a new version takes one
    # when a look drops a version idle for 30 days. Looks every day from a start (until 2026-11-26) looked,
    # after a restart at 13:00, at 13:00 each day: versions were dropped, and new ones had room, at other
    # times than in a run without the restart
    pairs = sorted(
        (start + half_day * DAY / 2 + 60.0 * k, f"v{k}")
        for k in range(1, 161)
        for start in [(k - 1) * DAY / 2]
        for half_day in range(30)
    )
    once, restarted = with_and_without_a_restart(
        Worker, pairs, lambda w, ts, version: w.pair(ts, version, "j1"), restart_at
    )
    assert "other" in once.breakdown().segment("model_version")
    assert restarted.state() == once.state()


def test_figures_from_before_idle_times_were_kept_are_idle_from_the_first_look_on() -> None:
    worker = Worker(idle_seconds=10 * DAY)
    for version in ("m-1", "m-2"):
        worker.pair(0.0, version, "j1")
    worker.without_last_seen([DETAIL])  # as written before 2026-11-26
    worker.pair(5 * DAY, "m-1", "j1")  # the first look: m-2 stamped at day 5, and written
    worker.restart()
    assert worker.breakdown().to_dict()["state"]["_last_seen"]["model_version"] == {
        "m-1": 5 * DAY,
        "m-2": 5 * DAY,
    }
    worker.pair(14 * DAY, "m-1", "j1")
    assert set(worker.breakdown().segment("model_version")) == {"m-1", "m-2"}
    worker.pair(15.5 * DAY, "m-1", "j1")
    assert set(worker.breakdown().segment("model_version")) == {"m-1"}
