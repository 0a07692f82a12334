"""AgreementTracker against scikit-learn on seeded random label streams."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix

from detectors import AgreementTracker

TOL = 1e-9


def _sk_kappa(a: list[str], b: list[str]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns (and returns nan) when kappa is undefined
        return float(cohen_kappa_score(a, b))


def _sk_accuracy(a: list[str], b: list[str]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(accuracy_score(b, a))


def _close(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= TOL


def _check(tracker: AgreementTracker, a: list[str], b: list[str]) -> None:
    assert tracker.n == len(a)
    assert _close(tracker.percent_agreement, _sk_accuracy(a, b)), (tracker.percent_agreement,)
    expected = _sk_kappa(a, b)
    assert _close(tracker.cohen_kappa, expected), (tracker.cohen_kappa, expected)
    labels = sorted(set(a) | set(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrix = confusion_matrix(a, b, labels=labels)
    confusion = tracker.confusion
    ours = np.array([[confusion.get(x, {}).get(y, 0) for y in labels] for x in labels])
    assert (ours == matrix).all()
    assert set(confusion) == set(a)
    assert sum(sum(row.values()) for row in confusion.values()) == len(a)


def _stream(
    rng: random.Random,
    n: int,
    classes: list[str],
    accuracy: float,
    weights: list[float] | None = None,
    b_never: set[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    a, b = [], []
    b_classes = [c for c in classes if c not in b_never]
    b_weights = [w for c, w in zip(classes, weights, strict=True) if c not in b_never] if weights else None
    for _ in range(n):
        truth = rng.choices(b_classes, weights=b_weights)[0]
        judged = truth if rng.random() < accuracy else rng.choices(classes, weights=weights)[0]
        a.append(judged)
        b.append(truth)
    return a, b


def _cases() -> list[tuple[str, int]]:
    kinds = [
        "binary",
        "three",
        "four",
        "five",
        "skewed",
        "skewed_multi",
        "unused_by_b",
        "unused_by_a",
        "disjoint",
        "constant_b",
    ]
    return [(kind, seed) for kind in kinds for seed in range(8)]


def _make(kind: str, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(f"{kind}-{seed}")
    n = rng.choice([1, 2, 3, 10, 57, 200, 1000])
    accuracy = rng.random()
    if kind == "binary":
        return _stream(rng, n, ["pass", "fail"], accuracy)
    if kind in ("three", "four", "five"):
        k = {"three": 3, "four": 4, "five": 5}[kind]
        return _stream(rng, n, [f"c{i}" for i in range(k)], accuracy)
    if kind == "skewed":
        return _stream(rng, max(n, 200), ["pass", "fail"], accuracy, weights=[98, 2])
    if kind == "skewed_multi":
        return _stream(rng, max(n, 200), ["a", "b", "c", "d"], accuracy, weights=[90, 6, 3, 1])
    if kind == "unused_by_b":  # the judge uses a label the human never does
        return _stream(rng, n, ["output_1", "output_2", "tie"], accuracy, b_never={"tie"})
    if kind == "unused_by_a":
        b, a = _stream(rng, n, ["output_1", "output_2", "tie"], accuracy, b_never={"tie"})
        return a, b
    if kind == "disjoint":
        return [rng.choice(["x", "y"]) for _ in range(n)], [rng.choice(["p", "q"]) for _ in range(n)]
    if kind == "constant_b":  # one rater only ever says one thing, the other varies
        return [rng.choice(["pass", "fail"]) for _ in range(n)], ["pass"] * n
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "seed"), _cases())
def test_matches_sklearn_on_random_streams(kind, seed):
    a, b = _make(kind, seed)
    tracker = AgreementTracker()
    checkpoints = {1, 2, 5, len(a) // 2, len(a)}
    for i, (x, y) in enumerate(zip(a, b, strict=True), start=1):
        assert tracker.update(x, y) is tracker
        if i in checkpoints:
            _check(tracker, a[:i], b[:i])


def test_the_random_streams_cover_the_interesting_regions():
    kappas = []
    for kind, seed in _cases():
        a, b = _make(kind, seed)
        kappas.append(_sk_kappa(a, b))
    finite = [k for k in kappas if not math.isnan(k)]
    assert min(finite) < 0 < max(finite)
    assert any(k > 0.8 for k in finite)


def test_empty_tracker_is_undefined():
    tracker = AgreementTracker()
    assert tracker.n == 0
    assert math.isnan(tracker.percent_agreement)
    assert math.isnan(tracker.cohen_kappa)
    assert tracker.confusion == {}


@pytest.mark.parametrize("n", [1, 2, 50])
def test_one_class_only_by_both_raters_is_undefined_like_sklearn(n):
    a = b = ["pass"] * n
    tracker = AgreementTracker()
    for x, y in zip(a, b, strict=True):
        tracker.update(x, y)
    assert math.isnan(_sk_kappa(a, b))
    assert math.isnan(tracker.cohen_kappa)
    assert tracker.percent_agreement == 1.0
    assert tracker.confusion == {"pass": {"pass": n}}


def test_one_class_each_but_different_classes():
    a, b = ["pass"] * 5, ["fail"] * 5
    tracker = AgreementTracker()
    for x, y in zip(a, b, strict=True):
        tracker.update(x, y)
    assert tracker.percent_agreement == 0.0
    assert _close(tracker.cohen_kappa, _sk_kappa(a, b))
    assert tracker.cohen_kappa == 0.0


@pytest.mark.parametrize(
    "classes", [["pass", "fail"], ["a", "b", "c"], ["output_1", "output_2", "tie", "x", "y"]]
)
def test_perfect_agreement_is_one(classes):
    rng = random.Random(len(classes))
    labels = [rng.choice(classes) for _ in range(500)]
    tracker = AgreementTracker()
    for label in labels:
        tracker.update(label, label)
    assert tracker.percent_agreement == 1.0
    assert tracker.cohen_kappa == pytest.approx(1.0, abs=TOL)
    assert _sk_kappa(labels, labels) == pytest.approx(1.0, abs=TOL)


def test_perfect_disagreement_on_balanced_binary_is_minus_one():
    a = ["pass", "fail"] * 50
    b = ["fail", "pass"] * 50
    tracker = AgreementTracker()
    for x, y in zip(a, b, strict=True):
        tracker.update(x, y)
    assert tracker.percent_agreement == 0.0
    assert tracker.cohen_kappa == pytest.approx(-1.0, abs=TOL)
    assert _close(tracker.cohen_kappa, _sk_kappa(a, b))


def test_rater_order_matters_for_confusion_but_not_for_kappa():
    a, b = _make("four", 3)
    ab, ba = AgreementTracker(), AgreementTracker()
    for x, y in zip(a, b, strict=True):
        ab.update(x, y)
        ba.update(y, x)
    assert _close(ab.cohen_kappa, ba.cohen_kappa)
    transposed: dict[str, dict[str, int]] = {}
    for x, row in ab.confusion.items():
        for y, count in row.items():
            transposed.setdefault(y, {})[x] = count
    assert transposed == ba.confusion


def test_confusion_is_a_copy():
    tracker = AgreementTracker().update("pass", "fail")
    tracker.confusion["pass"]["fail"] = 100
    assert tracker.confusion == {"pass": {"fail": 1}}
