"""Labelling vendors and annotators: scorecards over a sliding window of label time, and SLAs.

From ``labelled`` (one annotator's labels on a turn), ``raters`` (a turn's dimension labelled by several
annotators) and ``gold_label`` (an annotator's labels on a golden turn) observations, all on the shard
``humans``, one :class:`~detectors.vendor_scorecard.VendorScorecard` under ``vendor_scorecard``, windowed
as ``CONVOWATCH_VENDOR_SLA`` says (``streams/vendor_sla.py``):

- each label counts at its own event time, with its turnaround: label time minus the turn's time (no
  review-request time reaches the join, so the turn is the start);
- gold: on golden-set turns (``CONVOWATCH_GOLDEN``), each dimension of the truth the label has is one item,
  at the label's time, whether or not the join held the turn (``gold_label``: ``streams/join_gold.py``);
- judge: each dimension the label shares with a judge's verdict on the turn (judges known when the label
  met the turn) is one comparison;
- consensus: each annotator of a ``raters`` item against the plurality of the others (ties not scored,
  as :class:`~detectors.rater_panel.RaterPanel` does), when the item is complete: at its latest label's
  time or its turn's, whichever is later (at the turn's, a second label a day after its turn fell out of
  a 24 h window as too late). An item published again with a later annotator's label (``replaces``: the
  version it supersedes) takes that version's comparisons out of their bucket if it is still in the
  window (one that left the window took them along), and counts its own at its new time: the window
  holds each item once, its latest version, with every label scored once against the others' consensus.
  A version a later judge makes has the same comparisons at the same time, and changes nothing.

Once label event time has moved ``evaluate_every_seconds`` past the last evaluation, every vendor's SLAs
are judged and a :class:`~detectors.sla_status.SlaStatus` under ``vendor_sla`` records breaches: a
breach opens when the figure's upper confidence bound is below the target (``streams/vendor_sla.py``) and
publishes a ``vendor_sla`` escalation (id per vendor, SLA and episode; the estimate and the bound in its
evidence; for gold accuracy, ``turn_ids``: the golden turns the vendor missed most recently,
:meth:`VendorScorecard.missed_gold`, as they are at each revision), re-published with the next revision
every ``republish_seconds`` while it lasts, and resolved once the estimate is back on target, or the
window no longer holds enough to judge it by
(``closed_without_evidence`` in the evidence, and ``closed_without_labels`` when no label at all is left:
too few gold items is enough), or once the vendor has no target for it any more (``closed_without_target``:
set to null, as for a vendor that has left). Silence is evidence for labels per hour: a vendor with that
target keeps its
slot in the scorecard (``VendorScorecard.hold``) after its last label leaves the window, to be judged at 0
labels over it, and for as long as its throughput breach is open, which only its labels back on target
close (its other SLAs close for want of labels). Any other vendor none of whose labels the window holds
has lost its slot: it is judged (to close what it has open) and exported no more; 30 days of label time
later the status forgets it, as it does an SLA the vendor has no target for any more (exported at 0
until then; :meth:`SlaStatus.forget`: never an open breach). Both aggregates go through
:meth:`Aggregator.update`, so a replayed observation is skipped and publishes nothing, and the evaluation
depends on the stream only. Vendor gauges are set at each evaluation; report.json has a ``vendors``
section with every vendor's and annotator's scorecard and the SLA verdicts. Items older than the window
(``too_late``) also count in ``convowatch_vendor_labels_too_late_total`` as they are dropped.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from detectors.exceptions import NotHeldError
from detectors.multi_rater import leave_one_out
from detectors.sla_status import SlaStatus
from detectors.vendor_scorecard import ALL, OTHER, Scorecard, VendorScorecard
from streams.aggregate import Aggregator
from streams.emit import Emit, iso
from streams.golden import GoldenSet
from streams.metrics import Metrics
from streams.vendor_sla import SLAS, VendorSla, Verdict, silence_judged
from streams.views.agreement_report import finite_or_none
from streams.views.vendor_escalation import sla_escalation
from streams.views.vendor_figures import figures

SCORECARD = "vendor_scorecard"
STATUS = "vendor_sla"
#: The shard key of ``labelled`` and ``raters`` observations (``streams/join_observations.py``): the shard of
#: both aggregates.
SHARD = "humans"
QUANTILES = (0.5, 0.9)
#: The gauges (Metrics attributes) set per vendor at each evaluation, with a ``vendor_id`` label
VENDOR_GAUGES = (
    "vendor_labels_per_hour",
    "vendor_turnaround",
    "vendor_window_gold_accuracy",
    "vendor_window_judge_agreement",
    "vendor_window_consensus_agreement",
    "vendor_sla_breached",
)

#: (vendor, annotator, turnaround, gold, judge, consensus) after the event time: VendorScorecard.update
Update = tuple[float, str, str, float | None, tuple[int, int], tuple[int, int], tuple[int, int]]


class VendorsView:
    kinds: tuple[str, ...] = ("labelled", "raters", "gold_label")

    def __init__(
        self, metrics: Metrics, sla: VendorSla | None = None, golden: GoldenSet | None = None
    ) -> None:
        self.metrics = metrics
        self.sla = sla if sla is not None else VendorSla()
        self.golden = golden or {}

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        kind = obs["kind"]
        updates = {"labelled": self._labelled, "gold_label": self._gold}.get(kind, self._consensus)(obs)
        replaced = obs.get("replaces")
        removals = self._consensus({**obs, **replaced}) if replaced is not None else []
        if removals == updates:  # a version a later judge makes: the same comparisons at the same time
            # (kept as they are, not taken out and added again: their bucket may have left the window, and
            # added again they would count as labels too late)
            updates = removals = []
        if not updates and not removals:
            return []

        def add(card: VendorScorecard) -> None:
            for ts, vendor, annotator, *_, consensus in removals:
                with contextlib.suppress(NotHeldError):  # counts started after it was added
                    card.remove(ts, vendor, annotator, consensus)
            # only when the aggregator applies the observation (a replay it skips counts nothing), and by
            # this observation's own drops: exact without remembering the count between calls or restarts
            dropped = card.too_late
            for update in updates:  # a ``gold_label``'s turn with an item missed: among the vendor's misses
                card.update(*update, turn_id=obs.get("turn_id"))
            if card.too_late > dropped:
                self.metrics.vendor_labels_too_late.inc(card.too_late - dropped)

        card = aggregator.update(SCORECARD, obs, partition, self.sla.new_scorecard, add)
        # judged at a ``labelled`` or ``raters`` one: with the gold items of a ``gold_label`` just before it
        if card is None or card.watermark is None or kind == "gold_label":
            return []
        status = aggregator.detector(STATUS)
        if (
            isinstance(status, SlaStatus)
            and status.evaluated_at is not None
            and card.watermark < status.evaluated_at + self.sla.evaluate_every_seconds
        ):
            return []
        return self._evaluate(aggregator, obs, partition, card)

    def _gold(self, obs: dict[str, Any]) -> list[Update]:
        """A ``gold_label``'s gold items, at the label's time (its ``labelled`` counts the label itself)."""
        truth, labels = self.golden.get(obs["turn_id"], {}), obs["labels"]
        gold = [labels[dim] == label for dim, label in truth.items() if dim in labels]
        ts, vendor, annotator = obs["label_ts"], obs["vendor_id"], obs["annotator_id"]
        return [(ts, vendor, annotator, None, (sum(gold), len(gold)), (0, 0), (0, 0))] if gold else []

    @staticmethod
    def _labelled(obs: dict[str, Any]) -> list[Update]:
        labels: dict[str, str] = obs["labels"]
        judge = [
            verdicts[dim] == label
            for verdicts in obs["judges"].values()
            for dim, label in labels.items()
            if dim in verdicts
        ]
        # a later label of the annotator on the turn (more dimensions) is scored, but not another label
        turnaround = None if obs.get("update") else max(obs["label_ts"] - obs["ts"], 0.0)
        return [
            (
                obs["label_ts"],
                obs["vendor_id"],
                obs["annotator_id"],
                turnaround,
                (0, 0),  # gold items: from ``gold_label``
                (sum(judge), len(judge)),
                (0, 0),
            )
        ]

    @staticmethod
    def _consensus(obs: dict[str, Any]) -> list[Update]:
        labels: dict[str, str] = obs["labels"]
        vendors: dict[str, str] = obs.get("vendors") or {}
        updates: list[Update] = []
        at = max(obs["ts"], obs.get("label_ts", obs["ts"]))  # when the item was complete
        for annotator, label, agreed, _ in sorted(leave_one_out(labels)):
            if agreed is not None and annotator in vendors:
                ok = int(label == agreed)
                updates.append((at, vendors[annotator], annotator, None, (0, 0), (0, 0), (ok, 1)))
        return updates

    # -- SLAs ----------------------------------------------------------------------------------------

    def _evaluate(
        self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None, card: VendorScorecard
    ) -> list[Emit]:
        now = card.watermark
        assert now is not None
        tally = card.window()
        known = aggregator.detector(STATUS)
        # a vendor with an open breach is judged though it has lost its slot (no count left in the window):
        # its breach closes for want of labels, where it stayed open for good, no longer judged (a
        # labels-per-hour breach keeps the vendor's slot: judged at 0 labels, it stays open)
        breached = known.breached if isinstance(known, SlaStatus) else []
        judged: dict[str, tuple[Scorecard, list[Verdict]]] = {}
        for vendor in sorted({*card.vendors, *(name.rsplit("|", 1)[0] for name in breached)}):
            if vendor != OTHER:  # vendors past the cap are counted together, not judged
                scorecard = card.scorecard(vendor, tally=tally)
                judged[vendor] = (scorecard, self.sla.judge(vendor, scorecard))
        emits: list[Emit] = []

        def judge(status: SlaStatus) -> None:
            status.update(now, ALL, None)  # evaluated now, even with no vendor to judge
            for vendor, (scorecard, verdicts) in judged.items():
                for verdict in verdicts:
                    # an SLA the window no longer has enough of to judge (no label left, or too few gold
                    # items or comparisons): an open breach closes. It stayed open for good, re-published
                    # every hour, when a breaching vendor stopped labelling or its gold items aged out.
                    lapsed = verdict.breached is None
                    # opens when missed beyond sampling noise, closes when met (between: as it is)
                    breached, met = (False, True) if lapsed else (verdict.breached, verdict.met)
                    status.update(now, f"{vendor}|{verdict.sla}", breached, met)
                    if status.change is not None:
                        emits.append(self._escalation(status, vendor, verdict, scorecard, card, lapsed))
            # a breach of an SLA without a target any more closes (stayed open for good, its vendor judged)
            for name in status.breached:
                vendor, sla = name.rsplit("|", 1)
                scorecard, verdicts = judged[vendor]
                if all(verdict.sla != sla for verdict in verdicts):
                    status.update(now, name, False, True)
                    removed = Verdict(sla, math.nan, math.nan, 0, None, None, {})
                    emits.append(self._escalation(status, vendor, removed, scorecard, card, removed=True))
            # what is over goes (the status held every vendor and SLA ever judged): targets judged no more
            # for a month (a vendor with no label left in the window, an SLA no longer in the file; no breach)
            status.forget(now)

        status = aggregator.update(
            STATUS, obs, partition, lambda: SlaStatus(republish_seconds=self.sla.republish_seconds), judge
        )
        if status is not None:
            self._export(judged, status)
        # the vendors whose silence is judged keep their slots (written with the scorecard's update)
        known = aggregator.detector(STATUS)
        open_ = known.breached if isinstance(known, SlaStatus) else []
        card.hold(silence_judged({vendor: verdicts for vendor, (_, verdicts) in judged.items()}, open_))
        return emits

    def _export(self, judged: dict[str, tuple[Scorecard, list[Verdict]]], status: SlaStatus) -> None:
        m = self.metrics
        breached = set(status.breached)
        retired = self._retired({*judged, *self.sla.vendors}, status)
        for gauge in VENDOR_GAUGES:  # vendors no longer judged (no slot, no breach): no stale figures
            metric = getattr(m, gauge)
            for family in metric.collect():
                for sample in family.samples:
                    labels = sample.labels
                    if (
                        labels["vendor_id"] not in judged
                        and (labels["vendor_id"], labels.get("sla")) not in retired
                    ):
                        metric.remove(*(labels[n] for n in metric._labelnames))
        for vendor, sla in sorted(retired):
            if m.label("vendor_id", vendor) == vendor:  # else folded into "other": not exported, as above
                m.vendor_sla_breached.labels(vendor, sla).set(0.0)
        for vendor, (card, verdicts) in judged.items():
            label = m.label("vendor_id", vendor)
            if label != vendor:  # a vendor the metric guard folds into "other": report.json only
                continue
            m.vendor_labels_per_hour.labels(label).set(card.labels_per_hour)
            for q in QUANTILES:
                m.vendor_turnaround.labels(label, str(q)).set(card.quantile(q))
            m.vendor_window_gold_accuracy.labels(label).set(card.gold_accuracy)
            m.vendor_window_judge_agreement.labels(label).set(card.judge_agreement)
            m.vendor_window_consensus_agreement.labels(label).set(card.consensus_agreement)
            for verdict in verdicts:
                on = f"{vendor}|{verdict.sla}" in breached
                m.vendor_sla_breached.labels(label, verdict.sla).set(1.0 if on else 0.0)

    def _retired(self, vendors: Iterable[str], status: SlaStatus) -> set[tuple[str, str]]:
        """(vendor, SLA) of ``vendors``' breaches closed since their target was removed (a vendor that has
        left): exported at 0 whether the vendor is still judged or not, from the SLA status (so also after a
        restart). Not exported, such a series stood at its last value, 1 before a restart, and the backstop
        alert held that for 6 hours."""
        retired = set()
        for vendor in vendors:
            targets = self.sla.targets(vendor)
            for sla in SLAS:
                state = status.status(f"{vendor}|{sla}") if targets.target(sla) is None else None
                if state is not None and state["episode"] > 0 and not state["breached"]:
                    retired.add((vendor, sla))
        return retired

    def open_escalations(
        self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool], at: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(shard key, escalation) of every breach open in the SLA status at ``keys``, if this worker ``owns``
        its shard (``humans``): after a restart or a rebalance, for the Alertmanager sink to send again
        (nothing else does before its next revision, up to ``republish_seconds`` of label time away). Each
        is its last published revision: the same id, revision, labels, severity, status and event time (the
        evaluation's; ``at`` is not used). The status keeps no figures: the verdict, the scorecard and
        the window in the evidence and the summary are the scorecard's now, up to ``evaluate_every_seconds``
        of label time past that evaluation. A breach of an SLA its vendor has no target for any more is
        left out (the next evaluation resolves it)."""
        if not owns(SHARD) or STATUS not in keys:
            return
        status, card = aggregator.detector(STATUS), aggregator.detector(SCORECARD)
        if (
            not isinstance(status, SlaStatus)
            or not isinstance(card, VendorScorecard)
            or card.watermark is None
        ):
            return
        tally = card.window()
        for name in status.breached:
            vendor, sla = name.rsplit("|", 1)
            scorecard = card.scorecard(vendor, tally=tally)
            verdict = next((v for v in self.sla.judge(vendor, scorecard) if v.sla == sla), None)
            state = status.status(name)
            if verdict is not None and state is not None:  # "updated" builds the same record
                yield SHARD, sla_escalation(self.sla, state, "firing", vendor, verdict, scorecard, card)

    def _escalation(
        self,
        status: SlaStatus,
        vendor: str,
        verdict: Verdict,
        scorecard: Scorecard,
        card: VendorScorecard,
        lapsed: bool = False,
        removed: bool = False,
    ) -> Emit:
        state = status.status(f"{vendor}|{verdict.sla}")
        assert state is not None and status.change is not None
        if status.change == "firing":
            self.metrics.escalations.labels("vendor_sla", self.sla.severity).inc()
        value = sla_escalation(
            self.sla, state, status.change, vendor, verdict, scorecard, card, lapsed, removed
        )
        return Emit("escalations", value["escalation_id"], value)

    # -- report.json ---------------------------------------------------------------------------------

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``vendors``: ``window`` (``seconds``, ``start``, ``end``, ``too_late``), ``vendors`` (a
        scorecard row per vendor, with ``slas``: one verdict per SLA with a target: ``value``, its
        ``upper_bound`` at ``confidence_level``, ``within_target`` (the value), ``breached`` (the bound
        below the target), ``escalated``, ``episodes``...) and ``annotators``
        (a scorecard row per annotator, ``vendor_id`` and ``annotator_id``); ``other`` rows hold the
        vendors and annotators past the caps."""
        card = aggregator.detector(SCORECARD)
        if not isinstance(card, VendorScorecard) or card.watermark is None:
            return {"vendors": {"window": None, "vendors": [], "annotators": []}}
        status = aggregator.detector(STATUS)
        tally = card.window()
        vendors, annotators = [], []
        for vendor in card.vendors:
            scorecard = card.scorecard(vendor, tally=tally)
            slas = []
            for verdict in self.sla.judge(vendor, scorecard) if vendor != OTHER else []:
                state = status.status(f"{vendor}|{verdict.sla}") if isinstance(status, SlaStatus) else None
                slas.append(
                    {
                        "sla": verdict.sla,
                        "target": verdict.target,
                        "value": finite_or_none(verdict.value),
                        "samples": verdict.samples,
                        **{k: finite_or_none(v) for k, v in verdict.detail.items()},
                        "judged": verdict.breached is not None,
                        "within_target": verdict.met,
                        "breached": verdict.breached,
                        "escalated": bool(state and state["breached"]),
                        "episodes": state["episode"] if state else 0,
                    }
                )
            vendors.append({"vendor_id": vendor, **figures(scorecard), "slas": slas})
            for annotator in card.annotators(vendor):
                row = figures(card.scorecard(vendor, annotator, tally=tally))
                annotators.append({"vendor_id": vendor, "annotator_id": annotator, **row})
        window = {
            "seconds": card.window_seconds,
            "start": iso(card.window_start if card.window_start is not None else card.watermark),
            "end": iso(card.watermark),
            "too_late": card.too_late,
        }
        return {"vendors": {"window": window, "vendors": vendors, "annotators": annotators}}
