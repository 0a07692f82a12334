"""Agreement between each judge and the humans, per dimension, from the join's pairs.

Keyed by ``judge_id``/``dimension``: on Kafka the pairs are repartitioned by that key, so one worker
holds each tracker and the figures are global, not per partition.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

from detectors import AgreementTracker
from streams.join import SEP
from streams.metrics import Metrics


class AgreementAggregator:
    """Feeds judge/human pairs to one :class:`AgreementTracker` per judge and dimension."""

    def __init__(self, metrics: Metrics, store: MutableMapping[str, dict[str, Any]] | None = None) -> None:
        self.metrics = metrics
        self.store: MutableMapping[str, dict[str, Any]] = store if store is not None else {}

    def update(self, pair: dict[str, Any]) -> AgreementTracker:
        key = f"{pair['judge_id']}{SEP}{pair['dimension']}"
        saved = self.store.get(key)
        tracker = AgreementTracker.from_dict(saved) if saved is not None else AgreementTracker()
        tracker.update(pair["judge_label"], pair["human_label"])
        self.store[key] = tracker.to_dict()
        self._export(pair["judge_id"], pair["dimension"], tracker)
        return tracker

    def _export(self, judge_id: str, dimension: str, tracker: AgreementTracker) -> None:
        m = self.metrics
        labels = (m.label("judge_id", judge_id), m.label("dimension", dimension))
        m.agreement_ratio.labels(*labels).set(tracker.percent_agreement)
        m.cohen_kappa.labels(*labels).set(tracker.cohen_kappa)
        m.agreement_pairs.labels(*labels).set(tracker.n)

    def rows(self) -> list[dict[str, Any]]:
        """Report rows, sorted by judge and dimension; undefined figures are ``None``."""
        rows = []
        for key in sorted(self.store):
            judge_id, dimension = key.split(SEP)
            tracker = AgreementTracker.from_dict(self.store[key])
            rows.append(
                {
                    "judge_id": judge_id,
                    "dimension": dimension,
                    "n": tracker.n,
                    "percent_agreement": _finite_or_none(tracker.percent_agreement),
                    "cohen_kappa": _finite_or_none(tracker.cohen_kappa),
                    "confusion": tracker.confusion,
                }
            )
        return rows


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
