"""Gold accuracy drops the vendors and annotators gone idle, and new ones take their room.

Until 2026-11-26 the first 100 annotators (and 50 vendors) ever seen held their rows for good: after turnover
every new annotator's gold accuracy was pooled into ``<vendor>/other``, and a restart admitted the recovered
ones again.
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.metrics import Metrics
from streams.views.gold import GoldView
from tests.support.restartable import RestartableView, with_and_without_a_restart

DAY = 86400.0
DIMENSIONS = ("relevance", "safety")
GOLDEN = {f"gold-{i}": {d: "pass" for d in DIMENSIONS} for i in range(10)}
NEVER = 1e12  # idle_seconds of a view that drops nothing, as until 2026-11-26


class Worker(RestartableView):
    """The gold view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(self, idle_seconds: float | None = None, **caps: int) -> None:
        # None: the view's default (also on code from before idle annotators were dropped)
        self.settings: dict[str, Any] = dict(caps)
        if idle_seconds is not None:
            self.settings["idle_seconds"] = idle_seconds
        super().__init__(seed=7)

    def make_view(self, metrics: Metrics) -> GoldView:
        return GoldView(metrics, GOLDEN, **self.settings)

    def label(self, label_ts: float, rater: str) -> None:
        """A gold label at ``label_ts`` by ``rater`` (``vendor/annotator``), right or wrong at random."""
        vendor, annotator = rater.split("/")
        self.offset += 1
        answer = "pass" if self.rng.random() < 0.8 else "fail"
        self.aggregator.apply(
            {
                "kind": "gold_label",
                "turn_id": f"gold-{self.offset % len(GOLDEN)}",
                "ts": label_ts - 3600.0,
                "label_ts": label_ts,
                "annotator_id": annotator,
                "vendor_id": vendor,
                "labels": {d: answer for d in DIMENSIONS},
                "src": ["labels:0", self.offset, 0],
            }
        )

    def rows(self, section: str = "annotators") -> dict[str, int]:
        """``vendor/annotator`` (or ``vendor``) of each row of report.json ``gold.<section>``, with its n."""
        names = ("vendor_id", "annotator_id") if section == "annotators" else ("vendor_id",)
        return {
            "/".join(row[n] for n in names): row["n"]
            for row in self.view.report(self.aggregator)["gold"][section]
            if row["dimension"] == "*"
        }


def _one_a_day(days: int) -> list[tuple[float, str]]:
    """A new annotator of vendor-a each day, ann-000 to ann-<days - 1>: 3 gold labels at 09, 10 and 11h."""
    return [(d * DAY + h * 3600.0, f"vendor-a/ann-{d:03d}") for d in range(days) for h in (9, 10, 11)]


def test_todays_annotator_has_a_row_of_its_own_after_150_days_of_turnover() -> None:
    # the long-haul review's case, with a restart in the middle of day 140
    once, restarted = with_and_without_a_restart(
        Worker, _one_a_day(150), Worker.label, 140 * DAY + 9.5 * 3600
    )
    for worker in (once, restarted):
        rows = worker.rows()
        assert rows["vendor-a/ann-149"] == 6  # 3 labels of 2 dimensions
        # the day's look (from 00:00 of day 149) keeps those with a label in the 30 days before it
        assert set(rows) == {f"vendor-a/ann-{d:03d}" for d in range(119, 150)}
        assert worker.rows("vendors") == {"vendor-a": 6 * 150}  # the vendor labels on
    assert restarted.state() == once.state()

    forever = Worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    for ts, rater in _one_a_day(150):
        forever.label(ts, rater)
    rows = forever.rows()
    assert "vendor-a/ann-149" not in rows and rows["vendor-a/other"] == 6 * 50
    assert len(rows) == 101


def _turnover() -> list[tuple[float, str]]:
    """Two new annotators a day for 80 days, each labelling twice a day for 15 days; each fortnight's
    annotators of a new vendor (vendor-0 to vendor-5)."""
    labels = []
    for k in range(160):
        start = k * DAY / 2
        labels += [(start + n * DAY / 2 + 60.0 * k, f"vendor-{k // 28}/ann-{k:03d}") for n in range(30)]
    return sorted(labels)


@pytest.mark.parametrize(
    "restart_at", [40 * DAY + 13 * 3600.0, 52 * DAY + 1 * 3600.0, 61 * DAY + 19 * 3600.0]
)
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(restart_at: float) -> None:
    # with room for 12 annotators and 3 vendors, both full: a newcomer takes a place when a look drops one
    # idle for 30 days, so looks at other times of day (after a restart at 13:00, every day at 13:00) would
    # give places to other newcomers than a run without the restart
    def worker() -> Worker:
        return Worker(max_annotators=12, max_vendors=3)

    once, restarted = with_and_without_a_restart(worker, _turnover(), Worker.label, restart_at)
    assert restarted.state() == once.state()
    rows = once.rows()
    assert {"other/other", "vendor-4/other"} <= set(rows)  # the rooms are full
    # the fifth vendor and 12 of its annotators have the places of the first ones (other/other, for good,
    # until 2026-11-26)
    assert len([rater for rater in rows if rater.startswith("vendor-4/ann-")]) == 12


def test_a_returning_vendor_and_new_ones_get_rows_once_the_idle_ones_are_dropped() -> None:
    worker = Worker(max_annotators=2, max_vendors=2)
    worker.label(0.0, "v1/a1")
    worker.label(DAY, "v2/a2")
    worker.label(2 * DAY, "v3/a3")  # no room
    assert set(worker.rows()) == {"v1/a1", "v2/a2", "other/other"}
    worker.label(32.5 * DAY, "v2/a2")  # the look from day 32 drops v1 (day 0), keeps other (day 2)
    assert worker.rows() == {"v2/a2": 4, "other/other": 2}
    worker.label(33.5 * DAY, "v3/a3")  # v3 has room now: the look from day 33 drops other
    assert worker.rows() == {"v2/a2": 4, "v3/a3": 2}
    assert worker.rows("vendors") == {"v2": 4, "v3": 2}


def test_a_dropped_vendors_gold_accuracy_series_go() -> None:
    worker = Worker()
    worker.label(0.0, "v1/a1")
    worker.label(DAY, "v2/a2")

    def series(vendor: str) -> Any:
        return worker.registry.get_sample_value(
            "convowatch_vendor_gold_accuracy_ratio", {"vendor_id": vendor, "dimension": "*"}
        )

    assert series("v1") is not None and series("v2") is not None
    worker.label(30.5 * DAY, "v2/a2")  # v1 idle exactly 30 days at the look from day 30: kept
    assert series("v1") is not None
    worker.label(31.5 * DAY, "v2/a2")
    assert series("v1") is None and series("v2") is not None


def test_state_from_before_label_times_were_kept_is_idle_from_the_first_look_on() -> None:
    # aggregates from before 2026-11-26 have no label times: stamped at the first look after the upgrade
    # (written, so a restart keeps the stamp) and dropped idle_seconds later
    worker = Worker()
    worker.label(0.0, "v1/a1")
    worker.label(0.0, "v1/a2")
    worker.without_last_seen()
    worker.label(40 * DAY, "v1/a1")  # the first look: a2's row stamped at day 40, kept
    assert set(worker.rows()) == {"v1/a1", "v1/a2"}
    state = worker.state("gold_annotator")
    assert {k.split("\x1f")[-1]: v["detector"]["state"]["_last_seen"]["*"] for k, v in state.items()} == {
        "a1": 40 * DAY,
        "a2": 40 * DAY,
    }
    worker.restart()
    worker.label(70.5 * DAY, "v1/a1")  # idle exactly 30 days at the look: kept
    assert set(worker.rows()) == {"v1/a1", "v1/a2"}
    worker.label(71.5 * DAY, "v1/a1")
    assert set(worker.rows()) == {"v1/a1"}
