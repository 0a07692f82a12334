"""GoldView keeps a bounded set of vendors and annotators, across restarts too."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.metrics import Metrics
from streams.state import DictStore
from streams.views.gold import GoldView

GOLDEN = {"gold-1": {"safety": "fail"}}


class Labels:
    def __init__(self, store: DictStore, **caps: int) -> None:
        self.view = GoldView(Metrics(CollectorRegistry()), GOLDEN, **caps)
        self.aggregator = Aggregator(self.view.metrics, store, views=[self.view])
        self.offset = 0

    def label(self, vendor: str, annotator: str, answer: str = "fail") -> None:
        self.offset += 1
        obs: dict[str, Any] = {
            "kind": "gold_label",
            "turn_id": "gold-1",
            "ts": 1.0,
            "label_ts": 2.0,
            "annotator_id": annotator,
            "vendor_id": vendor,
            "labels": {"safety": answer},
            "src": ["labels:0", self.offset, 0],
        }
        self.aggregator.apply(obs)

    def rows(self, section: str) -> dict[tuple[str, ...], int]:
        names = ("vendor_id", "annotator_id") if section == "annotators" else ("vendor_id",)
        return {
            tuple(r[name] for name in names): r["n"]
            for r in self.view.report(self.aggregator)["gold"][section]
            if r["dimension"] == "*"
        }


def test_annotators_and_vendors_past_the_caps_are_scored_together_as_other() -> None:
    store = DictStore()
    labels = Labels(store, max_vendors=2, max_annotators=3)
    for n in range(10):  # ten annotators of vendor v1, each with a gold label
        labels.label("v1", f"ann-{n}")
    labels.label("v2", "ann-x")
    for n in range(5):  # vendors past the cap
        labels.label(f"late-{n}", f"ann-late-{n}")
    assert labels.rows("vendors") == {("v1",): 10, ("v2",): 1, ("other",): 5}
    assert labels.rows("annotators") == {
        ("v1", "ann-0"): 1,
        ("v1", "ann-1"): 1,
        ("v1", "ann-2"): 1,
        ("v1", "other"): 7,
        ("v2", "other"): 1,
        ("other", "other"): 5,
    }
    labels.aggregator.flush()
    assert len([k for k, _ in store.items() if k.startswith("gold_annotator")]) == 6


def test_a_restarted_view_keeps_the_vendors_and_annotators_it_scored() -> None:
    store = DictStore()
    before = Labels(store, max_vendors=1, max_annotators=1)
    before.label("v-z", "ann-z")
    before.aggregator.flush()

    after = Labels(store, max_vendors=1, max_annotators=1)  # a restarted worker over the recovered store
    after.aggregator.rebalanced()
    after.offset = before.offset  # the records after those read before the restart
    after.label("v-a", "ann-a")  # a newcomer first: the room is taken
    after.label("v-z", "ann-y")  # the same vendor's new annotator: past the cap
    after.label("v-z", "ann-z")
    assert after.rows("vendors") == {("v-z",): 3, ("other",): 1}
    assert after.rows("annotators") == {("v-z", "ann-z"): 2, ("v-z", "other"): 1, ("other", "other"): 1}


def test_long_vendor_and_annotator_ids_get_rows_of_their_own_while_there_is_room() -> None:
    labels = Labels(DictStore())
    vendor, annotator = "acme-annotation-services-euw", "3f1c2a8e-5b7d-4e2f-9c1a-7d6e5f4b3a29"
    labels.label(vendor, annotator)
    assert labels.rows("annotators") == {(vendor, annotator): 1}


def test_rows_folded_into_other_take_no_room_after_a_restart() -> None:
    store = DictStore()
    before = Labels(store, max_vendors=1, max_annotators=2)
    before.label("v", "b-ann")
    before.label("v", "c-ann")
    before.label("v", "d-ann")  # past the cap: ("v", "other")
    before.label("w", "e-ann")  # past the vendors' cap: ("other", "other")
    before.aggregator.flush()

    after = Labels(store, max_vendors=1, max_annotators=2)
    after.aggregator.rebalanced()
    after.offset = before.offset  # the records after those read before the restart
    after.label("v", "c-ann")
    after.label("v", "b-ann")
    assert after.rows("annotators") == {
        ("v", "b-ann"): 2,
        ("v", "c-ann"): 2,
        ("v", "other"): 1,
        ("other", "other"): 1,
    }
