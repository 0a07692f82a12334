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

A panel keeps 1,000 annotators and 100 vendors of their own, later ones pooled as ``other``, and drops
those with no item for ``idle_seconds`` (30 days) of label time (an item's time is its latest label's, so
an annotator whose turn another labels later is seen again), their series with them, so that the next new
ones take their room: looked for at a dimension's first item of each day of label time and at its first
after a start, measured from the day's start (:class:`~streams.views.idle_looks.IdleLooks`), so that a
restart does not change what is dropped when. Until 2026-11-26 the first 1,000 annotators and 100 vendors
ever seen held their rooms for good. The panel has no alarm, so none is kept for one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from detectors.rater_panel import RaterPanel
from streams.aggregate import Aggregator, key
from streams.emit import Emit
from streams.metrics import Metrics
from streams.views.agreement_report import finite_or_none, interval_or_none, stats_row
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.refresh import Refresh


class RatersView:
    kinds: tuple[str, ...] = ("raters",)

    def __init__(
        self,
        metrics: Metrics,
        refresh_every: int = 200,
        refresh_seconds: float = 60.0,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.refresh = Refresh(refresh_every, refresh_seconds)
        self.idle_seconds = idle_seconds
        self._looks = IdleLooks.per_idle(idle_seconds)  # derived, never persisted: per dimension

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Look for idle annotators and vendors at each dimension's first item after a start; refresh afresh
        (see ``AgreementView.rebalanced``)."""
        self._looks.forget()
        self.refresh.forget()

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        dimension = obs["dimension"]
        ts = obs.get("label_ts", obs["ts"])
        dropped: list[str] = []  # vendors

        def replace(panel: RaterPanel) -> None:
            old = obs.get("replaces")
            if old is not None:  # the item again, with a later annotator's label: out with its last version
                panel.remove(old["labels"], old.get("vendors"), old.get("judges"), old.get("label_ts"))
            now = self._looks.due(dimension, ts)
            if now is not None:  # written with the item (not on a replay of it)
                dropped.extend(panel.drop_idle(now, self.idle_seconds)[1])
            panel.update(obs["labels"], obs.get("vendors"), obs.get("judges"), ts)

        panel = aggregator.update(key("raters", dimension), obs, partition, RaterPanel, replace)
        m = self.metrics
        if dropped and m.label("dimension", dimension) == dimension:  # their series, if they had any
            for vendor in dropped:
                m.vendor_consensus_ratio.remove_by_labels({"vendor_id": vendor, "dimension": dimension})
        if panel is not None and self.refresh(dimension, obs["ts"]):
            self._export(panel, dimension, m.label)
        return []

    def export_pending(self, aggregator: Aggregator) -> None:
        """The gauges of each dimension with items since its last refresh."""
        for dimension in self.refresh.pending():
            panel = aggregator.detector(key("raters", dimension))
            if isinstance(panel, RaterPanel):
                self._export(panel, dimension, self.metrics.recovered_label)

    def export_owned(self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]) -> None:
        """After a rebalance, the gauges of the recovered panels at ``keys``, if this worker owns
        ``humans``."""
        if not owns("humans"):  # the shard of every panel (its key's first part is the dimension)
            return
        for parts, panel in aggregator.owned_detectors(keys, "raters", lambda dimension: True):
            if len(parts) == 1 and isinstance(panel, RaterPanel):
                self._export(panel, parts[0], self.metrics.admitted_label)

    def _export(self, panel: RaterPanel, dimension: str, label_of: Callable[[str, str | None], str]) -> None:
        m = self.metrics
        dim = label_of("dimension", dimension)
        if dim != dimension:  # folded into "other" by the metric guard: report.json only
            return
        reliability = panel.reliability()
        m.raters_alpha.labels(dim).set(reliability.krippendorff_alpha)
        m.raters_fleiss_kappa.labels(dim).set(reliability.fleiss_kappa)
        m.raters_items.labels(dim).set(panel.n_items)
        m.raters_ties.labels(dim).set(panel.ties)
        for vendor, figures in panel.per_vendor.items():
            label = label_of("vendor_id", vendor)
            if label == vendor:  # a vendor the guard folds into "other" is in report.json only
                m.vendor_consensus_ratio.labels(label, dim).set(figures["agreement"])

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
