"""How human labels flow: labelling coverage, label latency and volume per vendor (Prometheus only).

- ``convowatch_turns_judged_total{judge_id, journey}``: once per judge and turn (its first ``judged``
  observation: a judge's verdict met its turn; a later verdict of the judge with more dimensions adds none);
- ``convowatch_turns_labelled_total{judge_id, journey}``: once per judge and turn that has both the judge's
  verdict and a human label not on a gold item, whichever came first (``covered`` of ``judged`` and
  ``labelled``); over the former it is the labelling coverage (it counted every annotator, and nothing
  when the label came first);
- ``convowatch_human_labels_total{vendor_id}`` and ``convowatch_label_latency_seconds{vendor_id}``: once per
  annotator and turn (its first ``labelled`` observation; a later label of theirs with more dimensions adds
  none), the latency being the label's event time minus the turn's (negative clock skew counts as 0).

Counters keep no aggregate state: an observation replayed after a crash is counted again by the restarted
worker, as the defect counters are. Coverage per judge, dimension and journey, from state, is in
report.json (``defect_rates``: ``n_labelled`` / ``n_judged``).
"""

from __future__ import annotations

from typing import Any

from streams.aggregate import Aggregator
from streams.emit import Emit
from streams.metrics import Metrics
from streams.views.label_cache import LabelCache


class LabelFlowView:
    kinds: tuple[str, ...] = ("judged", "labelled")

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        m = metrics
        self._judged = LabelCache(lambda raw: self._judge_child(m.turns_judged, *raw))
        self._labelled = LabelCache(lambda raw: self._judge_child(m.turns_labelled, *raw))
        self._vendors = LabelCache(self._vendor_children)

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        journey = (obs["segment"] or {}).get("journey")
        if obs["kind"] == "judged":
            if not obs.get("update"):  # a judge's later verdict on the turn is not another judged turn
                self._judged[obs["judge_id"], journey].inc()
            if obs.get("covered"):
                self._labelled[obs["judge_id"], journey].inc()
            return []
        for judge_id in obs.get("covered", obs["judges"]):  # observations from before: every judge
            self._labelled[judge_id, journey].inc()
        if obs.get("update"):
            return []
        labels, latency = self._vendors[obs["vendor_id"]]
        labels.inc()
        latency.observe(max(obs["label_ts"] - obs["ts"], 0.0))
        return []

    def _judge_child(self, metric: Any, judge_id: str, journey: str | None) -> Any:
        m = self.metrics
        return metric.labels(m.label("judge_id", judge_id), m.label("journey", journey))

    def _vendor_children(self, vendor: str) -> tuple[Any, Any]:
        label = self.metrics.label("vendor_id", vendor)
        return self.metrics.human_labels.labels(label), self.metrics.label_latency.labels(label)
