"""Multi-rater agreement against the ``krippendorff`` package, statsmodels and brute force."""

from __future__ import annotations

import json
import math
import random
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from detectors.multi_rater import InterAnnotatorAgreement, consensus
from detectors.rater_vs_consensus import RaterVsConsensus

TOL = 1e-9


def _close(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= TOL


# -- consensus -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([], (None, False)),
        (["pass"], ("pass", False)),
        (["pass", "pass"], ("pass", False)),
        (["pass", "fail"], (None, True)),
        (["a", "b", "c"], (None, True)),
        (["a", "a", "b", "c"], ("a", False)),  # plurality, not strict majority
        (["a", "a", "b", "b", "c"], (None, True)),
        (["fail", "pass", "fail", "pass", "fail"], ("fail", False)),
    ],
)
def test_consensus(labels, expected):
    assert consensus(labels) == expected


def test_consensus_is_order_independent():
    rng = random.Random(0)
    for _ in range(200):
        labels = [rng.choice("abc") for _ in range(rng.randint(1, 7))]
        shuffled = labels[:]
        rng.shuffle(shuffled)
        assert consensus(labels) == consensus(shuffled)
        top, tie = consensus(labels)
        counts = Counter(labels).most_common()
        assert tie == (len(counts) > 1 and counts[0][1] == counts[1][1])
        assert top == (None if tie else counts[0][0])


# -- generated items -----------------------------------------------------------------------------------


def _items(kind: str, seed: int) -> list[list[str]]:
    rng = random.Random(f"{kind}-{seed}")
    n_items = rng.choice([1, 2, 5, 40, 300])
    classes = ["pass", "fail", "unsure"]
    weights = [1.0, 1.0, 1.0]
    accuracy = rng.random()
    counts = [3]
    if kind == "variable_raters":
        counts = [2, 3, 3, 4, 5]
    elif kind == "skewed_98_2":
        classes, weights, n_items = ["pass", "fail"], [98, 2], max(n_items, 200)
        accuracy = 0.5 + accuracy / 2
    elif kind == "two_raters":
        counts = [2]
    items = []
    for _ in range(n_items):
        truth = rng.choices(classes, weights=weights)[0]
        m = rng.choice(counts)
        items.append(
            [truth if rng.random() < accuracy else rng.choices(classes, weights=weights)[0] for _ in range(m)]
        )
    if kind == "one_class_only":
        items = [["pass"] * rng.choice([2, 3]) for _ in range(n_items)]
    if kind == "a_label_never_used":  # 'unsure' exists on the scale but nobody uses it
        items = [[x for x in item if x != "unsure"] or ["pass", "pass"] for item in items]
        items = [item if len(item) >= 2 else [*item, "pass"] for item in items]
    return items


KINDS = [
    "fixed_three",
    "variable_raters",
    "skewed_98_2",
    "two_raters",
    "one_class_only",
    "a_label_never_used",
]
CASES = [(kind, seed) for kind in KINDS for seed in range(6)]


def _reliability_data(items: list[list[str]]) -> np.ndarray:
    codes = {label: i for i, label in enumerate(sorted({x for item in items for x in item}))}
    width = max(len(item) for item in items)
    data = np.full((width, len(items)), np.nan)
    for u, item in enumerate(items):
        for r, label in enumerate(item):
            data[r, u] = codes[label]
    return data


def _feed_iaa(items: list[list[str]], **params) -> InterAnnotatorAgreement:
    iaa = InterAnnotatorAgreement(**params)
    for item in items:
        assert iaa.update(item) is iaa
    return iaa


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_krippendorff_alpha_matches_the_krippendorff_package(kind, seed):
    items = _items(kind, seed)
    iaa = _feed_iaa(items)
    assert iaa.n_items == len(items)
    if len({x for item in items for x in item}) < 2:
        assert math.isnan(iaa.krippendorff_alpha)  # the package refuses a one-value domain
        return
    expected = krippendorff.alpha(reliability_data=_reliability_data(items), level_of_measurement="nominal")
    assert _close(iaa.krippendorff_alpha, float(expected)), (iaa.krippendorff_alpha, expected)


def _fleiss_table(items: list[list[str]]) -> np.ndarray:
    labels = sorted({x for item in items for x in item})
    return np.array([[item.count(label) for label in labels] for item in items])


@pytest.mark.parametrize(("kind", "seed"), CASES)
def test_fleiss_kappa_matches_statsmodels_on_the_modal_rater_count(kind, seed):
    items = _items(kind, seed)
    iaa = _feed_iaa(items)
    sizes = Counter(len(item) for item in items)
    modal = max((count, m) for m, count in sizes.items())[1]  # ties -> the larger rater count
    assert iaa.fleiss_raters_used == modal
    used = [item for item in items if len(item) == modal]
    assert iaa.fleiss_items == len(used)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = float(fleiss_kappa(_fleiss_table(used), method="fleiss"))
    assert _close(iaa.fleiss_kappa, expected), (iaa.fleiss_kappa, expected)


def test_fleiss_raters_parameter_selects_items():
    items = _items("variable_raters", 3)
    for m in (2, 3, 4, 5, 9):
        iaa = _feed_iaa(items, fleiss_raters=m)
        used = [item for item in items if len(item) == m]
        assert iaa.fleiss_raters_used == m and iaa.fleiss_items == len(used)
        if not used:
            assert math.isnan(iaa.fleiss_kappa)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert _close(iaa.fleiss_kappa, float(fleiss_kappa(_fleiss_table(used))))


def test_pairwise_agreement_by_brute_force():
    items = _items("variable_raters", 1)
    agreeing = total = 0.0
    for item in items:
        m = len(item)
        for i in range(m):
            for j in range(m):
                if i != j:
                    total += 1 / (m - 1)
                    agreeing += (item[i] == item[j]) / (m - 1)
    assert _feed_iaa(items).pairwise_agreement == pytest.approx(agreeing / total, abs=TOL)


def test_empty_and_degenerate():
    iaa = InterAnnotatorAgreement()
    assert iaa.n_items == 0 and iaa.fleiss_raters_used is None and iaa.fleiss_items == 0
    assert math.isnan(iaa.krippendorff_alpha) and math.isnan(iaa.fleiss_kappa)
    assert math.isnan(iaa.pairwise_agreement)
    iaa.update(["pass", "pass", "pass"])
    assert math.isnan(iaa.krippendorff_alpha) and math.isnan(iaa.fleiss_kappa)
    assert iaa.pairwise_agreement == 1.0
    iaa.update(["fail", "fail", "fail"])
    assert iaa.krippendorff_alpha == pytest.approx(1.0) and iaa.fleiss_kappa == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [[], ["pass"], "pass", [1, 2], None])
def test_items_need_two_string_labels(bad):
    with pytest.raises(ValueError):
        InterAnnotatorAgreement().update(bad)


@pytest.mark.parametrize("bad", [1, 0, True, 2.0, "3"])
def test_bad_fleiss_raters(bad):
    with pytest.raises(ValueError):
        InterAnnotatorAgreement(fleiss_raters=bad)


def test_iaa_merge_equals_one_stream():
    items = _items("variable_raters", 2)
    half = len(items) // 2
    merged = _feed_iaa(items[:half]).merge(_feed_iaa(items[half:]))
    whole = _feed_iaa(items)
    assert merged.summary() == whole.summary() and merged.raters_per_item == whole.raters_per_item
    with pytest.raises(ValueError):
        merged.merge(InterAnnotatorAgreement(fleiss_raters=3))
    json.dumps(whole.summary())


# -- rater vs consensus --------------------------------------------------------------------------------


def _rated_items(seed: int, n_items: int = 400) -> list[dict[str, str]]:
    rng = random.Random(seed)
    accuracy = {"ann": 0.95, "bob": 0.85, "cy": 0.6, "dee": 0.9}
    items = []
    for _ in range(n_items):
        truth = "fail" if rng.random() < 0.2 else "pass"
        raters = rng.sample(sorted(accuracy), rng.choice([2, 3, 3, 4]))
        items.append(
            {
                r: truth if rng.random() < accuracy[r] else rng.choice(["pass", "fail", "unsure"])
                for r in raters
            }
        )
    return items


@pytest.mark.parametrize("seed", range(5))
def test_rater_vs_consensus_by_brute_force(seed):
    items = _rated_items(seed)
    rvc = RaterVsConsensus()
    for item in items:
        assert rvc.update(item) is rvc
    per_rater = rvc.per_rater
    assert rvc.n_items == len(items) and rvc.raters == sorted(per_rater)
    for rater, result in per_rater.items():
        mine, theirs, ties = [], [], 0
        for item in items:
            if rater not in item:
                continue
            others = Counter(label for r, label in item.items() if r != rater).most_common()
            if len(others) > 1 and others[0][1] == others[1][1]:
                ties += 1
                continue
            mine.append(item[rater])
            theirs.append(others[0][0])
        agree = sum(a == b for a, b in zip(mine, theirs, strict=True))
        assert result["n"] == len(mine) and result["ties"] == ties
        assert result["agreement"] == pytest.approx(agree / len(mine), abs=TOL)
        assert result["agreement_interval"] == pytest.approx(
            list(proportion_confint(agree, len(mine), method="wilson")), abs=TOL
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = float(cohen_kappa_score(mine, theirs))
        assert _close(result["kappa"], expected)
        confusion = rvc.confusion(rater)
        assert sum(sum(row.values()) for row in confusion.values()) == len(mine)
    # the better rater agrees more with the others
    assert per_rater["ann"]["agreement"] > per_rater["cy"]["agreement"]


def test_rater_vs_consensus_two_raters_is_pairwise_agreement():
    rvc = RaterVsConsensus()
    for a, b in [("pass", "pass"), ("pass", "fail"), ("fail", "fail"), ("pass", "pass")]:
        rvc.update({"x": a, "y": b})
    assert rvc.per_rater["x"]["agreement"] == rvc.per_rater["y"]["agreement"] == 0.75
    assert rvc.per_rater["x"]["ties"] == 0


def test_rater_vs_consensus_ties_are_not_scored():
    rvc = RaterVsConsensus().update({"a": "pass", "b": "pass", "c": "fail"})
    # for a: others {b: pass, c: fail} tie; for c: others agree on pass
    assert rvc.per_rater["a"] == {
        "n": 0,
        "agreement": pytest.approx(math.nan, nan_ok=True),
        "agreement_interval": [pytest.approx(math.nan, nan_ok=True)] * 2,
        "kappa": pytest.approx(math.nan, nan_ok=True),
        "ties": 1,
    }
    assert rvc.per_rater["c"]["n"] == 1 and rvc.per_rater["c"]["agreement"] == 0.0


@pytest.mark.parametrize("bad", [{}, {"a": "pass"}, {"a": 1, "b": "x"}, [("a", "pass"), ("b", "pass")]])
def test_rater_vs_consensus_rejects_bad_items(bad):
    with pytest.raises(ValueError):
        RaterVsConsensus().update(bad)


def test_rater_vs_consensus_merge_equals_one_stream():
    items = _rated_items(9)
    left, right, whole = RaterVsConsensus(), RaterVsConsensus(), RaterVsConsensus()
    for i, item in enumerate(items):
        (left if i % 3 else right).update(item)
        whole.update(item)
    assert left.merge(right) is left
    assert left.n_items == whole.n_items
    assert {r: s["ties"] for r, s in left.per_rater.items()} == {
        r: s["ties"] for r, s in whole.per_rater.items()
    }
    assert {r: left.confusion(r) for r in left.raters} == {r: whole.confusion(r) for r in whole.raters}


@pytest.mark.parametrize("seed", range(3))
def test_removing_items_leaves_the_counts_of_the_others_alone(seed):
    # an item counted again with a later rater's label: its earlier version is removed first
    items = _rated_items(seed)
    rng = random.Random(seed)
    gone = set(rng.sample(range(len(items)), len(items) // 3))
    iaa, rvc = InterAnnotatorAgreement(), RaterVsConsensus()
    for item in items:
        iaa.update(list(item.values()))
        rvc.update(item)
    for i in sorted(gone, key=lambda _: rng.random()):
        assert iaa.remove(list(items[i].values())) is iaa and rvc.remove(items[i]) is rvc
    kept_iaa, kept_rvc = InterAnnotatorAgreement(), RaterVsConsensus()
    for i, item in enumerate(items):
        if i not in gone:
            kept_iaa.update(list(item.values()))
            kept_rvc.update(item)
    assert iaa.to_dict() == kept_iaa.to_dict()
    # a rater whose items all went keeps an empty row (the cap must pool the same raters)
    rows, kept_rows = rvc.to_dict()["state"]["_raters"], kept_rvc.to_dict()["state"]["_raters"]
    assert {r: row for r, row in rows.items() if r in kept_rows} == kept_rows
    assert all(row == {"confusion": {}, "ties": 0} for r, row in rows.items() if r not in kept_rows)
    assert rvc.n_items == kept_rvc.n_items
