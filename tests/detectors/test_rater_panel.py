"""RaterPanel: vendor intervals over items, bounded state."""

from __future__ import annotations

import json
import random

from detectors.multi_rater import OTHER_RATERS, RaterVsConsensus
from detectors.rater_panel import RaterPanel


def _double_labelled(rng: random.Random, items: int, accuracy: float) -> RaterPanel:
    """Every item labelled by two annotators of vendor v1: their two comparisons move together."""
    panel = RaterPanel()
    for _ in range(items):
        truth = rng.choice(["pass", "fail"])
        pair = rng.sample(["a1", "a2", "a3", "a4"], 2)
        wrong = "fail" if truth == "pass" else "pass"
        labels = {a: truth if rng.random() < accuracy else wrong for a in pair}
        panel.update(labels, dict.fromkeys(pair, "v1"))
    return panel


def test_a_vendor_interval_covers_at_its_level_when_its_annotators_share_items() -> None:
    # counted as 200 independent comparisons, the 95% interval covered 0.835 of runs
    rng = random.Random(11)
    accuracy = 0.85
    truth = accuracy**2 + (1 - accuracy) ** 2
    runs = 400
    covered = 0
    for _ in range(runs):
        figures = _double_labelled(rng, 100, accuracy).per_vendor["v1"]
        low, high = figures["agreement_interval"]
        covered += low <= truth <= high
        assert figures["n"] == 200 and figures["items"] == 100
        assert figures["effective_n"] <= 200
    assert covered / runs >= 0.92


def test_annotator_and_vendor_ids_beyond_the_caps_are_pooled() -> None:
    panel = RaterPanel(max_annotators=10, max_vendors=3)
    for i in range(500):  # a tool minting an annotator and a vendor id per label
        panel.update({f"ann-{i}": "pass", f"ann-{i}-b": "fail"}, {f"ann-{i}": f"v-{i}", f"ann-{i}-b": "v-0"})
    assert len(panel.per_annotator) == 11 and OTHER_RATERS in panel.per_annotator
    assert len(panel.per_vendor) == 4 and OTHER_RATERS in panel.per_vendor
    assert sum(v["n"] for v in panel.per_vendor.values()) == 1000  # every comparison kept, some pooled
    assert len(json.dumps(panel.to_dict())) < 20_000


def test_state_from_before_vendor_items_restores() -> None:
    panel = RaterPanel().update({"a": "pass", "b": "pass"}, {"a": "v1", "b": "v1"})
    old = panel.to_dict()
    del old["state"]["_vendors"]
    restored = RaterPanel.from_dict(old)
    assert restored.per_vendor == {}
    restored.update({"a": "pass", "b": "fail"}, {"a": "v1", "b": "v1"})
    assert restored.per_vendor["v1"]["n"] == 2


def test_rater_vs_consensus_merge_respects_the_cap() -> None:
    one, two = RaterVsConsensus(max_raters=2), RaterVsConsensus(max_raters=2)
    one.update({"a": "x", "b": "x"})
    two.update({"c": "x", "d": "x"})
    assert one.merge(two).raters == ["a", "b", OTHER_RATERS]
