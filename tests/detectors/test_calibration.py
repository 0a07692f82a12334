"""BinaryCalibration and ClassAccuracy against scikit-learn, statsmodels and a direct numpy ECE."""

from __future__ import annotations

import json
import math
import random
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score
from statsmodels.stats.proportion import proportion_confint

from detectors.calibration import BinaryCalibration, ClassAccuracy

TOL = 1e-9


def _close(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= TOL


def _numpy_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE with equal-width bins [k/B, (k+1)/B), the last bin closed at 1."""
    if confidence.size == 0:
        return math.nan
    bins = np.minimum(np.floor(confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _wilson(successes: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    return tuple(float(x) for x in proportion_confint(successes, n, alpha=0.05, method="wilson"))  # type: ignore[return-value]


def _binary_stream(kind: str, seed: int) -> tuple[list[bool], list[bool], list[float | None]]:
    rng = random.Random(f"{kind}-{seed}")
    n = rng.choice([1, 2, 7, 100, 1000])
    prevalence = {
        "balanced": 0.5,
        "skewed_98_2": 0.02,
        "no_human_fails": 0.0,
        "all_human_fails": 1.0,
        "typical": 0.1,
    }[kind.removesuffix("_no_confidence")]
    sens, fpr = rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.2)
    judge, human, conf = [], [], []
    for _ in range(n):
        h = rng.random() < prevalence
        j = rng.random() < (sens if h else fpr)
        c = (
            None
            if kind.endswith("_no_confidence") or rng.random() < 0.1
            else rng.choice([rng.random(), rng.choice([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])])
        )
        judge.append(j)
        human.append(h)
        conf.append(c)
    return judge, human, conf


BINARY_KINDS = [
    "balanced",
    "skewed_98_2",
    "no_human_fails",
    "all_human_fails",
    "typical",
    "typical_no_confidence",
]
BINARY_CASES = [(kind, seed) for kind in BINARY_KINDS for seed in range(6)]


@pytest.mark.parametrize(("kind", "seed"), BINARY_CASES)
def test_binary_calibration_matches_sklearn_statsmodels_and_numpy(kind, seed):
    judge, human, conf = _binary_stream(kind, seed)
    cal = BinaryCalibration()
    for j, h, c in zip(judge, human, conf, strict=True):
        assert cal.update(j, h, c) is cal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tn, fp, fn, tp = (int(x) for x in confusion_matrix(human, judge, labels=[False, True]).ravel())
    assert cal.counts == {"tp": tp, "fp": fp, "fn": fn, "tn": tn} and cal.n == len(judge)
    assert _close(cal.sensitivity, tp / (tp + fn) if tp + fn else math.nan)
    assert _close(cal.specificity, tn / (tn + fp) if tn + fp else math.nan)
    assert _close(cal.precision, tp / (tp + fp) if tp + fp else math.nan)
    for got, want in [
        (cal.sensitivity_interval, _wilson(tp, tp + fn)),
        (cal.specificity_interval, _wilson(tn, tn + fp)),
        (cal.precision_interval, _wilson(tp, tp + fp)),
    ]:
        assert all(_close(g, w) for g, w in zip(got, want, strict=True)), (got, want)
    scored = [(c, j == h) for j, h, c in zip(judge, human, conf, strict=True) if c is not None]
    confidence = np.array([c for c, _ in scored], dtype=float)
    correct = np.array([ok for _, ok in scored], dtype=float)
    assert cal.n_scored == len(scored)
    assert _close(cal.ece, _numpy_ece(confidence, correct)), (cal.ece, _numpy_ece(confidence, correct))
    assert _close(cal.judge_fail_rate, float(np.mean(judge)))
    assert _close(cal.human_fail_rate, float(np.mean(human)))
    json.dumps(cal.summary())


def test_reliability_bins_and_boundaries():
    cal = BinaryCalibration(n_bins=10)
    # boundaries: 0.0 -> bin 0, 0.1 -> bin 1, 0.95 -> bin 9, 1.0 -> bin 9 (top bin closed)
    for c, j, h in [(0.0, True, False), (0.1, True, True), (0.95, False, False), (1.0, True, False)]:
        cal.update(j, h, c)
    rel = cal.reliability
    assert [b["n"] for b in rel] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert rel[9]["mean_confidence"] == pytest.approx(0.975) and rel[9]["accuracy"] == 0.5
    assert math.isnan(rel[3]["accuracy"])
    assert rel[0]["low"] == 0.0 and rel[9]["high"] == pytest.approx(1.0)
    # by hand: bin0 |0 - 0| = 0, bin1 |1 - 0.1| = 0.9, bin9 2 * |0.5 - 0.975| = 0.95; over 4 -> 0.4625
    assert cal.ece == pytest.approx(0.4625)


def test_perfectly_calibrated_judge_has_small_ece():
    rng = random.Random(3)
    cal = BinaryCalibration()
    for _ in range(20000):
        c = rng.uniform(0.5, 1.0)
        human = rng.random() < 0.3
        judge = human if rng.random() < c else not human
        cal.update(judge, human, c)
    assert cal.ece < 0.02


def test_binary_empty_and_validation():
    cal = BinaryCalibration()
    assert cal.n == 0 and cal.n_scored == 0
    for name in ("sensitivity", "specificity", "precision", "ece", "judge_fail_rate", "human_fail_rate"):
        assert math.isnan(getattr(cal, name))
    for bad in [(1.5, True), ("fail", True), (True, 2), (True, None)]:
        with pytest.raises(ValueError):
            cal.update(*bad)
    for confidence in (-0.1, 1.1, math.nan, "0.5", True):
        with pytest.raises(ValueError):
            cal.update(True, True, confidence)
    for bins in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            BinaryCalibration(n_bins=bins)
    assert cal.n == 0  # rejected updates change nothing
    assert cal.update(1, 0).counts == {"tp": 0, "fp": 1, "fn": 0, "tn": 0}  # 0/1 accepted as bools


def test_binary_merge_equals_one_stream():
    judge, human, conf = _binary_stream("typical", 4)
    left, right, whole = BinaryCalibration(), BinaryCalibration(), BinaryCalibration()
    for i, args in enumerate(zip(judge, human, conf, strict=True)):
        (left if i % 2 else right).update(*args)
        whole.update(*args)
    assert left.merge(right) is left
    assert left.counts == whole.counts and left.n_scored == whole.n_scored
    assert left.ece == pytest.approx(whole.ece, abs=TOL)
    with pytest.raises(ValueError):
        left.merge(BinaryCalibration(n_bins=5))


# -- ClassAccuracy -------------------------------------------------------------------------------------


def _class_stream(kind: str, seed: int) -> tuple[list[str], list[str], list[float | None]]:
    rng = random.Random(f"{kind}-{seed}")
    n = rng.choice([1, 3, 50, 800])
    intents = ["balance", "refund", "cancel", "agent"]
    weights = [98, 1, 0.5, 0.5] if kind == "skewed" else [1, 1, 1, 1]
    predicted, truth, conf = [], [], []
    for _ in range(n):
        t = rng.choices(intents, weights=weights)[0]
        c = rng.uniform(0.3, 1.0)
        if kind == "never_predicts_agent":
            p = t if rng.random() < c and t != "agent" else rng.choice(intents[:3])
        else:
            p = t if rng.random() < c - 0.1 else rng.choice(intents)
        predicted.append(p)
        truth.append(t)
        conf.append(None if rng.random() < 0.05 else c)
    return predicted, truth, conf


@pytest.mark.parametrize(
    ("kind", "seed"), [(k, s) for k in ["uniform", "skewed", "never_predicts_agent"] for s in range(6)]
)
def test_class_accuracy_matches_sklearn_and_numpy(kind, seed):
    predicted, truth, conf = _class_stream(kind, seed)
    acc = ClassAccuracy()
    for p, t, c in zip(predicted, truth, conf, strict=True):
        assert acc.update(p, t, c) is acc
    assert _close(acc.accuracy, float(accuracy_score(truth, predicted)))
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    assert all(_close(g, w) for g, w in zip(acc.accuracy_interval, _wilson(correct, len(truth)), strict=True))
    labels = sorted(set(truth))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recalls = recall_score(truth, predicted, labels=labels, average=None, zero_division=0)
    assert acc.recall_by_class == pytest.approx(dict(zip(labels, recalls.tolist(), strict=True)), abs=TOL)
    scored = [(c, p == t) for p, t, c in zip(predicted, truth, conf, strict=True) if c is not None]
    expected = _numpy_ece(
        np.array([c for c, _ in scored], dtype=float), np.array([ok for _, ok in scored], dtype=float)
    )
    assert _close(acc.ece, expected)
    assert sum(sum(row.values()) for row in acc.confusion.values()) == len(truth)
    json.dumps(acc.summary())


def test_class_accuracy_empty_validation_and_merge():
    acc = ClassAccuracy()
    assert math.isnan(acc.accuracy) and math.isnan(acc.ece) and acc.recall_by_class == {}
    with pytest.raises(ValueError):
        acc.update(1, "refund")
    with pytest.raises(ValueError):
        acc.update("refund", "refund", 2.0)
    predicted, truth, conf = _class_stream("uniform", 1)
    left, right, whole = ClassAccuracy(), ClassAccuracy(), ClassAccuracy()
    for i, args in enumerate(zip(predicted, truth, conf, strict=True)):
        (left if i < len(truth) // 3 else right).update(*args)
        whole.update(*args)
    left.merge(right)
    assert left.confusion == whole.confusion and left.accuracy == whole.accuracy
    assert left.ece == pytest.approx(whole.ece, abs=TOL)
