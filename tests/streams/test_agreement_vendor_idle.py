"""Agreement per vendor: the figures of vendors gone idle are dropped, and new vendors take their room.

Until 2026-11-26 an ``agreement_vendor`` aggregate's first 49 vendors held their room for good: after
turnover every new vendor was counted as ``other``.
"""

from __future__ import annotations

from typing import Any

import pytest

from detectors.agreement_breakdown import AgreementBreakdown
from streams.aggregate import key
from streams.metrics import Metrics
from streams.views.agreement import AgreementView
from tests.support.restartable import RestartableView, with_and_without_a_restart

DAY = 86400.0
JUDGE, DIMENSION = "judge-a", "safety"
VENDOR = key("agreement_vendor", JUDGE, DIMENSION)
NEVER = 1e12  # idle_seconds of a view that drops nothing, as until 2026-11-26


class Worker(RestartableView):
    """The agreement view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(self, idle_seconds: float | None = None) -> None:
        # None: the view's default (also on code from before idle vendors were dropped)
        self.settings: dict[str, Any] = {} if idle_seconds is None else {"idle_seconds": idle_seconds}
        super().__init__(seed=13)

    def make_view(self, metrics: Metrics) -> AgreementView:
        return AgreementView(metrics, refresh_every=1, **self.settings)

    def label(self, label_ts: float, vendor: str) -> None:
        """A label of ``vendor`` at ``label_ts`` on a turn of an hour before, with the judge's label."""
        self.offset += 1
        human = "fail" if self.rng.random() < 0.2 else "pass"
        judge = human if self.rng.random() < 0.85 else ("pass" if human == "fail" else "fail")
        self.aggregator.apply(
            {
                "kind": "labelled",
                "turn_id": f"t{self.offset}",
                "ts": label_ts - 3600.0,
                "label_ts": label_ts,
                "segment": {"journey": "shopper"},
                "annotator_id": f"{vendor}-ann",
                "vendor_id": vendor,
                "is_gold": False,
                "labels": {DIMENSION: human},
                "judges": {JUDGE: {DIMENSION: judge}},
                "src": ["labels:0", self.offset, 0],
            }
        )

    def vendors(self) -> set[str]:
        detector = self.aggregator.detector(VENDOR)
        assert isinstance(detector, AgreementBreakdown)
        return set(detector.segment("vendor"))


def _labels(vendors: int, start_every: float, days: int) -> list[tuple[float, str]]:
    """(label time, vendor) in time order: ``main`` all along, and vendors w1 to w<vendors>, one starting
    every ``start_every`` days and labelling for ``days`` days, twice a day each."""
    labels = []
    for k in range(1, vendors + 1):
        start = (k - 1) * start_every * DAY
        for half_day in range(2 * days):
            labels.append((start + half_day * DAY / 2 + 60.0 * k, f"w{k}"))
    end = max(ts for ts, _ in labels)
    labels += [(n * DAY / 2, "main") for n in range(int(end / (DAY / 2)) + 1)]
    return sorted(labels)


def test_a_new_vendor_after_turnover_gets_its_own_figures() -> None:
    # w1..w80, one a day, each for 5 days
    worker, forever = Worker(), Worker(idle_seconds=NEVER)
    kept, before = {}, {}
    for ts, vendor in _labels(80, 1.0, 5):
        worker.label(ts, vendor)
        forever.label(ts, vendor)
        kept[vendor], before[vendor] = worker.vendors(), forever.vendors()
    assert all(vendor in kept[vendor] for vendor in kept)
    # the last look, as of day 83, keeps the vendors whose last label (day k + 3.5) is at most 30 days older
    assert worker.vendors() == {"main"} | {f"w{k}" for k in range(50, 81)}
    assert "w80" not in before["w80"] and "other" in before["w80"]  # what happened until 2026-11-26
    assert max(k for k in range(1, 81) if f"w{k}" in before[f"w{k}"]) == 48

    # what is kept is as in the run that drops nothing: the main vendor's figures, and the overall ones
    ours = worker.state()[VENDOR]["detector"]["state"]
    theirs = forever.state()[VENDOR]["detector"]["state"]
    assert ours["_overall"] == theirs["_overall"]
    assert ours["_segments"]["vendor"]["main"] == theirs["_segments"]["vendor"]["main"]
    assert ours["_last_seen"]["vendor"]["main"] == theirs["_last_seen"]["vendor"]["main"]
    rows = worker.view.segment_rows(worker.aggregator)
    assert {row["segment_value"] for row in rows if row["segment"] == "vendor"} == worker.vendors()


@pytest.mark.parametrize(
    "restart_at", [40 * DAY + 13 * 3600.0, 52 * DAY + 1 * 3600.0, 61 * DAY + 19 * 3600.0]
)
def test_a_restarted_worker_drops_as_the_one_before_it(restart_at: float) -> None:
    # two new vendors a day, each labelling for 15 days: 49 vendors' room is full, and a new vendor takes
    # one when a look drops a vendor idle for 30 days; a restart in the middle of a day must not look earlier
    once, restarted = with_and_without_a_restart(Worker, _labels(160, 0.5, 15), Worker.label, restart_at)
    assert "other" in once.vendors()
    assert restarted.state() == once.state()
