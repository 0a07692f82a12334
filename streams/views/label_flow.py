"""How human labels flow: labelling coverage, label latency and volume per vendor (Prometheus only).

- ``convowatch_turns_judged_total{judge_id, journey}``: one per ``judged`` observation (a judge's verdict
  met its turn);
- ``convowatch_turns_labelled_total{judge_id, journey}``: one per judge already on the turn when an
  annotator's label met it (``labelled``); over the former it is the labelling coverage;
- ``convowatch_human_labels_total{vendor_id}`` and ``convowatch_label_latency_seconds{vendor_id}``: one per
  ``labelled`` observation, the latency being the label's event time minus the turn's (negative clock
  skew counts as 0).

Counters keep no aggregate state: an observation replayed after a crash is counted again by the restarted
worker, as the defect counters are. Coverage per judge, dimension and journey, from state, is in
report.json (``defect_rates``: ``n_labelled`` / ``n_judged``).
"""

from __future__ import annotations

from typing import Any

from streams.aggregate import Aggregator
from streams.emit import Emit
from streams.metrics import Metrics

#: Label children cached per raw label values; cleared past this size (values are unbounded upstream).
MAX_CACHED = 10_000


class LabelFlowView:
    kinds: tuple[str, ...] = ("judged", "labelled")

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._judged: dict[tuple[str, str | None], Any] = {}
        self._labelled: dict[tuple[str, str | None], Any] = {}
        self._vendors: dict[str, tuple[Any, Any]] = {}

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        journey = (obs["segment"] or {}).get("journey")
        if obs["kind"] == "judged":
            self._child(self._judged, self.metrics.turns_judged, obs["judge_id"], journey).inc()
            return []
        for judge_id in obs["judges"]:
            self._child(self._labelled, self.metrics.turns_labelled, judge_id, journey).inc()
        vendor = obs["vendor_id"]
        children = self._vendors.get(vendor)
        if children is None:
            if len(self._vendors) >= MAX_CACHED:
                self._vendors.clear()
            label = self.metrics.label("vendor_id", vendor)
            children = self._vendors[vendor] = (
                self.metrics.human_labels.labels(label),
                self.metrics.label_latency.labels(label),
            )
        labels, latency = children
        labels.inc()
        latency.observe(max(obs["label_ts"] - obs["ts"], 0.0))
        return []

    def _child(
        self, cache: dict[tuple[str, str | None], Any], metric: Any, judge_id: str, journey: str | None
    ) -> Any:
        child = cache.get((judge_id, journey))
        if child is None:
            if len(cache) >= MAX_CACHED:
                cache.clear()
            m = self.metrics
            child = cache[(judge_id, journey)] = metric.labels(
                m.label("judge_id", judge_id), m.label("journey", journey)
            )
        return child
