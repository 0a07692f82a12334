"""The aggregation stage: observations from the join, applied exactly once to keyed aggregates.

On Kafka, observations are repartitioned by a shard key (the judge, for agreement) so one worker holds
each aggregate and the figures are global, not per partition. Each aggregate remembers, per source input
partition, the last (offset, sequence) it applied: a replay after a crash re-delivers observations with
the same source positions, and they are skipped instead of counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from detectors import AgreementTracker
from detectors.base import Detector
from streams.join import SEP, Emit
from streams.metrics import Metrics
from streams.state import DictStore, StateStore, WriteBehind


class Aggregate:
    """A detector plus the source positions already applied to it."""

    __slots__ = ("applied", "detector")

    def __init__(self, detector: Detector, applied: dict[str, list[int]] | None = None) -> None:
        self.detector = detector
        self.applied = applied if applied is not None else {}

    def encode(self) -> dict[str, Any]:
        return {"applied": self.applied, "detector": self.detector.to_dict()}

    def first_time(self, src: list[Any]) -> bool:
        """Record ``src`` = [source, offset, seq]; False if it was applied already (a replay)."""
        source, offset, seq = src
        if offset is None:  # no position (generated input): nothing to replay
            return True
        last = self.applied.get(source)
        if last is not None and [offset, seq] <= last:
            return False
        self.applied[source] = [offset, seq]
        return True


DETECTORS: dict[str, type[Detector]] = {"AgreementTracker": AgreementTracker}


class Aggregator:
    """Applies observations by kind; values in the store are :meth:`Aggregate.encode` dicts."""

    def __init__(self, metrics: Metrics, store: StateStore | None = None, autoflush: bool = True) -> None:
        self.metrics = metrics
        self.store: StateStore = store if store is not None else DictStore()
        self.state = WriteBehind(self.store)
        self.autoflush = autoflush
        self.duplicates = 0
        self._handlers: dict[str, Callable[[dict[str, Any], int | None], list[Emit]]] = {
            "pair": self._pair,
        }

    def apply(self, observation: dict[str, Any], partition: int | None = None) -> list[Emit]:
        emits = self._handlers[observation["kind"]](observation, partition)
        if self.autoflush:
            self.flush()
        return emits

    def flush(self) -> int:
        return self.state.flush(Aggregate.encode)

    def _update(
        self,
        key: str,
        observation: dict[str, Any],
        partition: int | None,
        make: Callable[[], Detector],
        apply: Callable[[Any], None],
    ) -> Any:
        """Apply ``observation`` to the aggregate at ``key`` once; its detector, or None for a replay."""
        value = self.state.get(key)
        new = value is None
        if new:
            aggregate = Aggregate(make())
        elif isinstance(value, Aggregate):
            aggregate = value
        else:
            detector = DETECTORS[value["detector"]["type"]].from_dict(value["detector"])
            aggregate = Aggregate(detector, value["applied"])
        if not aggregate.first_time(observation["src"]):
            self.duplicates += 1
            self.state.live[key] = aggregate
            return None
        apply(aggregate.detector)
        self.state.touch(key, aggregate, partition, new=new)
        return aggregate.detector

    # -- agreement ---------------------------------------------------------------------------------

    def _pair(self, pair: dict[str, Any], partition: int | None) -> list[Emit]:
        judge_id, dimension = pair["judge_id"], pair["dimension"]
        tracker = self._update(
            f"agreement{SEP}{judge_id}{SEP}{dimension}",
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

    # -- reading -----------------------------------------------------------------------------------

    def agreement_rows(self) -> list[dict[str, Any]]:
        """Report rows, sorted by judge and dimension; undefined figures are ``None``."""
        self.flush()
        rows = []
        for key, value in sorted(self.store.items()):
            kind, *parts = key.split(SEP)
            if kind != "agreement":
                continue
            judge_id, dimension = parts
            tracker = AgreementTracker.from_dict(value["detector"])
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
