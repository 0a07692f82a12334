"""Every Prometheus metric convowatch exports, built in one place on an injectable registry.

The metrics are declared by family in ``metrics_*.py`` (pipeline, divergence, labelling, models,
outcomes); :class:`Metrics` builds them all on one registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from schemas.common import QUALITY_DIMENSIONS
from streams.labels import OTHER, FoldedLabelValues, LabelGuard
from streams.metrics_divergence import DivergenceMetrics
from streams.metrics_labelling import LabellingMetrics
from streams.metrics_models import ModelMetrics
from streams.metrics_outcomes import OutcomeMetrics
from streams.metrics_pipeline import SEGMENT_LABELS, PipelineMetrics
from streams.series_budget import CappedFamily, FoldedUpdates
from streams.taxonomy import SEVERITIES

__all__ = ["SEGMENT_LABELS", "Metrics"]


class Metrics(PipelineMetrics, DivergenceMetrics, LabellingMetrics, ModelMetrics, OutcomeMetrics):
    """The metrics of one convowatch process. Nothing registers on import: pass a fresh registry in tests.

    Label values are bounded: streams, reasons, topics and kinds come from fixed sets or configuration;
    segment values, judge ids and dimensions pass through a :class:`LabelGuard` (the quality dimensions
    always pass). The families with such labels have a series budget too (``capped``: see
    :mod:`streams.series_budget`), so that their combinations stay bounded whatever values pass.
    """

    def __init__(self, registry: CollectorRegistry | None = None, label_max_values: int = 20) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.guards = {
            name: LabelGuard(label_max_values) for name in (*SEGMENT_LABELS, "judge_id", "vendor_id")
        }
        # the quality dimensions always pass: a judge's custom rubric seen first must not take their room
        self.guards["dimension"] = LabelGuard(max(label_max_values, 32), reserved=QUALITY_DIMENSIONS)
        self.guards["intent"] = LabelGuard(label_max_values)
        self.guards["score"] = LabelGuard(label_max_values)  # perceptual score names (JudgeVerdict.scores)
        self.guards["judge_version"] = LabelGuard(label_max_values)  # agreement per judge version

        self._build_pipeline_metrics(r)
        self._build_divergence_metrics(r)
        self._build_labelling_metrics(r)
        self._build_model_metrics(r)
        self._build_outcome_metrics(r)
        self.capped = [family for family in vars(self).values() if isinstance(family, CappedFamily)]
        r.register(FoldedUpdates(self.capped))
        r.register(FoldedLabelValues(self.guards))

    def zero_known_children(self, streams: list[str], reasons: list[str], topics: list[str]) -> None:
        """Create the label children that are known in advance at 0, so ``increase()`` over a counter sees
        its first event and dashboards show 0 rather than no data."""
        for stream in streams:
            self.records_in.labels(stream)
            self.records_valid.labels(stream)
            self.records_miskeyed.labels(stream)
            self.records_misrouted.labels(stream)
            self.records_clock_ahead.labels(stream)
            self.duplicates.labels(stream)
            self.label_conflicts.labels(stream)
            for reason in reasons:
                self.records_deadlettered.labels(stream, reason)
        for topic in topics:
            self.outputs.labels(topic)
        for reason in ("ttl", "capacity"):
            self.join_evictions.labels(reason)
        for stream in ("judge_verdicts", "human_labels"):
            self.join_unmatched.labels(stream)
        for result in ("kept", "gone"):
            self.join_review_keeps.labels(result)
        for stage in ("aggregate", "publish"):
            self.internal_errors.labels(stage)  # so that an alert on increase() sees the first one
        for table in ("pending", "aggregates"):
            self.state_oversized.labels(table)
        for kind in ("high_risk_failure", "defect_spike", "judge_drift", "volume_anomaly", "latency_anomaly"):
            for severity in SEVERITIES:
                self.escalations.labels(kind, severity)
        for severity in SEVERITIES:  # only human review resolves an escalation, of high-risk failures
            self.escalations_overturned.labels("high_risk_failure", severity)

    def label(self, name: str, value: str | None) -> str:
        """``value`` made safe for label ``name``."""
        return self.guards[name](value)

    def recovered_label(self, name: str, value: str | None) -> str:
        """``value`` made safe for label ``name`` for figures recovered from state: as :meth:`label`, but a
        value the guard would fold is ``other`` without counting as folded (the caller leaves it unexported:
        ``convowatch_label_value_folds_total`` is about new values)."""
        return self.guards[name].unless_folded(value) or OTHER

    def admitted_label(self, name: str, value: str | None) -> str:
        """``value``'s label for label ``name`` if its guard passes it already, else ``other`` (the caller
        leaves it unexported): for re-exporting figures recovered from state after a rebalance without
        letting old values take the guard's room (a fresh worker's guards fill with the values live traffic
        brings, and the agreement gauges admit judges newest first)."""
        return self.guards[name].admitted(value) or OTHER

    def settled_label(self, name: str, value: str | None) -> str | None:
        """``value``'s label for label ``name`` if its guard passes it already, ``other`` if the guard would
        fold it (as :meth:`label` does, without counting it), None if it could still take the guard's room:
        for re-exporting figures that the live path publishes under ``other`` too (the version tests')."""
        return self.guards[name].settled(value)
