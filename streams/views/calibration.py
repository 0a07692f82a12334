"""How well each judge's ``fail`` verdicts and confidences match human labels, per judge and dimension.

From ``pair`` observations on quality (pass/fail) dimensions, one :class:`~detectors.BinaryCalibration`
under ``calibration/<judge>/<dimension>`` (shard: the judge): sensitivity and specificity for ``fail``
(the judge's ``fail`` against the human's) with Wilson intervals, precision, and the expected calibration
error of the judge's confidence. The pair carries the verdict's ``confidence``, or its ``score`` when it
has none; values outside [0, 1] are ignored, and the ECE reads the value as the judge's probability that
its label is right. A judge and dimension with no pair for ``idle_seconds`` of the worker's clock (a retired
judge) loses its aggregate and gauges with its agreement figures (``streams/views/retired_pairs.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from detectors import BinaryCalibration
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator, key
from streams.emit import Emit
from streams.metrics import Metrics
from streams.views.agreement_report import finite_or_none, interval_or_none
from streams.views.refresh import Refresh


class CalibrationView:
    kinds: tuple[str, ...] = ("pair",)

    def __init__(self, metrics: Metrics, refresh_every: int = 200, refresh_seconds: float = 60.0) -> None:
        self.metrics = metrics
        self.refresh = Refresh(refresh_every, refresh_seconds)

    def apply(self, aggregator: Aggregator, pair: dict[str, Any], partition: int | None) -> list[Emit]:
        judge_id, dimension = pair["judge_id"], pair["dimension"]
        if dimension not in QUALITY_DIMENSIONS:
            return []
        confidence = pair.get("confidence")
        if not (isinstance(confidence, int | float) and 0.0 <= confidence <= 1.0):
            confidence = None
        calibration = aggregator.update(
            key("calibration", judge_id, dimension),
            pair,
            partition,
            BinaryCalibration,
            lambda c: c.update(pair["judge_label"] == FAIL, pair["human_label"] == FAIL, confidence),
        )
        if calibration is not None and self.refresh((judge_id, dimension), pair["ts"]):
            self._export(calibration, judge_id, dimension, self.metrics.label)
        return []

    def export_pending(self, aggregator: Aggregator) -> None:
        """The gauges of each judge and dimension with pairs since its last refresh."""
        for judge_id, dimension in self.refresh.pending():
            calibration = aggregator.detector(key("calibration", judge_id, dimension))
            if isinstance(calibration, BinaryCalibration):
                self._export(calibration, judge_id, dimension, self.metrics.recovered_label)

    def export_owned(self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]) -> None:
        """After a rebalance, the gauges of the recovered aggregates at ``keys`` of the judges this worker
        owns."""
        for parts, calibration in aggregator.owned_detectors(keys, "calibration", owns):
            if len(parts) == 2 and isinstance(calibration, BinaryCalibration):
                self._export(calibration, parts[0], parts[1], self.metrics.admitted_label)

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Refresh afresh (see ``AgreementView.rebalanced``)."""
        self.refresh.forget()

    def _export(
        self,
        calibration: BinaryCalibration,
        judge_id: str,
        dimension: str,
        label_of: Callable[[str, str | None], str],
    ) -> None:
        m = self.metrics
        labels = (label_of("judge_id", judge_id), label_of("dimension", dimension))
        if labels != (judge_id, dimension):  # folded into "other" by the metric guard: report.json only
            return
        m.judge_sensitivity.labels(*labels).set(calibration.sensitivity)
        m.judge_specificity.labels(*labels).set(calibration.specificity)
        m.judge_ece.labels(*labels).set(calibration.ece)
        for statistic in ("sensitivity", "specificity"):
            low, high = getattr(calibration, f"{statistic}_interval")
            m.judge_calibration_bound.labels(*labels, statistic, "lower").set(low)
            m.judge_calibration_bound.labels(*labels, statistic, "upper").set(high)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``judge_calibration``: one row per judge and quality dimension."""
        rows = []
        for (judge_id, dimension), calibration in aggregator.items("calibration"):
            assert isinstance(calibration, BinaryCalibration)
            rows.append({"judge_id": judge_id, "dimension": dimension, **calibration_row(calibration)})
        return {"judge_calibration": rows}


def calibration_row(calibration: BinaryCalibration) -> dict[str, Any]:
    """Counts, rates with intervals, ECE and reliability bins; NaN becomes ``None``."""
    summary = calibration.summary()
    row: dict[str, Any] = {}
    for name, value in summary.items():
        row[name] = interval_or_none(value) if name.endswith("_interval") else finite_or_none(value)
    for name in ("n", "tp", "fp", "fn", "tn", "n_scored"):
        row[name] = int(summary[name])
    row["reliability"] = [
        {k: finite_or_none(v) for k, v in b.items()} for b in calibration.reliability if b["n"]
    ]
    return row
