"""Agreement between each judge and the humans, per dimension: cumulative, per segment and over windows.

From ``pair`` observations (judge label vs the turn's first human label; shard: the judge):

- ``agreement/<judge>/<dimension>``: :class:`~detectors.AgreementTracker`, the cumulative figures behind
  ``convowatch_judge_agreement_ratio`` and friends (the Kafka worker re-exports them after a rebalance);
- ``agreement_detail/<judge>/<dimension>``: :class:`~detectors.agreement_breakdown.AgreementBreakdown`:
  intervals, Gwet's AC1, per segment value (journey, intent, model version, channel, modality, and the
  judge's version on the turn: ``judge_version``) and over sliding event-time windows by the turn's time
  (``CONVOWATCH_AGREEMENT_WINDOWS``).

From ``labelled`` observations (one annotator's labels with the judges' labels of the turn; shard:
``humans``): ``agreement_vendor/<judge>/<dimension>``, the judge against each annotator's own label, per
vendor. It keeps 49 vendors, later ones share ``other``, and drops the figures of a vendor that has sent no
label for ``idle_seconds`` of label time, looked for at its first label of each day and after a start
(:class:`~streams.views.idle_looks.IdleLooks`), so that the next new vendor takes its room: until
2026-11-26 the first 49 held it for good, and after turnover every new vendor was counted as ``other``.

Interval and window figures cost tens to hundreds of microseconds, so gauges are recomputed through
:class:`~streams.views.refresh.Refresh`, not on every pair; what it leaves since the last refresh is
exported on the worker's timer (:meth:`AgreementView.export_pending`), and the owner exports them all after a
rebalance. Per-segment gauges
are cumulative only, and only for values the metric label guard admits (the first
``CONVOWATCH_LABEL_MAX_VALUES`` of each segment; the aggregate keeps 50 per segment and folds later ones into
``other``, all in report.json); windows are exported for the judge and dimension overall.
An ``agreement_detail`` aggregate drops the figures of a segment value whose pairs'
turns are all more than ``idle_seconds`` older than the start of the day of the pair that looks (a retired
model or judge version), looked for at its first pair of each day and after a start
(:class:`~streams.views.idle_looks.IdleLooks`), and the next new value takes its room: until 2026-11-26
the first 49 values of a segment held it for good, and after turnover every new model version was counted as
``other``. A dropped value's ``convowatch_judge_segment_*`` gauges go with it. A judge and dimension with no
pair and no verdict for ``idle_seconds`` of the worker's clock (a retired judge, whose pairs never come to
look) loses its ``agreement``, ``agreement_detail`` and ``calibration`` aggregates and their gauges, and its
``agreement_vendor`` one once no label of it has come for as long (``streams/views/retired_pairs.py``); its
newest verdict time is stamped into its breakdown, so restarts neither defer nor hasten that
(``streams/views/agreement_heard.py``).
The gauges are set by ``streams/views/agreement_gauges.py``, report.json's rows made by
``streams/views/agreement_report.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from detectors import AgreementStats, AgreementTracker
from detectors.agreement_breakdown import DEFAULT_SEGMENTS, AgreementBreakdown
from streams.aggregate import Aggregator, key
from streams.config_validation import agreement_window_problem
from streams.emit import SEP, Emit
from streams.exceptions import ConfigError
from streams.labels import OTHER, UNKNOWN
from streams.metrics import Metrics
from streams.views.agreement_gauges import export_overall, export_segment, export_windows
from streams.views.agreement_heard import VerdictsHeard
from streams.views.agreement_report import agreement_rows, segment_rows
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.refresh import Refresh
from streams.views.retired_pairs import PAIR_KINDS, drop_unheard, remove_pair_gauges, remove_segment_gauges
from streams.views.worker_clock import WorkerClock

#: Segments of the ``agreement_detail`` aggregates: the turn's, and the version of the judge on the turn (from
#: its first verdict there; ``unknown`` in pairs of a join before the version was kept)
SEGMENTS = (*DEFAULT_SEGMENTS, "judge_version")
DEFAULT_WINDOWS = {"1h": (3600, 300), "24h": (86400, 3600)}
#: Distinct values kept per segment in one judge/dimension aggregate; later ones share ``other``.
MAX_SEGMENT_VALUES = 50


class AgreementView:
    # contacts: the clock (worker_clock.py); judged: which judges are still heard (:meth:`_drop_unheard`)
    kinds: tuple[str, ...] = ("pair", "labelled", "judged", "contact")

    def __init__(
        self,
        metrics: Metrics,
        windows: dict[str, tuple[int, int]] | None = None,
        refresh_every: int = 200,
        refresh_seconds: float = 60.0,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        # derived, never persisted: when to look for each agreement_detail aggregate's idle segment values,
        # and each agreement_vendor aggregate's idle vendors
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._vendor_looks = IdleLooks.per_idle(idle_seconds)
        # the judges and dimensions of the pair and vendor aggregates made or recovered, and the clock on
        # which those never heard from again are dropped (retired_pairs.py)
        self._judged: set[tuple[str, str]] = set()
        self._vendor_judged: set[tuple[str, str]] = set()
        self._clock = WorkerClock(idle_seconds)
        self._verdicts = VerdictsHeard(idle_seconds)  # which judges still judge each dimension
        self.windows = {name: [int(w), int(b)] for name, (w, b) in (windows or DEFAULT_WINDOWS).items()}
        for name, (window, bucket) in self.windows.items():
            if problem := agreement_window_problem(name, window, bucket):
                raise ConfigError(f"CONVOWATCH_AGREEMENT_WINDOWS: {problem}")
        self.refresh = Refresh(refresh_every, refresh_seconds)
        self.refresh_windows = Refresh(refresh_every, refresh_seconds)
        self._labels: dict[tuple[str, str], tuple[str, str]] = {}

    def _breakdown(self) -> AgreementBreakdown:
        return AgreementBreakdown(
            segments=list(SEGMENTS), windows=self.windows, max_values=MAX_SEGMENT_VALUES
        )

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        kind = obs["kind"]
        if kind == "judged":
            self._verdicts.heard(aggregator, obs["judge_id"], obs["labels"], obs["ts"], partition)
        elif kind == "contact":
            self._verdicts.contact(obs["ts"])
        elif kind == "pair":
            self._pair(aggregator, obs, partition)
        elif kind == "labelled":
            self._labelled(aggregator, obs, partition)
        if (look := self._clock.tick(obs["ts"])) is not None:
            self._drop_unheard(aggregator, look)
        return []

    def _drop_unheard(self, aggregator: Aggregator, look: float) -> None:
        """Drop the aggregates, and remove the gauges, of the judges and dimensions with no pair (their vendor
        figures: no label) for ``idle_seconds`` before the clock's ``look``, and no verdict of the judge on
        the dimension for as long either (a judge retired, or a dimension it no longer judges). Pairs come
        only as humans label: a dimension they audit less often than that, or a pause in labelling, must not
        cost a judge still judging it its cumulative figures (a review of the first version of this rule,
        2026-11-26: a dimension audited with 40 pairs every 35 days never reached the 50 pairs of
        ``ConvowatchJudgeAgreementLow``). The verdicts' newest time is kept in state
        (``streams/views/agreement_heard.py``, which says how stale it can be): a restart neither defers a
        drop nor hastens it. The vendor figures (shard ``humans``, which the judges' verdicts do not reach on
        Kafka) go once no label of the judge and dimension has come."""
        before, verdicts = self._clock.before(look), self._verdicts

        def judged(jd: tuple[str, str], breakdown: AgreementBreakdown) -> bool:
            return verdicts.heard_at(jd, breakdown.heard, look) >= before

        for jd in drop_unheard(aggregator, self._judged, PAIR_KINDS, None, look, self.idle_seconds, judged):
            verdicts.dropped(jd)
            remove_pair_gauges(self.metrics, jd, SEGMENTS)
        verdicts.looked(aggregator, self._judged, look)
        vendors = ("agreement_vendor",)
        for jd in drop_unheard(aggregator, self._vendor_judged, vendors, "humans", look, self.idle_seconds):
            remove_segment_gauges(self.metrics, jd, "vendor")
        # those cached are those indexed: one that left the index is indexed again at its next pair
        self._labels = {jd: labels for jd, labels in self._labels.items() if jd in self._judged}

    def _pair(self, aggregator: Aggregator, pair: dict[str, Any], partition: int | None) -> None:
        judge_id, dimension = pair["judge_id"], pair["dimension"]
        judge_label, human_label = pair["judge_label"], pair["human_label"]
        ts, segment = pair["ts"], {**(pair["segment"] or {}), "judge_version": pair.get("judge_version")}
        jd = (judge_id, dimension)
        tracker = aggregator.update(
            key("agreement", judge_id, dimension),
            pair,
            partition,
            AgreementTracker,
            lambda t: t.update(judge_label, human_label),
        )
        labels = self._labels.get(jd) or self._label_values(jd)
        # a judge or dimension the metric guard folds into "other": report.json only (each would set the one
        # "other" series, the last one winning)
        own = labels == jd
        if tracker is not None and own:
            # no cached children: the Kafka worker clears these gauges after a rebalance
            m = self.metrics
            m.agreement_ratio.labels(*labels).set(tracker.percent_agreement)
            m.cohen_kappa.labels(*labels).set(tracker.cohen_kappa)
            m.agreement_pairs.labels(*labels).set(tracker.n)
        breakdown = aggregator.update(
            key("agreement_detail", judge_id, dimension),
            pair,
            partition,
            self._breakdown,
            lambda b: self._add_pair(b, jd, ts, segment, judge_label, human_label),
        )
        if breakdown is None or not own:
            return
        if self.refresh(jd, ts):
            export_overall(self.metrics, breakdown.overall(), labels)
        if self.refresh_windows(jd, ts):
            export_windows(self.metrics, breakdown, labels)
        for name in SEGMENTS:
            value, stats = _stored(breakdown, name, segment.get(name))
            if self.refresh((judge_id, dimension, name, value), ts):
                export_segment(self.metrics, labels, name, value, stats)

    def export_pending(self, aggregator: Aggregator) -> None:
        """The gauges of each judge and dimension, segment value and vendor with pairs since its last
        refresh, from its aggregate (the tail of a burst the throttle left; all of them are the view's own:
        the hot path refreshes only those)."""
        for jd in self.refresh_windows.pending():
            breakdown = aggregator.detector(key("agreement_detail", *jd))
            if isinstance(breakdown, AgreementBreakdown):
                export_windows(self.metrics, breakdown, jd)
        for name in self.refresh.pending():
            judge_id, dimension, *segment = name
            prefix = "agreement_vendor" if segment and segment[0] == "vendor" else "agreement_detail"
            breakdown = aggregator.detector(key(prefix, judge_id, dimension))
            if not isinstance(breakdown, AgreementBreakdown):
                continue  # dropped since
            if not segment:
                export_overall(self.metrics, breakdown.overall(), (judge_id, dimension))
                continue
            name, value = segment
            stats = breakdown.segment_value(name, value) if name in breakdown.segments else None
            if stats is not None:  # not dropped as idle since
                export_segment(
                    self.metrics, (judge_id, dimension), name, value, stats, self.metrics.recovered_label
                )

    def export_owned(self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]) -> None:
        """After a rebalance, the interval, window and segment gauges of the aggregates at ``keys`` (the
        recovered table's) whose judge (or ``humans``, for vendors) this worker owns: a worker that took
        over or regained a shard shows them before the shard's next pairs. Values a label guard does not pass
        already go unexported (``Metrics.admitted_label``): admitted in the state's order, values idle for up
        to 30 days took a fresh worker's room, and after a restart the newest model version was ``other``."""
        m = self.metrics
        for (judge_id, dimension), breakdown in _breakdowns(
            aggregator.owned_detectors(keys, "agreement_detail", owns)
        ):
            labels = (m.admitted_label("judge_id", judge_id), m.admitted_label("dimension", dimension))
            if labels != (judge_id, dimension):
                continue
            export_overall(self.metrics, breakdown.overall(), labels)
            export_windows(self.metrics, breakdown, labels)
            for name in breakdown.segments:
                for value, stats in breakdown.segment(name).items():
                    export_segment(self.metrics, labels, name, value, stats, m.admitted_label)
        humans = owns("humans")  # the shard of the vendor breakdowns (labelled observations)
        for (judge_id, dimension), breakdown in _breakdowns(
            aggregator.owned_detectors(keys, "agreement_vendor", lambda judge: humans)
        ):
            labels = (m.admitted_label("judge_id", judge_id), m.admitted_label("dimension", dimension))
            if labels == (judge_id, dimension):
                for value, stats in breakdown.segment("vendor").items():
                    export_segment(self.metrics, labels, "vendor", value, stats, m.admitted_label)

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Refresh afresh: the owned shards' gauges are exported from the recovered state (``export_owned``),
        and nothing pending of a shard that moved away is exported here again."""
        self.refresh.forget()
        self.refresh_windows.forget()
        self._clock.forget()
        self._labels.clear()
        self._verdicts.forget()
        self._judged = {_judge_dimension(k) for k, _ in aggregator.records("agreement_detail")}
        self._vendor_judged = {_judge_dimension(k) for k, _ in aggregator.records("agreement_vendor")}

    def _add_pair(
        self,
        breakdown: AgreementBreakdown,
        jd: tuple[str, str],
        ts: float,
        segment: dict[str, Any],
        *pair: str,
    ) -> None:
        """Add ``pair`` (judge label, human label) to judge and dimension ``jd``'s breakdown, and drop its
        idle segment values' figures when it is time to look."""
        # an aggregate kept since before judge_version was a segment counts it from now on
        breakdown.add_segment("judge_version").update(ts, segment, *pair)
        self._verdicts.paired(jd, breakdown)
        now = self._looks.due(jd, ts)
        if now is not None:
            for name, value in breakdown.drop_idle(now, self.idle_seconds):
                remove_segment_gauges(self.metrics, jd, name, value)

    def _add_vendor_pair(
        self,
        jd: tuple[str, str],
        ts: float,
        vendor: str,
        judge_label: str,
        human_label: str,
        breakdown: AgreementBreakdown,
    ) -> None:
        """Add a pair (``judge_label``, ``vendor``'s ``human_label``) labelled at ``ts`` to judge and
        dimension ``jd``'s vendor breakdown, and drop its idle vendors' figures when it is time to look."""
        breakdown.update(ts, {"vendor": vendor}, judge_label, human_label)
        now = self._vendor_looks.due(jd, ts)
        if now is not None:
            for name, value in breakdown.drop_idle(now, self.idle_seconds):
                remove_segment_gauges(self.metrics, jd, name, value)

    def _label_values(self, jd: tuple[str, str]) -> tuple[str, str]:
        labels = (self.metrics.label("judge_id", jd[0]), self.metrics.label("dimension", jd[1]))
        self._labels[jd] = labels
        self._judged.add(jd)
        return labels

    def _labelled(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> None:
        vendor = obs["vendor_id"]
        m = self.metrics
        for judge_id, judge_labels in sorted(obs["judges"].items()):
            for dimension, human_label in obs["labels"].items():
                judge_label = judge_labels.get(dimension)
                if judge_label is None:
                    continue
                breakdown = aggregator.update(
                    key("agreement_vendor", judge_id, dimension),
                    obs,
                    partition,
                    _vendor_breakdown,
                    partial(
                        self._add_vendor_pair,
                        (judge_id, dimension),
                        obs["label_ts"],
                        vendor,
                        judge_label,
                        human_label,
                    ),
                )
                if breakdown is None:
                    continue
                self._vendor_judged.add((judge_id, dimension))
                value, stats = _stored(breakdown, "vendor", vendor)
                labels = (m.label("judge_id", judge_id), m.label("dimension", dimension))
                if labels != (judge_id, dimension):  # folded into "other": report.json only
                    continue
                if self.refresh((judge_id, dimension, "vendor", value), obs["ts"]):
                    export_segment(self.metrics, labels, "vendor", value, stats)

    # -- report.json ---------------------------------------------------------------------------------

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``agreement`` (one row per judge and dimension) and ``agreement_segments``."""
        return {"agreement": agreement_rows(aggregator), "agreement_segments": segment_rows(aggregator)}

    rows = staticmethod(agreement_rows)
    segment_rows = staticmethod(segment_rows)


def _stored(breakdown: AgreementBreakdown, name: str, value: str | None) -> tuple[str, AgreementStats]:
    """The value a segment value is kept under in ``breakdown`` (``unknown``, ``other``) and its tracker."""
    stats = breakdown.segment_value(name, value)
    if stats is not None:
        return (UNKNOWN if value is None or value == "" else value), stats
    other = breakdown.segment_value(name, OTHER)
    assert other is not None  # the value was just counted: if not under its name, under "other"
    return OTHER, other


def _breakdowns(
    owned: Iterable[tuple[list[str], Any]],
) -> Iterator[tuple[tuple[str, str], AgreementBreakdown]]:
    """((judge, dimension), breakdown) of ``Aggregator.owned_detectors``' agreement breakdowns."""
    for parts, breakdown in owned:
        if len(parts) == 2 and isinstance(breakdown, AgreementBreakdown):
            yield (parts[0], parts[1]), breakdown


def _judge_dimension(breakdown_key: str) -> tuple[str, str]:
    """(judge, dimension) of an ``agreement_detail`` or ``agreement_vendor`` key."""
    _, judge_id, dimension = breakdown_key.split(SEP)
    return judge_id, dimension


def _vendor_breakdown() -> AgreementBreakdown:
    return AgreementBreakdown(segments=["vendor"], windows={}, max_values=MAX_SEGMENT_VALUES)
