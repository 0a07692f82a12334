"""The agreement detectors and ClassAccuracy keep at most ``max_categories`` labels: a custom dimension
takes any label of up to 64 characters (free-form intents), and each new (judge, human) pair of labels
added a cell to every tracker of an aggregate, without bound. Later labels count as ``other``; the
diagonal stays exact."""

from __future__ import annotations

import json
import random

import pytest
from sklearn.metrics import cohen_kappa_score

from detectors import AgreementBreakdown, AgreementStats, AgreementTracker
from detectors.agreement_stats import MAX_CATEGORIES, OTHER, OTHER_DIFFERS, fold_pair
from detectors.calibration import ClassAccuracy
from detectors.rater_panel import RaterPanel


def _distinct(i: int, who: str) -> str:
    return f"{i:06d}-{who}-" + "x" * 55  # 64 characters, unlike any other


def _size(detector: AgreementStats | AgreementTracker | AgreementBreakdown | RaterPanel) -> int:
    return len(json.dumps(detector.to_dict()))


def _diagonal(confusion: dict[str, dict[str, int]]) -> int:
    return sum(row.get(a, 0) for a, row in confusion.items())


@pytest.mark.parametrize("cls", [AgreementStats, AgreementTracker])
def test_ten_thousand_distinct_labels_keep_a_tracker_small_and_its_figures_honest(cls) -> None:
    tracker = cls()
    for i in range(10_000):
        tracker.update(_distinct(i, "judge"), _distinct(i, "human"))
    # 32 labels kept (16 pairs of them) and the "other" row: ~2.5 KB; unbounded, it was 1.3 MB
    assert _size(tracker) < 5_000
    labels = set(tracker.confusion) | {b for row in tracker.confusion.values() for b in row}
    assert len(labels) == MAX_CATEGORIES + 2  # the kept ones, "other" and "other (differs)"
    assert tracker.n == 10_000 and tracker.folded_labels == 2 * (10_000 - MAX_CATEGORIES // 2)
    # never one agreement: folded labels do not agree because they share "other"
    assert tracker.percent_agreement == 0.0 and _diagonal(tracker.confusion) == 0
    assert tracker.confusion[OTHER] == {OTHER_DIFFERS: 10_000 - MAX_CATEGORIES // 2}
    assert tracker.cohen_kappa <= 0.0


def test_ten_thousand_distinct_labels_keep_a_breakdown_and_a_rater_panel_small() -> None:
    breakdown = AgreementBreakdown()
    panel = RaterPanel()
    for i in range(10_000):
        segment = {"journey": "shopper", "intent": f"intent-{i % 200}"}
        breakdown.update(60.0 * i, segment, _distinct(i, "judge"), _distinct(i, "human"))
        human = _distinct(i, "human")
        panel.update({"ann": human, "bob": human}, None, {"judge-a": _distinct(i, "judge")})
    # overall, 5 segments (intent: 50 values), 12 + 24 window buckets: ~92 trackers, on the overall one's
    # scale, so those after its first 16 pairs hold "other" alone: 25 KB (each on its own: 207 KB; 9 MB
    # unbounded)
    assert _size(breakdown) < 40_000
    # the 24h window: the 24 hourly buckets up to the newest, from turn 8580 on
    assert breakdown.window("24h").confusion == {OTHER: {OTHER_DIFFERS: 1420}}
    assert breakdown.segment("intent")["intent-3"].confusion == {
        _distinct(3, "judge"): {_distinct(3, "human"): 1},
        OTHER: {OTHER_DIFFERS: 49},
    }
    assert breakdown.overall().folded_labels == 2 * (10_000 - 16)
    judge = panel.judge("judge-a")
    assert judge.n == 10_000 and judge.percent_agreement == 0.0 and _size(judge) < 5_000


def _folded_reference(
    pairs: list[tuple[str, str]], cap: int
) -> tuple[dict[str, dict[str, int]], list[str], list[str], int]:
    """The table, each rater's labels and the folded-label count, written from the rule: the first
    ``cap`` labels (judge's, then human's, pair by pair) keep their names; two different folded labels
    are a disagreement."""
    kept: list[str] = []
    table: dict[str, dict[str, int]] = {}
    a_labels, b_labels, folded = [], [], 0
    for a, b in pairs:
        cell = []
        for label in (a, b):
            if label not in kept and len(kept) < cap and label not in (OTHER, OTHER_DIFFERS):
                kept.append(label)
            cell.append(label if label in kept else OTHER)
            folded += label not in kept and label not in (OTHER, OTHER_DIFFERS)
        if cell == [OTHER, OTHER] and a != b:
            cell[1] = OTHER_DIFFERS
        table.setdefault(cell[0], {})
        table[cell[0]][cell[1]] = table[cell[0]].get(cell[1], 0) + 1
        a_labels.append(cell[0])
        b_labels.append(cell[1])
    return table, a_labels, b_labels, folded


@pytest.mark.parametrize("seed", range(6))
def test_folded_table_matches_the_rule_and_kappa_matches_sklearn_on_it(seed: int) -> None:
    rng = random.Random(seed)
    vocabulary = [f"label-{k}" for k in range(40)] + [OTHER]
    pairs = []
    for _ in range(2_000):
        human = rng.choice(vocabulary[: rng.choice([5, 40, 41])])
        judge = human if rng.random() < 0.7 else rng.choice(vocabulary)
        pairs.append((judge, human))
    table, a_labels, b_labels, folded = _folded_reference(pairs, 8)
    stats, tracker = AgreementStats(max_categories=8), AgreementTracker(max_categories=8)
    for a, b in pairs:
        stats.update(a, b)
        tracker.update(a, b)
    for t in (stats, tracker):
        assert t.confusion == table and t.folded_labels == folded
        assert (
            t.percent_agreement == sum(a == b for a, b in pairs) / len(pairs) == _diagonal(table) / len(pairs)
        )
        assert t.cohen_kappa == pytest.approx(cohen_kappa_score(a_labels, b_labels), abs=1e-9)


def test_labels_within_the_cap_count_as_without_one() -> None:
    rng = random.Random(3)
    labels = [f"intent-{k}" for k in range(MAX_CATEGORIES)]
    capped, wide = AgreementStats(), AgreementStats(max_categories=10_000)
    for _ in range(3_000):
        human = rng.choice(labels)
        judge = human if rng.random() < 0.8 else rng.choice(labels)
        capped.update(judge, human)
        wide.update(judge, human)
    assert capped.to_dict()["state"] == wide.to_dict()["state"] and capped.folded_labels == 0
    assert capped.summary() == wide.summary()


def test_merge_folds_what_is_past_the_cap_and_keeps_the_diagonal() -> None:
    left, right = AgreementStats(max_categories=4), AgreementStats(max_categories=4)
    for label in ("a", "b", "c", "d"):
        left.update(label, label)
    for label in ("a", "e", "f"):
        right.update(label, label)
    right.update("e", "f")
    left.merge(right)
    assert left.confusion == {
        "a": {"a": 2},
        "b": {"b": 1},
        "c": {"c": 1},
        "d": {"d": 1},
        OTHER: {OTHER: 2, OTHER_DIFFERS: 1},
    }
    assert left.n == 8 and left.percent_agreement == 7 / 8 and left.folded_labels == 6
    again = AgreementStats(max_categories=4).merge(left)  # folded cells stay what they are
    assert again.confusion == left.confusion and again.folded_labels == left.folded_labels


def test_a_folded_pair_comes_out_as_it_went_in() -> None:
    stats = AgreementStats(max_categories=2)
    stats.update("pass", "fail").update("pass", "pass")
    before = stats.to_dict()
    assert stats.update("maybe", "unsure").holds("maybe", "unsure")
    assert stats.remove("maybe", "unsure").to_dict() == before


def test_state_from_before_the_cap_restores_and_keeps_counting() -> None:
    old_tracker = {
        "type": "AgreementTracker",
        "params": {},
        "state": {"_confusion": {"pass": {"pass": 2, "fail": 1}}, "_n": 3, "_agree": 2},
    }
    tracker = AgreementTracker.from_dict(json.loads(json.dumps(old_tracker)))
    assert tracker.n == 3 and tracker.max_categories == MAX_CATEGORIES and tracker.folded_labels == 0
    assert tracker.update("fail", "fail").confusion == {"pass": {"pass": 2, "fail": 1}, "fail": {"fail": 1}}
    old_stats = {
        "type": "AgreementStats",
        "params": {"categories": None, "confidence_level": 0.95},
        "state": {"_confusion": {"pass": {"pass": 2}}, "_n": 2, "_agree": 2},
    }
    stats = AgreementStats.from_dict(old_stats)
    assert stats.update("fail", "pass").n == 3 and stats.folded_labels == 0
    breakdown = AgreementBreakdown(segments=["journey"], windows={"1h": [3600, 300]})
    breakdown.update(100.0, {"journey": "shopper"}, "pass", "fail")
    old = breakdown.to_dict()  # as written before: no folded count in any tracker
    for state in [old["state"]["_overall"], *old["state"]["_segments"]["journey"].values()]:
        del state["_folded_labels"]
    for bucket in old["state"]["_windows"]["1h"]["_buckets"].values():
        del bucket["_folded_labels"]
    restored = AgreementBreakdown.from_dict(json.loads(json.dumps(old)))
    restored.update(200.0, {"journey": "shopper"}, "pass", "pass")
    assert restored.overall().n == 2 and restored.window("1h").n == 2
    assert restored.window("1h").confusion == {"pass": {"fail": 1, "pass": 1}}


@pytest.mark.parametrize("bad", [0, 1, 2.5, True, "32", None])
def test_bad_max_categories_raises(bad) -> None:
    for cls in (AgreementStats, AgreementTracker):
        with pytest.raises(ValueError, match="max_categories"):
            cls(max_categories=bad)


def test_the_label_other_counts_in_the_other_category_and_two_such_labels_differ() -> None:
    assert fold_pair({}, OTHER, OTHER, 2) == (OTHER, OTHER, 0)
    assert fold_pair({}, OTHER, "pass", 2) == (OTHER, "pass", 0)
    assert fold_pair({"a": {"b": 1}}, OTHER, "c", 2) == (OTHER, OTHER_DIFFERS, 1)


def test_class_accuracy_keeps_its_table_small_and_its_accuracy_exact() -> None:
    """Gold accuracy (an annotator's label against the golden one) and the live model's intents against
    the humans' take labels of custom dimensions too."""
    accuracy = ClassAccuracy()
    for i in range(10_000):
        truth = "refund" if i % 2 else _distinct(i, "human")
        predicted = truth if i % 4 < 2 else _distinct(i, "model")
        accuracy.update(predicted, truth, 0.9)
    assert _size(accuracy) < 5_000  # unbounded: 0.9 MB
    assert accuracy.n == 10_000 and accuracy.accuracy == 0.5
    assert _diagonal(accuracy.confusion) == 5_000 and accuracy.folded_labels > 0
    assert set(accuracy.recall_by_class) <= set(accuracy.confusion) and len(accuracy.confusion) <= 33


def test_class_accuracy_within_the_cap_and_from_before_it_counts_as_it_did() -> None:
    rng = random.Random(5)
    capped, wide = ClassAccuracy(), ClassAccuracy(max_categories=10_000)
    intents = [f"intent-{k}" for k in range(MAX_CATEGORIES)]
    for _ in range(2_000):
        truth = rng.choice(intents)
        predicted = truth if rng.random() < 0.7 else rng.choice(intents)
        capped.update(predicted, truth, rng.random())
        wide.update(predicted, truth, rng.random())
    assert capped.confusion == wide.confusion and capped.folded_labels == 0
    old = capped.to_dict()  # as written before: no parameter, no folded count
    del old["params"]["max_categories"], old["state"]["_folded_labels"]
    restored = ClassAccuracy.from_dict(json.loads(json.dumps(old)))
    assert restored.confusion == capped.confusion and restored.max_categories == MAX_CATEGORIES
    assert restored.merge(ClassAccuracy().update("x", "y")).n == 2_001
