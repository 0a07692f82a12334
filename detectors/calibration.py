"""How well a judge's verdicts and confidences match human truth: error rates and calibration.

Expected calibration error (ECE), top-label form (Guo et al. 2017, after Naeini et al. 2015): each scored
prediction carries a confidence ``c`` in ``[0, 1]``, the judge's probability that *its predicted label* is
correct. Predictions fall into ``n_bins`` equal-width bins, bin ``min(floor(c * n_bins), n_bins - 1)`` (so
``[0, 0.1), ..., [0.9, 1.0]`` for 10 bins), and

    ECE = sum_b (n_b / n) * | accuracy_b - mean_confidence_b |

over the ``n`` predictions that had a confidence. A judge that emits a fail *score* ``s = P(fail)`` instead
should pass ``judge_fail = s >= 0.5`` and ``confidence = max(s, 1 - s)``. ECE is ``nan`` until one
prediction has a confidence.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.agreement_stats import (
    MAX_CATEGORIES,
    Confusion,
    add_counts,
    check_confidence_level,
    check_max_categories,
    fold_pair,
    wilson_interval,
)
from detectors.base import Detector

NAN = math.nan


def _check_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")


def _check_confidence(confidence: float | None) -> None:
    if confidence is None:
        return
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0.0 <= confidence <= 1.0
    ):
        raise ValueError(f"confidence must be a number in [0, 1] or None, got {confidence!r}")


def _add_to_bins(bins: list[list[float]], confidence: float, correct: bool) -> None:
    index = min(int(confidence * len(bins)), len(bins) - 1)
    bins[index][0] += 1
    bins[index][1] += confidence
    bins[index][2] += 1 if correct else 0


def _ece(bins: list[list[float]]) -> float:
    n = sum(b[0] for b in bins)
    if not n:
        return NAN
    return (
        sum(abs(b[2] - b[1]) for b in bins) / n
    )  # (n_b / n) |acc_b - conf_b| = |correct_b - sum_conf_b| / n


def _reliability(bins: list[list[float]]) -> list[dict[str, float]]:
    width = 1.0 / len(bins)
    return [
        {
            "low": i * width,
            "high": (i + 1) * width,
            "n": b[0],
            "mean_confidence": b[1] / b[0] if b[0] else NAN,
            "accuracy": b[2] / b[0] if b[0] else NAN,
        }
        for i, b in enumerate(bins)
    ]


def _merge_bins(mine: list[list[float]], theirs: list[list[float]]) -> None:
    for a, b in zip(mine, theirs, strict=True):
        for i in range(3):
            a[i] += b[i]


def _check_flag(name: str, value: Any) -> bool:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} must be a bool (or 0/1), got {value!r}")


class _ConfidenceBins:
    """The calibration read-outs both detectors derive from their confidence bins ``_bins``."""

    _bins: list[list[float]]

    @property
    def n_scored(self) -> int:
        """Predictions that came with a confidence (the ECE's ``n``)."""
        return int(sum(b[0] for b in self._bins))

    @property
    def ece(self) -> float:
        return _ece(self._bins)

    @property
    def reliability(self) -> list[dict[str, float]]:
        """Per bin: ``low``, ``high``, ``n``, ``mean_confidence`` and ``accuracy`` (``nan`` when empty)."""
        return _reliability(self._bins)


class BinaryCalibration(_ConfidenceBins, Detector):
    """The judge's 'fail' verdict against the human's 'fail' truth ('fail' is the positive class).

    Sensitivity ``TP / (TP + FN)``, specificity ``TN / (TN + FP)`` and precision ``TP / (TP + FP)``, each
    with a Wilson interval, and the ECE of the judge's confidence in its verdict (module docstring).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> cal = BinaryCalibration()
    >>> for _ in range(2000):
    ...     human_fail = rng.random() < 0.1
    ...     judge_fail = rng.random() < (0.85 if human_fail else 0.05)
    ...     confidence = rng.uniform(0.7, 1.0)
    ...     cal = cal.update(judge_fail, human_fail, confidence)
    >>> round(cal.sensitivity, 3), [round(x, 3) for x in cal.sensitivity_interval]
    (0.872, [0.817, 0.913])
    >>> round(cal.specificity, 3), round(cal.precision, 3), round(cal.ece, 3)
    (0.948, 0.636, 0.092)
    """

    def __init__(self, n_bins: int = 10, confidence_level: float = 0.95) -> None:
        _check_bins(n_bins)
        check_confidence_level(confidence_level)
        self.n_bins = n_bins
        self.confidence_level = confidence_level
        self._reset()

    def _reset(self) -> None:
        self._tp = 0
        self._fp = 0
        self._fn = 0
        self._tn = 0
        # bins[b] = [count, sum of confidences, count of correct verdicts]
        self._bins: list[list[float]] = [[0, 0.0, 0] for _ in range(self.n_bins)]

    def update(
        self, judge_fail: bool, human_fail: bool, confidence: float | None = None
    ) -> BinaryCalibration:
        judge = _check_flag("judge_fail", judge_fail)
        human = _check_flag("human_fail", human_fail)
        _check_confidence(confidence)
        if judge and human:
            self._tp += 1
        elif judge:
            self._fp += 1
        elif human:
            self._fn += 1
        else:
            self._tn += 1
        if confidence is not None:
            _add_to_bins(self._bins, float(confidence), judge == human)
        return self

    def merge(self, other: BinaryCalibration) -> BinaryCalibration:
        """Add ``other``'s counts to this tracker; returns ``self``."""
        self._check_mergeable(other)
        self._tp += other._tp
        self._fp += other._fp
        self._fn += other._fn
        self._tn += other._tn
        _merge_bins(self._bins, other._bins)
        return self

    @property
    def n(self) -> int:
        return self._tp + self._fp + self._fn + self._tn

    @property
    def counts(self) -> dict[str, int]:
        return {"tp": self._tp, "fp": self._fp, "fn": self._fn, "tn": self._tn}

    def _ratio(self, hits: int, total: int) -> float:
        return hits / total if total else NAN

    @property
    def sensitivity(self) -> float:
        """Recall of human fails: ``TP / (TP + FN)``."""
        return self._ratio(self._tp, self._tp + self._fn)

    @property
    def sensitivity_interval(self) -> tuple[float, float]:
        return wilson_interval(self._tp, self._tp + self._fn, self.confidence_level)

    @property
    def specificity(self) -> float:
        """``TN / (TN + FP)``; the judge's false-positive rate is ``1 - specificity``."""
        return self._ratio(self._tn, self._tn + self._fp)

    @property
    def specificity_interval(self) -> tuple[float, float]:
        return wilson_interval(self._tn, self._tn + self._fp, self.confidence_level)

    @property
    def precision(self) -> float:
        """``TP / (TP + FP)``: the share of judge fails that humans confirm."""
        return self._ratio(self._tp, self._tp + self._fp)

    @property
    def precision_interval(self) -> tuple[float, float]:
        return wilson_interval(self._tp, self._tp + self._fp, self.confidence_level)

    @property
    def judge_fail_rate(self) -> float:
        return self._ratio(self._tp + self._fp, self.n)

    @property
    def human_fail_rate(self) -> float:
        return self._ratio(self._tp + self._fn, self.n)

    def summary(self) -> dict[str, Any]:
        return {
            "n": self.n,
            **self.counts,
            "sensitivity": self.sensitivity,
            "sensitivity_interval": list(self.sensitivity_interval),
            "specificity": self.specificity,
            "specificity_interval": list(self.specificity_interval),
            "precision": self.precision,
            "precision_interval": list(self.precision_interval),
            "n_scored": self.n_scored,
            "ece": self.ece,
        }


class ClassAccuracy(_ConfidenceBins, Detector):
    """Accuracy of a predicted class (e.g. the intent) against the true class, and its calibration.

    Accuracy comes with a Wilson interval; ``recall_by_class`` is the accuracy within each true class; the
    ECE is that of the confidence in the predicted class (module docstring). The confusion table keeps the
    first ``max_categories`` labels of either side; later new ones count as ``other`` (two different ones
    as a miss: :func:`~detectors.agreement_stats.fold_pair`), and :attr:`folded_labels` says how many.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> intents = ["check_balance", "refund", "cancel"]
    >>> acc = ClassAccuracy()
    >>> for _ in range(1000):
    ...     truth = rng.choice(intents)
    ...     confidence = rng.uniform(0.5, 1.0)
    ...     predicted = truth if rng.random() < confidence - 0.1 else rng.choice(intents)
    ...     acc = acc.update(predicted, truth, confidence)
    >>> round(acc.accuracy, 3), [round(x, 3) for x in acc.accuracy_interval], round(acc.ece, 3)
    (0.776, [0.749, 0.801], 0.067)
    """

    def __init__(
        self, n_bins: int = 10, confidence_level: float = 0.95, max_categories: int = MAX_CATEGORIES
    ) -> None:
        _check_bins(n_bins)
        check_confidence_level(confidence_level)
        check_max_categories(max_categories)
        self.n_bins = n_bins
        self.confidence_level = confidence_level
        self.max_categories = max_categories
        self._reset()

    def _reset(self) -> None:
        # confusion[true_label][predicted_label] -> count
        self._confusion: Confusion = {}
        self._n = 0
        self._correct = 0
        self._bins: list[list[float]] = [[0, 0.0, 0] for _ in range(self.n_bins)]
        self._folded_labels = 0

    def update(self, predicted: str, truth: str, confidence: float | None = None) -> ClassAccuracy:
        if not isinstance(predicted, str) or not isinstance(truth, str):
            raise ValueError(f"predicted and truth must be strings, got {predicted!r}, {truth!r}")
        _check_confidence(confidence)
        truth_cell, predicted_cell, folded = fold_pair(self._confusion, truth, predicted, self.max_categories)
        row = self._confusion.setdefault(truth_cell, {})
        row[predicted_cell] = row.get(predicted_cell, 0) + 1
        self._folded_labels += folded
        self._n += 1
        self._correct += predicted == truth
        if confidence is not None:
            _add_to_bins(self._bins, float(confidence), predicted == truth)
        return self

    def merge(self, other: ClassAccuracy) -> ClassAccuracy:
        """Add ``other``'s counts to this tracker; returns ``self``."""
        self._check_mergeable(other)
        self._folded_labels += add_counts(self._confusion, other._confusion, self.max_categories)
        self._folded_labels += other._folded_labels
        self._n += other._n
        self._correct += other._correct
        _merge_bins(self._bins, other._bins)
        return self

    @property
    def n(self) -> int:
        return self._n

    @property
    def confusion(self) -> Confusion:
        """A copy of ``{true_label: {predicted_label: count}}``."""
        return {t: dict(row) for t, row in self._confusion.items()}

    @property
    def folded_labels(self) -> int:
        """Labels counted as ``other`` because the table already had ``max_categories`` (0-2 a pair)."""
        return self._folded_labels

    @property
    def accuracy(self) -> float:
        return self._correct / self._n if self._n else NAN

    @property
    def accuracy_interval(self) -> tuple[float, float]:
        return wilson_interval(self._correct, self._n, self.confidence_level)

    @property
    def recall_by_class(self) -> dict[str, float]:
        """``{true_label: share predicted correctly}``, sorted by label."""
        return {t: row.get(t, 0) / sum(row.values()) for t, row in sorted(self._confusion.items())}

    def summary(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "accuracy": self.accuracy,
            "accuracy_interval": list(self.accuracy_interval),
            "n_scored": self.n_scored,
            "ece": self.ece,
        }
