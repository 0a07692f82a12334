"""Agreement between each judge and the humans, per dimension (cumulative)."""

from __future__ import annotations

import math
from typing import Any

from detectors import AgreementTracker
from streams.aggregate import Aggregator, key
from streams.emit import Emit
from streams.metrics import Metrics


class AgreementView:
    kinds: tuple[str, ...] = ("pair",)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def apply(self, aggregator: Aggregator, pair: dict[str, Any], partition: int | None) -> list[Emit]:
        judge_id, dimension = pair["judge_id"], pair["dimension"]
        tracker = aggregator.update(
            key("agreement", judge_id, dimension),
            pair,
            partition,
            AgreementTracker,
            lambda t: t.update(pair["judge_label"], pair["human_label"]),
        )
        if tracker is not None:
            m = self.metrics
            labels = (m.label("judge_id", judge_id), m.label("dimension", dimension))
            m.agreement_ratio.labels(*labels).set(tracker.percent_agreement)
            m.cohen_kappa.labels(*labels).set(tracker.cohen_kappa)
            m.agreement_pairs.labels(*labels).set(tracker.n)
        return []

    @staticmethod
    def rows(aggregator: Aggregator) -> list[dict[str, Any]]:
        """Report rows, sorted by judge and dimension; undefined figures are ``None``."""
        rows = []
        for (judge_id, dimension), tracker in aggregator.items("agreement"):
            assert isinstance(tracker, AgreementTracker)
            rows.append(
                {
                    "judge_id": judge_id,
                    "dimension": dimension,
                    "n": tracker.n,
                    "percent_agreement": finite_or_none(tracker.percent_agreement),
                    "cohen_kappa": finite_or_none(tracker.cohen_kappa),
                    "confusion": tracker.confusion,
                }
            )
        return rows


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
