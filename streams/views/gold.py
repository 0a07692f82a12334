"""Accuracy on the golden set (``CONVOWATCH_GOLDEN``): each vendor, annotator and judge against known truth.

The join's observations of golden-set turns (``streams/join_gold.py``), one per rater record as it is
read, whether or not the join holds the chat turn: ``gold_label`` (shard ``humans``) feeds
``gold_vendor/<vendor>`` and ``gold_annotator/<vendor>/<annotator>``, ``gold_verdict`` (shard: the judge)
feeds ``gold_judge/<judge>``. (Until 2026-11-26 ``labelled`` and ``judged`` fed them: a label that never
met its turn in the join, evicted before it or never sent, was not scored.) Each is a
:class:`~detectors.keyed.KeyedDetectors` of :class:`~detectors.ClassAccuracy` by dimension, plus ``*`` for
all dimensions pooled; and per golden item (turn and dimension), how many labels missed it, to tell a
wrong expected answer from the raters' mistakes (:mod:`streams.views.gold_items`). Dimensions absent from a
turn's golden labels are not scored. Past the first ``max_vendors`` vendors, and ``max_annotators``
annotators in all, new ones are scored together as ``other`` (``CONVOWATCH_VENDOR_SLA``'s caps, as the
scorecards): annotators come and go over the years, and their aggregates would otherwise grow without end.
On Kafka every label is on the shard ``humans``, so one worker holds them all, and a restarted one admits
the recovered vendors and annotators first.
"""

from __future__ import annotations

from typing import Any

from detectors import ClassAccuracy
from detectors.keyed import KeyedDetectors
from streams.aggregate import Aggregator, key
from streams.emit import SEP, Emit
from streams.golden import GoldenSet
from streams.labels import OTHER, LabelGuard
from streams.metrics import Metrics
from streams.views.agreement import finite_or_none, interval_or_none
from streams.views.gold_items import GoldItems

ALL = "*"


def _accuracies() -> KeyedDetectors:
    return KeyedDetectors("ClassAccuracy")


class GoldView:
    kinds: tuple[str, ...] = ("gold_label", "gold_verdict")

    def __init__(
        self, metrics: Metrics, golden: GoldenSet, max_vendors: int = 50, max_annotators: int = 100
    ) -> None:
        self.metrics = metrics
        self.golden = golden
        self.max_vendors = max_vendors
        self.max_annotators = max_annotators
        self._guard_vendors = LabelGuard(max_vendors)
        self._annotators: set[tuple[str, str]] = set()  # (vendor, annotator) with rows of their own
        self.items = GoldItems(metrics, golden)  # per golden item: report.json ``gold.items``

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the vendors and annotators of the recovered aggregates first: with a fresh process's guards,
        a newcomer could take the room of one whose figures are in the store."""
        self._guard_vendors = LabelGuard(self.max_vendors)
        self._guard_vendors.admit(k.split(SEP, 1)[1] for k, _ in aggregator.records("gold_vendor"))
        recovered = (k.split(SEP)[1:] for k, _ in aggregator.records("gold_annotator"))
        self._annotators = {(v, a) for v, a in recovered if OTHER not in (v, a)}
        self.items.rebalanced(aggregator)

    def _vendor_and_annotator(self, vendor: str, annotator: str) -> tuple[str, str]:
        """The vendor and annotator a label is scored under: themselves, or ``other`` past the caps."""
        vendor = self._guard_vendors(vendor)
        if vendor == OTHER:
            return OTHER, OTHER
        if (vendor, annotator) in self._annotators:
            return vendor, annotator
        if len(self._annotators) < self.max_annotators:
            self._annotators.add((vendor, annotator))
            return vendor, annotator
        return vendor, OTHER

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        truth = self.golden.get(obs["turn_id"])
        if truth is None:
            return []
        labels: dict[str, str] = obs["labels"]
        scored = [(dim, labels[dim], label) for dim, label in truth.items() if dim in labels]
        if not scored:
            return []

        def score(keyed: KeyedDetectors) -> None:
            for dim, given, true in scored:
                keyed.update(dim, given, true)
                keyed.update(ALL, given, true)

        m = self.metrics
        if obs["kind"] == "gold_label":
            vendor, annotator = self._vendor_and_annotator(obs["vendor_id"], obs["annotator_id"])
            keyed = aggregator.update(key("gold_vendor", vendor), obs, partition, _accuracies, score)
            aggregator.update(key("gold_annotator", vendor, annotator), obs, partition, _accuracies, score)
            gauge, raw = m.vendor_gold_accuracy, obs["vendor_id"]
            who = m.label("vendor_id", vendor)
            self.items.score(aggregator, obs, partition, truth, vendor)
        else:
            keyed = aggregator.update(key("gold_judge", obs["judge_id"]), obs, partition, _accuracies, score)
            gauge, raw = m.judge_gold_accuracy, obs["judge_id"]
            who = m.label("judge_id", raw)
            self.items.score(aggregator, obs, partition, truth, raw)
        if keyed is not None and who == raw:  # one folded into "other" by the label guard: report.json only
            for dim in (*(d for d, _, _ in scored), ALL):
                dimension = dim if dim == ALL else m.label("dimension", dim)
                if dimension == dim:  # (each vendor's accuracy in one "other" series: the last one wins)
                    gauge.labels(who, dimension).set(keyed.get(dim).accuracy)
        return []

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``gold``: the golden set's size, accuracy rows per vendor, annotator and judge, and the golden
        items most worth a look (:meth:`GoldItems.report`)."""
        return {
            "gold": {
                "turns": len(self.golden),
                "vendors": self._rows(aggregator, "gold_vendor", ("vendor_id",)),
                "annotators": self._rows(aggregator, "gold_annotator", ("vendor_id", "annotator_id")),
                "judges": self._rows(aggregator, "gold_judge", ("judge_id",)),
                **self.items.report(aggregator),
            }
        }

    @staticmethod
    def _rows(aggregator: Aggregator, prefix: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = []
        for parts, keyed in aggregator.items(prefix):
            assert isinstance(keyed, KeyedDetectors)
            for dimension, accuracy in keyed.items():
                assert isinstance(accuracy, ClassAccuracy)
                rows.append(
                    {
                        **dict(zip(names, parts, strict=True)),
                        "dimension": dimension,
                        "n": accuracy.n,
                        "accuracy": finite_or_none(accuracy.accuracy),
                        "accuracy_interval": interval_or_none(accuracy.accuracy_interval),
                        "confusion": accuracy.confusion,
                    }
                )
        return rows
