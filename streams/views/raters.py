"""Several humans on the same turn: consensus, reliability, and which annotators and vendors depart from it.

From ``raters`` observations (a turn's dimension once it has labels from two annotators, and again with
every later annotator's label; shard: ``humans``), one :class:`~detectors.rater_panel.RaterPanel` per
dimension under ``raters/<dimension>``: Krippendorff's alpha and Fleiss' kappa, the consensus (plurality)
label of each turn with ties counted, each annotator's and each vendor's agreement with the other
annotators' consensus, and each judge's agreement with the consensus of all annotators. An item published
again carries the version it supersedes (``replaces``): the panel takes that out before adding the new
one, so each turn counts once, with all its labels so far (and the judges known when it was published).
A dimension's labels after its first 32 count as ``other`` (``folded_labels`` in the report row says how
many of the labels held do; see :mod:`detectors.rater_panel`).
"""

from __future__ import annotations

from typing import Any

from detectors.rater_panel import RaterPanel
from streams.aggregate import Aggregator, key
from streams.emit import Emit
from streams.metrics import Metrics
from streams.views.agreement import Refresh, finite_or_none, interval_or_none, stats_row


class RatersView:
    kinds: tuple[str, ...] = ("raters",)

    def __init__(self, metrics: Metrics, refresh_every: int = 200, refresh_seconds: float = 60.0) -> None:
        self.metrics = metrics
        self.refresh = Refresh(refresh_every, refresh_seconds)

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        dimension = obs["dimension"]

        def replace(panel: RaterPanel) -> None:
            old = obs.get("replaces")
            if old is not None:  # the item again, with a later annotator's label: out with its last version
                panel.remove(old["labels"], old.get("vendors"), old.get("judges"))
            panel.update(obs["labels"], obs.get("vendors"), obs.get("judges"))

        panel = aggregator.update(key("raters", dimension), obs, partition, RaterPanel, replace)
        if panel is None or not self.refresh(dimension, obs["ts"]):
            return []
        m = self.metrics
        dim = m.label("dimension", dimension)
        if dim != dimension:  # folded into "other" by the metric guard: report.json only
            return []
        reliability = panel.reliability()
        m.raters_alpha.labels(dim).set(reliability.krippendorff_alpha)
        m.raters_fleiss_kappa.labels(dim).set(reliability.fleiss_kappa)
        m.raters_items.labels(dim).set(panel.n_items)
        m.raters_ties.labels(dim).set(panel.ties)
        for vendor, figures in panel.per_vendor.items():
            label = m.label("vendor_id", vendor)
            if label == vendor:  # a vendor the guard folds into "other" is in report.json only
                m.vendor_consensus_ratio.labels(label, dim).set(figures["agreement"])
        return []

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``raters``: one row per dimension."""
        rows = []
        for (dimension,), panel in aggregator.items("raters"):
            assert isinstance(panel, RaterPanel)
            reliability = panel.reliability()
            rows.append(
                {
                    "dimension": dimension,
                    "items": panel.n_items,
                    "raters_per_item": {str(m): n for m, n in reliability.raters_per_item.items()},
                    "consensus": panel.consensus_counts,
                    "ties": panel.ties,
                    "folded_labels": panel.folded_labels,
                    "krippendorff_alpha": finite_or_none(reliability.krippendorff_alpha),
                    "fleiss_kappa": finite_or_none(reliability.fleiss_kappa),
                    "fleiss_raters": reliability.fleiss_raters_used,
                    "fleiss_items": reliability.fleiss_items,
                    "pairwise_agreement": finite_or_none(reliability.pairwise_agreement),
                    "annotators": [
                        {"annotator_id": a, **_consensus_figures(f)} for a, f in panel.per_annotator.items()
                    ],
                    "vendors": [
                        {"vendor_id": v, **_consensus_figures(f)} for v, f in panel.per_vendor.items()
                    ],
                    "judges": [{"judge_id": j, **stats_row(panel.judge(j))} for j in panel.judges],
                }
            )
        return {"raters": rows}


def _consensus_figures(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        **figures,
        "agreement": finite_or_none(figures["agreement"]),
        "agreement_interval": interval_or_none(figures["agreement_interval"]),
        "kappa": finite_or_none(figures["kappa"]),
    }
