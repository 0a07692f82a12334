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
A vendor or annotator with no gold label for ``idle_seconds`` of label time (30 days) is dropped, its
aggregate and its gauges with it, and its room goes to the next new one: looked for at the first gold label
of each day of label time and at the first after a start, measured from the day's start
(:class:`~streams.views.idle_looks.IdleLooks`), so that a restart does not change what is dropped when.
Until 2026-11-26 the first 100 annotators ever seen held their rooms for good, and after turnover every new
annotator was scored as ``<vendor>/other``. Nothing here is an alarm (a vendor's gold accuracy SLA is
judged on its scorecard, :mod:`streams.views.vendors`), so nothing is kept for one. On Kafka every label
is on the shard ``humans``, so one worker holds them all, and a restarted one admits the recovered vendors
and annotators first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detectors import ClassAccuracy
from detectors.keyed import KeyedDetectors
from streams.aggregate import Aggregator, key
from streams.emit import SEP, Emit
from streams.golden import GoldenSet
from streams.labels import OTHER, LabelGuard
from streams.metrics import Metrics
from streams.views.agreement_report import finite_or_none, interval_or_none
from streams.views.gold_items import GoldItems
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks

ALL = "*"
VENDOR, ANNOTATOR = "gold_vendor", "gold_annotator"
#: The owner of the gold labels' looks for idle vendors and annotators (every label is on this shard).
HUMANS = "humans"


def _accuracies() -> KeyedDetectors:
    return KeyedDetectors("ClassAccuracy")


def _stamp(ts: float) -> Callable[[KeyedDetectors], KeyedDetectors]:
    return lambda keyed: keyed.stamp(ts)


class GoldView:
    kinds: tuple[str, ...] = ("gold_label", "gold_verdict")

    def __init__(
        self,
        metrics: Metrics,
        golden: GoldenSet,
        max_vendors: int = 50,
        max_annotators: int = 100,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.golden = golden
        self.max_vendors = max_vendors
        self.max_annotators = max_annotators
        self.idle_seconds = idle_seconds
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._guard_vendors = LabelGuard(max_vendors)
        self._annotators: set[tuple[str, str]] = set()  # (vendor, annotator) with rows of their own
        # derived, never persisted: the vendors' and annotators' aggregates (those built, and the recovered
        # ones), each key with its parts after the prefix, looked through for idle ones
        self._rater_keys: dict[str, list[str]] = {}
        self.items = GoldItems(metrics, golden)  # per golden item: report.json ``gold.items``

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the vendors and annotators of the recovered aggregates first: with a fresh process's guards,
        a newcomer could take the room of one whose figures are in the store."""
        self._rater_keys = {
            k: k.split(SEP)[1:] for prefix in (VENDOR, ANNOTATOR) for k, _ in aggregator.records(prefix)
        }
        self._guard_vendors = LabelGuard(self.max_vendors)
        self._guard_vendors.admit(parts[0] for parts in self._rater_keys.values() if len(parts) == 1)
        recovered = (parts for parts in self._rater_keys.values() if len(parts) == 2)
        self._annotators = {(v, a) for v, a in recovered if OTHER not in (v, a)}
        self._looks.forget()
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

        label_ts = obs["label_ts"] if obs["kind"] == "gold_label" else None  # the vendors' and annotators'

        def score(keyed: KeyedDetectors) -> None:
            for dim, given, true in scored:
                keyed.update(dim, given, true, ts=label_ts)
                keyed.update(ALL, given, true, ts=label_ts)

        m = self.metrics
        if label_ts is not None:
            vendor, annotator = self._vendor_and_annotator(obs["vendor_id"], obs["annotator_id"])
            keyed = self._score(aggregator, obs, partition, (vendor,), score)
            self._score(aggregator, obs, partition, (vendor, annotator), score)
            gauge, raw = m.vendor_gold_accuracy, obs["vendor_id"]
            who = m.label("vendor_id", vendor)
            self.items.score(aggregator, obs, partition, truth, vendor)
            now = self._looks.due(HUMANS, label_ts)
            if now is not None:  # after scoring: an aggregate this label updated has its time
                self._drop_idle(aggregator, obs, partition, now)
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

    def _score(
        self,
        aggregator: Aggregator,
        obs: dict[str, Any],
        partition: int | None,
        parts: tuple[str, ...],
        score: Callable[[KeyedDetectors], None],
    ) -> Any:
        """Score ``obs`` on the aggregate of a vendor (``parts``: itself) or annotator (vendor, annotator)."""
        rater_key = key(VENDOR if len(parts) == 1 else ANNOTATOR, *parts)
        if rater_key not in self._rater_keys:
            self._rater_keys[rater_key] = list(parts)
        return aggregator.update(rater_key, obs, partition, _accuracies, score)

    def _drop_idle(
        self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None, now: float
    ) -> None:
        """Delete the aggregates of the vendors and annotators with no label for ``idle_seconds`` before
        ``now`` (to the changelog ``partition`` of the labels, with ``obs``), and their gauges, and give their
        room to new ones. An aggregate with no label time (state from before 2026-11-26) is stamped ``now``:
        idle from then on, written so (not on a replay of ``obs``: stamped at the next look)."""
        horizon = now - self.idle_seconds
        for rater_key, parts in sorted(self._rater_keys.items()):
            keyed = aggregator.detector(rater_key)
            if not isinstance(keyed, KeyedDetectors):  # never made (a replay), or deleted
                del self._rater_keys[rater_key]
                continue
            if not keyed.last_seen:
                keyed = aggregator.update(rater_key, obs, partition, _accuracies, _stamp(now)) or keyed
            seen = keyed.last_seen.values()
            if not seen or max(seen) >= horizon:
                continue
            aggregator.delete(rater_key, partition)
            del self._rater_keys[rater_key]
            if len(parts) == 2:
                self._annotators.discard((parts[0], parts[1]))
            elif parts[0] != OTHER:  # the gauges of a vendor folded by the metric guard are not its own
                self.metrics.vendor_gold_accuracy.remove_by_labels({"vendor_id": parts[0]})
        self._guard_vendors.retain(parts[0] for parts in self._rater_keys.values() if len(parts) == 1)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``gold``: the golden set's size, accuracy rows per vendor, annotator and judge, and the golden
        items most worth a look (:meth:`GoldItems.report`)."""
        return {
            "gold": {
                "turns": len(self.golden),
                "vendors": self._rows(aggregator, VENDOR, ("vendor_id",)),
                "annotators": self._rows(aggregator, ANNOTATOR, ("vendor_id", "annotator_id")),
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
