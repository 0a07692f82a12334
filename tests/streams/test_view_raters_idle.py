"""The multi-annotator figures drop the annotators and vendors gone idle, and new ones take their room.

Until 2026-11-26 a ``raters/<dimension>`` panel's first 1,000 annotators and 100 vendors held their rows
for good: after turnover every new annotator and vendor was pooled as ``other``, in report.json ``raters``
and in ``convowatch_vendor_consensus_agreement_ratio``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors.rater_panel import RaterPanel
from streams.metrics import Metrics
from streams.state import encode_json
from streams.views.raters import RatersView
from tests.support.restartable import RestartableView, with_and_without_a_restart

DAY = 86400.0
DIMENSION = "safety"
PANEL = f"raters\x1f{DIMENSION}"
NEVER = 1e12  # idle_seconds of a view that drops nothing, as until 2026-11-26

#: an item: (label time, {annotator: vendor})
Item = tuple[float, dict[str, str]]


class Worker(RestartableView):
    """The raters view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(self, idle_seconds: float | None = None) -> None:
        # None: the view's default (also on code from before idle annotators were dropped)
        self.settings: dict[str, Any] = {} if idle_seconds is None else {"idle_seconds": idle_seconds}
        super().__init__(seed=5)

    def make_view(self, metrics: Metrics) -> RatersView:
        return RatersView(metrics, refresh_every=1, **self.settings)

    def item(
        self,
        label_ts: float,
        vendors: dict[str, str],
        labels: dict[str, str] | None = None,
        replaces: dict[str, Any] | None = None,
    ) -> None:
        """A turn's item labelled by the annotators of ``vendors`` (``labels``: at random), complete at
        ``label_ts``, replacing an earlier version (``replaces``: ``labels``, ``vendors``, ``judges``,
        ``label_ts``)."""
        self.offset += 1
        obs: dict[str, Any] = {
            "kind": "raters",
            "dimension": DIMENSION,
            "turn_id": f"t{self.offset}",
            "ts": label_ts - 600.0,
            "labels": labels or {a: "fail" if self.rng.random() < 0.2 else "pass" for a in vendors},
            "vendors": vendors,
            "label_ts": label_ts,
            "judges": {"judge-a": "pass"},
            "src": ["labels:0", self.offset, 0],
        }
        if replaces is not None:
            obs["replaces"] = replaces
        self.aggregator.apply(obs)

    def panel(self) -> RaterPanel:
        panel = self.aggregator.detector(PANEL)
        assert isinstance(panel, RaterPanel)
        return panel


def _new_every_day(days: int, per_day: int) -> list[Item]:
    """``per_day`` new annotators a day, all of that day's vendor, who label that day's items in pairs
    (one item per annotator, with the next one), an item an hour from 09:00."""
    items = []
    for day in range(days):
        annotators = [f"ann-{day:03d}-{k}" for k in range(per_day)]
        for k, annotator in enumerate(annotators):
            mate = annotators[(k + 1) % per_day]
            items.append(
                (day * DAY + (9 + k) * 3600.0, dict.fromkeys((annotator, mate), f"vendor-{day:03d}"))
            )
    return items


def test_todays_annotators_and_vendor_have_rows_of_their_own_after_150_days_of_turnover() -> None:
    # 8 new annotators a day and a new vendor (1,200 and 150 in all, past the 1,000 and 100 a panel keeps),
    # restarted in the middle of day 140
    items = _new_every_day(150, 8)
    once, restarted = with_and_without_a_restart(
        Worker, items, lambda w, ts, v: w.item(ts, v), 140 * DAY + 12.5 * 3600
    )
    for worker in (once, restarted):
        panel = worker.panel()
        # the day's look (from 00:00 of day 149) keeps those with an item in the 30 days before it
        assert set(panel.per_annotator) == {f"ann-{d:03d}-{k}" for d in range(119, 150) for k in range(8)}
        assert set(panel.per_vendor) == {f"vendor-{d:03d}" for d in range(119, 150)}
        assert panel.per_vendor["vendor-149"]["n"] == 16 and panel.per_vendor["vendor-149"]["annotators"] == 8
        assert panel.n_items == 1200  # the items' figures are all of them
    assert restarted.state() == once.state()

    forever = Worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    for ts, vendors in items:
        forever.item(ts, vendors)
    assert "ann-149-0" not in forever.panel().per_annotator and "vendor-149" not in forever.panel().per_vendor
    assert forever.panel().per_vendor["other"]["n"] == 16 * 50


def _turnover() -> list[Item]:
    """Two new annotators a day for 60 days, each labelling for 15 days, twice a day with one of the others
    then labelling (vendor v<k // 10> for annotator k)."""
    items = []
    for half_day in range(2 * 75):
        ts = half_day * DAY / 2
        active = [k for k in range(120) if k <= half_day < k + 30]
        for i, k in enumerate(active):
            mate = active[(i + 1) % len(active)]
            if mate != k:
                items.append((ts + 60.0 * i, {f"a{k:03d}": f"v{k // 10}", f"a{mate:03d}": f"v{mate // 10}"}))
    return items


@pytest.mark.parametrize(
    "restart_at", [40 * DAY + 13 * 3600.0, 52 * DAY + 1 * 3600.0, 61 * DAY + 19 * 3600.0]
)
def test_a_worker_restarted_in_the_middle_of_a_day_drops_as_the_one_before_it(restart_at: float) -> None:
    # looks every day from a start would, after a restart at 13:00, drop at 13:00 each day, and record
    # other horizons (and later, with the room full, give it to other newcomers) than a run without it
    items = _turnover()
    once, restarted = with_and_without_a_restart(Worker, items, lambda w, ts, v: w.item(ts, v), restart_at)
    assert restarted.state() == once.state()
    # the last look (from 00:00 of the last item's day) kept those with an item in the 30 days before it
    horizon = items[-1][0] // DAY * DAY - 30 * DAY
    assert set(once.panel().per_annotator) == {a for ts, vendors in items if ts >= horizon for a in vendors}


def test_a_dropped_vendors_series_go() -> None:
    worker = Worker()
    worker.item(0.0, {"a1": "v1", "a2": "v2"})
    worker.item(DAY, {"a2": "v2", "a3": "v2"})

    def series(vendor: str) -> Any:
        return worker.registry.get_sample_value(
            "convowatch_vendor_consensus_agreement_ratio", {"vendor_id": vendor, "dimension": DIMENSION}
        )

    assert series("v1") is not None and series("v2") is not None
    worker.item(30.5 * DAY, {"a2": "v2", "a3": "v2"})  # v1 idle exactly 30 days at the look: kept
    assert series("v1") is not None
    worker.item(31.5 * DAY, {"a2": "v2", "a3": "v2"})
    assert series("v1") is None and series("v2") is not None
    assert set(worker.panel().per_vendor) == {"v2"}


def test_an_item_replaced_after_its_first_annotators_were_dropped_counts_once() -> None:
    # with a join TTL over 30 days a turn may be labelled again after its first annotators went idle
    worker = Worker()
    labels, vendors = {"a1": "pass", "a2": "fail"}, {"a1": "v1", "a2": "v1"}
    worker.item(0.0, vendors, labels)
    worker.item(35 * DAY, {"b1": "v2", "b2": "v2"})  # the look from day 35 drops a1, a2 and v1
    assert set(worker.panel().per_annotator) == {"b1", "b2"}
    old = {"labels": labels, "vendors": vendors, "judges": {"judge-a": "pass"}, "label_ts": 0.0}
    worker.item(36 * DAY, {**vendors, "a3": "v1"}, {**labels, "a3": "pass"}, replaces=old)
    assert worker.panel().n_items == 2
    assert set(worker.panel().per_annotator) == {"a1", "a2", "a3", "b1", "b2"}


def test_state_from_before_event_times_is_stamped_at_the_first_look_and_dropped_30_days_later() -> None:
    worker = Worker()
    worker.item(0.0, {"a1": "v1", "a2": "v1"})
    worker.aggregator.flush()
    value = orjson.loads(worker.store.get(PANEL))  # as written before 2026-11-26: no event times
    state = value["detector"]["state"]
    for name in ("_vendor_seen", "_vendors_dropped_before", "_vendors_counts_after", "_vendors_gone"):
        del state[name]
    for name in ("_last_seen", "_dropped_before", "_counts_after", "_gone"):
        del state["_raters"][name]
    worker.store.put(PANEL, encode_json(value), None)
    worker.restart()
    worker.item(40.5 * DAY, {"b1": "v2", "b2": "v2"})  # the first look: a1, a2 and v1 stamped at day 40
    panel = worker.panel()
    assert set(panel.per_annotator) == {"a1", "a2", "b1", "b2"} and set(panel.per_vendor) == {"v1", "v2"}
    worker.restart()
    worker.item(70.5 * DAY, {"b1": "v2", "b2": "v2"})
    assert set(worker.panel().per_annotator) == {"a1", "a2", "b1", "b2"}
    worker.item(71.5 * DAY, {"b1": "v2", "b2": "v2"})
    assert set(worker.panel().per_annotator) == {"b1", "b2"} and set(worker.panel().per_vendor) == {"v2"}
    assert worker.panel().n_items == 4
